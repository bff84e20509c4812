"""call_soon and friends, stop(), run_forever/run_until_complete, closing.

Each behaviour test runs on the default asyncio loop and on asyncloop
(the `loop` fixture) and checks that both behave the same way.
"""
import asyncio
import contextvars
import functools
import gc
import logging
import sys
import threading
import time
import warnings

import pytest

PY312 = sys.version_info >= (3, 12)

var = contextvars.ContextVar('var', default='unset')


def run_briefly(loop, iterations=1):
    """Run the loop for the given number of iterations."""
    for _ in range(iterations):
        loop.call_soon(loop.stop)
        loop.run_forever()


async def coro_function():
    return 'coro'


# ---- call_soon ordering -------------------------------------------------

def test_call_soon_runs_callbacks_in_fifo_order(loop):
    """Callbacks scheduled with call_soon run in the order scheduled."""
    out = []
    for i in range(1000):
        loop.call_soon(out.append, i)
    run_briefly(loop)
    assert out == list(range(1000))


def test_call_soon_passes_positional_args(loop):
    """The arguments after the callback are passed positionally."""
    out = []
    loop.call_soon(lambda *a: out.append(a))
    loop.call_soon(lambda *a: out.append(a), 1)
    loop.call_soon(lambda *a: out.append(a), 1, 'two', None)
    run_briefly(loop)
    assert out == [(), (1,), (1, 'two', None)]


def test_callback_scheduled_during_iteration_runs_in_next_one(loop):
    """What a callback schedules with call_soon waits for the next
    iteration: stop() in the same batch leaves it pending."""
    out = []

    def first():
        out.append('first')
        loop.call_soon(out.append, 'scheduled by first')

    loop.call_soon(first)
    loop.call_soon(loop.stop)
    loop.call_soon(out.append, 'same batch')
    loop.run_forever()
    assert out == ['first', 'same batch']
    run_briefly(loop)
    assert out == ['first', 'same batch', 'scheduled by first']


def test_self_rescheduling_callback_does_not_starve_the_loop(loop):
    """A callback that reschedules itself runs once per iteration, so
    stop() takes effect and other callbacks get their turn."""
    count = 0

    def spin():
        nonlocal count
        count += 1
        loop.call_soon(spin)

    loop.call_soon(spin)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert count == 1
    run_briefly(loop, 3)
    assert count == 4


def test_interleaved_call_soon_and_call_later_zero(loop):
    """call_later(0) runs after the callbacks already ready, in the same
    iteration; what callbacks schedule runs in the next one, ready
    callbacks before due timers. The exact order is asyncio's."""
    out = []

    def a():
        out.append('a')
        loop.call_later(0, out.append, 'a.later0')
        loop.call_soon(out.append, 'a.soon')
        loop.call_at(loop.time() - 1, out.append, 'a.at_past')

    def b():
        out.append('b')
        loop.call_soon(out.append, 'b.soon')
        loop.call_later(0, out.append, 'b.later0')

    loop.call_later(0, out.append, 'later0')
    loop.call_soon(a)
    loop.call_later(0, b)
    loop.call_soon(out.append, 'soon')
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert out == [
        # iteration 1: the ready queue, then the due timers in deadline
        # order
        'a', 'soon', 'later0', 'b',
        # iteration 2: callbacks scheduled in iteration 1, then the timers
        # that became due, earliest deadline first
        'a.soon', 'b.soon', 'a.at_past', 'a.later0', 'b.later0',
    ]


def test_call_soon_from_timer_runs_after_other_due_timers(loop):
    """A call_soon made by a timer callback runs in the next iteration,
    after all timers due in the current one."""
    out = []
    past = loop.time() - 1

    def t1():
        out.append('t1')
        loop.call_soon(out.append, 't1.soon')

    loop.call_at(past, t1)
    loop.call_at(past + 0.5, out.append, 't2')
    run_briefly(loop, 2)
    assert out == ['t1', 't2', 't1.soon']


# ---- I/O callbacks among the others ---------------------------------------

class _RecordingProtocol(asyncio.Protocol):
    def __init__(self, out):
        self.out = out

    def data_received(self, data):
        self.out.append('data')
        asyncio.get_running_loop().call_soon(self.out.append, 'data.soon')


def _readable_pair(loop, out):
    """A connected transport recording into out, whose socket has a byte
    waiting to be read, with nothing else queued on the loop."""
    import select
    import socket
    rsock, wsock = socket.socketpair()
    tr, _ = loop.run_until_complete(loop.create_connection(
        lambda: _RecordingProtocol(out), sock=rsock))
    run_briefly(loop, 2)
    wsock.send(b'x')
    assert select.select([rsock], [], [], 10)[0]
    return tr, wsock


def test_io_callbacks_run_after_callbacks_queued_before_the_poll(loop):
    """As asyncio: the callbacks queued before the poll run first, then the
    I/O callbacks of the events it found, then the due timers; what those
    schedule runs in the next iteration."""
    out = []
    tr, wsock = _readable_pair(loop, out)
    try:
        loop.call_at(loop.time() - 1, out.append, 'timer')
        loop.call_soon(out.append, 'soon')
        run_briefly(loop, 3)
        assert out == ['soon', 'data', 'timer', 'data.soon']
    finally:
        tr.close()
        wsock.close()
        run_briefly(loop)


def test_io_callbacks_run_after_a_waiting_task_is_woken(loop):
    """A task woken before the data arrived runs before the data's
    protocol callback, as on the default loop: its close() can beat a
    message already in the socket."""
    out = []
    fut = loop.create_future()

    async def waiter():
        await fut
        out.append('task')

    task = loop.create_task(waiter())
    tr, wsock = _readable_pair(loop, out)
    try:
        fut.set_result(None)
        run_briefly(loop, 3)
        assert out == ['task', 'data', 'data.soon']
        assert task.done()
    finally:
        tr.close()
        wsock.close()
        run_briefly(loop)


# ---- handles -------------------------------------------------------------

def test_call_soon_returns_a_handle(loop):
    """call_soon returns a Handle with cancel() and cancelled()."""
    h = loop.call_soon(lambda: None)
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    h.cancel()          # idempotent
    assert h.cancelled()


def test_call_soon_returns_an_asyncio_handle(loop):
    """The documentation of call_soon: 'An instance of asyncio.Handle is
    returned'; call_later/call_at return an asyncio.TimerHandle."""
    h = loop.call_soon(lambda: None)
    t = loop.call_later(10, lambda: None)
    assert isinstance(h, asyncio.Handle)
    assert isinstance(t, asyncio.Handle)
    assert isinstance(t, asyncio.TimerHandle)
    h.cancel()
    t.cancel()


def test_cancelled_call_soon_callback_does_not_run(loop):
    """A handle cancelled before its iteration is skipped; the others
    keep their order."""
    out = []
    handles = [loop.call_soon(out.append, i) for i in range(10)]
    for h in handles[::2]:
        h.cancel()
    run_briefly(loop)
    assert out == [1, 3, 5, 7, 9]


def test_cancel_later_handle_from_earlier_callback_of_same_batch(loop):
    """A callback may cancel a handle further along in the same batch."""
    out = []
    later = []
    loop.call_soon(lambda: later[0].cancel())
    later.append(loop.call_soon(out.append, 'cancelled'))
    loop.call_soon(out.append, 'kept')
    run_briefly(loop)
    assert out == ['kept']
    assert later[0].cancelled()


def test_cancel_after_run_is_harmless(loop):
    """Cancelling a handle that has already run changes nothing else."""
    out = []
    h = loop.call_soon(out.append, 1)
    run_briefly(loop)
    h.cancel()
    assert h.cancelled()
    assert out == [1]


@pytest.mark.skipif(not PY312, reason='Handle.get_context() is new in 3.12')
def test_handle_get_context(loop):
    """get_context() returns the context given, or the copy made at
    scheduling time."""
    ctx = contextvars.copy_context()
    h1 = loop.call_soon(lambda: None, context=ctx)
    h2 = loop.call_soon(lambda: None)
    h3 = loop.call_later(1, lambda: None, context=ctx)
    assert h1.get_context() is ctx
    assert isinstance(h2.get_context(), contextvars.Context)
    assert h2.get_context() is not ctx
    assert h3.get_context() is ctx
    for h in (h1, h2, h3):
        h.cancel()


# ---- contextvars ---------------------------------------------------------

def test_callback_runs_in_copy_of_current_context(loop):
    """Without context=, a callback sees the variables as they were at
    call_soon time, and its changes do not leak into the caller."""
    seen = []

    def cb():
        seen.append(var.get())
        var.set('changed in callback')

    def scheduler():
        token = var.set('at schedule time')
        loop.call_soon(cb)
        loop.call_later(0, cb)
        var.reset(token)
        var.set('after schedule')

    contextvars.copy_context().run(scheduler)
    run_briefly(loop, 2)
    assert seen == ['at schedule time', 'at schedule time']
    assert var.get() == 'unset'


def test_callback_runs_in_given_context(loop):
    """With context=, the callback runs in that very context: its changes
    are visible there afterwards, and callbacks sharing it see them."""
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'in ctx')
    seen = []

    def cb(tag):
        seen.append((tag, var.get()))
        var.set(tag)

    loop.call_soon(cb, 'one', context=ctx)
    loop.call_soon(cb, 'two', context=ctx)
    loop.call_later(0, cb, 'three', context=ctx)
    loop.call_at(loop.time(), cb, 'four', context=ctx)
    loop.call_soon_threadsafe(cb, 'five', context=ctx)
    loop.call_soon(cb, 'none', context=None)
    run_briefly(loop, 2)
    assert seen == [('one', 'in ctx'), ('two', 'one'), ('five', 'two'),
                    ('none', 'unset'), ('three', 'five'), ('four', 'three')]
    assert ctx[var] == 'four'
    assert var.get() == 'unset'


def test_context_is_exited_when_callback_raises(loop):
    """A callback that raises leaves its context: the next callback with
    the same context can enter it and sees the change."""
    errors = []
    loop.set_exception_handler(lambda lp, c: errors.append(c['exception']))
    ctx = contextvars.copy_context()
    seen = []

    def failing():
        var.set('set before raising')
        raise ValueError('boom')

    loop.call_soon(failing, context=ctx)
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    run_briefly(loop)
    assert seen == ['set before raising']
    assert [type(e) for e in errors] == [ValueError]


def test_callback_context_already_entered(loop, caplog):
    """The loop run inside ctx.run(): a callback scheduled with context=ctx
    cannot enter ctx again: the RuntimeError is logged by the default
    exception handler and the loop goes on."""
    ctx = contextvars.copy_context()
    out = []

    def run():
        loop.call_soon(out.append, 'in ctx', context=ctx)
        loop.call_soon(out.append, 'other')
        run_briefly(loop)

    with caplog.at_level(logging.ERROR, logger='asyncio'):
        ctx.run(run)
    assert out == ['other']
    records = [r for r in caplog.records if r.name == 'asyncio']
    assert len(records) == 1
    assert records[0].exc_info[0] is RuntimeError
    assert records[0].getMessage().startswith(
        'Exception in callback list.append(')


# ---- call_soon_threadsafe -----------------------------------------------

def test_call_soon_threadsafe_from_many_threads(loop):
    """Callbacks posted from many threads all run, each thread's in the
    order that thread posted them."""
    n_threads, per_thread = 8, 500
    got = []
    done = loop.create_future()

    def cb(t, i):
        got.append((t, i))
        if len(got) == n_threads * per_thread:
            done.set_result(None)

    def worker(t):
        for i in range(per_thread):
            loop.call_soon_threadsafe(cb, t, i)

    threads = [threading.Thread(target=worker, args=(t,))
               for t in range(n_threads)]

    def start():
        for th in threads:
            th.start()

    loop.call_soon(start)
    loop.run_until_complete(asyncio.wait_for(done, 30))
    for th in threads:
        th.join()
    assert len(got) == n_threads * per_thread
    for t in range(n_threads):
        assert [i for (tt, i) in got if tt == t] == list(range(per_thread))


def test_call_soon_threadsafe_before_run_is_kept(loop):
    """A callback posted from a thread while the loop is not running runs
    at the next run."""
    out = []
    th = threading.Thread(
        target=lambda: loop.call_soon_threadsafe(out.append, 'x'))
    th.start()
    th.join()
    run_briefly(loop)
    assert out == ['x']


def test_call_soon_threadsafe_wakes_up_a_waiting_loop(loop):
    """The loop waiting for a far timer wakes up as soon as another thread
    posts a callback, not at the timer's deadline."""
    async def main():
        fut = loop.create_future()

        def worker():
            time.sleep(0.05)
            loop.call_soon_threadsafe(fut.set_result, time.monotonic())

        th = threading.Thread(target=worker)
        th.start()
        sent = await asyncio.wait_for(fut, 30)
        th.join()
        return time.monotonic() - sent

    t0 = time.monotonic()
    latency = loop.run_until_complete(main())
    assert latency < 2.0
    assert time.monotonic() - t0 < 5.0


def _run_in_thread(loop, main):
    """Run main() to completion on loop in a new thread; return a
    callable that joins the thread and returns main's result."""
    result = []
    started = threading.Event()

    async def wrapper():
        started.set()
        return await main()

    def worker():
        try:
            result.append(('ok', loop.run_until_complete(wrapper())))
        except BaseException as exc:
            result.append(('error', exc))

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    assert started.wait(30)

    def join():
        th.join(60)
        assert not th.is_alive()
        kind, value = result[0]
        if kind == 'error':
            raise value
        return value

    return join


def test_call_soon_threadsafe_wakes_up_a_loop_running_in_a_thread(loop):
    """A loop running in a thread other than the main one, waiting for a
    far timer, wakes up at once when another thread posts a callback."""
    fut_box = []

    async def main():
        fut = loop.create_future()
        fut_box.append(fut)
        # Let the loop go to sleep: nothing is ready, the only timer is
        # wait_for's, far away.
        sent = await asyncio.wait_for(fut, 3)
        return time.monotonic() - sent

    join = _run_in_thread(loop, main)
    time.sleep(0.1)
    loop.call_soon_threadsafe(fut_box[0].set_result, time.monotonic())
    latency = join()
    assert latency < 2.0


def test_run_in_executor_result_wakes_up_a_loop_running_in_a_thread(loop):
    """The result of run_in_executor (delivered with call_soon_threadsafe)
    wakes up a loop that runs in a non-main thread."""
    async def main():
        t0 = time.monotonic()
        value = await asyncio.wait_for(
            loop.run_in_executor(None, time.sleep, 0.05), 3)
        return value, time.monotonic() - t0

    value, elapsed = _run_in_thread(loop, main)()
    assert value is None
    assert elapsed < 2.0


def test_call_soon_threadsafe_wakeup_is_never_lost(loop):
    """Many rounds of 'loop goes to sleep, a thread posts at once': each
    post wakes the loop (a lost wakeup would hang until the timeout)."""
    async def main():
        for _ in range(200):
            fut = loop.create_future()
            th = threading.Thread(
                target=loop.call_soon_threadsafe, args=(fut.set_result, 1))
            th.start()
            await asyncio.wait_for(fut, 10)
            th.join()

    t0 = time.monotonic()
    loop.run_until_complete(main())
    assert time.monotonic() - t0 < 30


def test_call_soon_threadsafe_while_loop_starts_and_stops(loop):
    """Threads keep posting while the loop is stopped and run again many
    times: every callback runs exactly once, none is lost or repeated."""
    n_threads, per_thread = 4, 2000
    got = []

    def worker(t):
        for i in range(per_thread):
            loop.call_soon_threadsafe(got.append, (t, i))
            if i % 50 == 0:
                time.sleep(0.0005)

    threads = [threading.Thread(target=worker, args=(t,))
               for t in range(n_threads)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    while len(got) < n_threads * per_thread and time.monotonic() < deadline:
        loop.run_until_complete(asyncio.sleep(0.001))
    for th in threads:
        th.join()
    run_briefly(loop)
    assert len(got) == n_threads * per_thread
    assert len(set(got)) == len(got)


def test_call_soon_threadsafe_returns_a_cancellable_handle(loop):
    """call_soon_threadsafe returns a handle that can be cancelled."""
    out = []
    h = loop.call_soon_threadsafe(out.append, 1)
    assert not h.cancelled()
    h.cancel()
    run_briefly(loop)
    assert out == []


# ---- stop() -------------------------------------------------------------

def test_stop_inside_callback_finishes_the_iteration(loop):
    """stop() lets the rest of the current batch run, then run_forever
    returns; the next run continues with what was scheduled."""
    out = []

    def stopper():
        out.append('stop')
        loop.stop()
        loop.call_soon(out.append, 'next run')

    loop.call_soon(out.append, 1)
    loop.call_soon(stopper)
    loop.call_soon(out.append, 2)
    assert loop.run_forever() is None
    assert out == [1, 'stop', 2]
    assert not loop.is_running()
    run_briefly(loop)
    assert out == [1, 'stop', 2, 'next run']


def test_stop_before_run_forever_runs_one_iteration(loop):
    """stop() called before run_forever makes it run one iteration and
    return at once, even with a far timer pending."""
    out = []
    loop.call_later(60, out.append, 'far')
    loop.stop()
    loop.call_soon(out.append, 'soon')
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 5
    assert out == ['soon']
    # The stop request was consumed.
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_stop_called_twice_stops_once(loop):
    """Two stop() calls in one iteration stop the loop once."""
    out = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_soon(out.append, 'a')
    loop.call_soon(loop.stop)
    loop.call_soon(lambda: loop.call_soon(out.append, 'b'))
    loop.run_forever()
    assert out == ['a']


def test_stop_from_a_timer(loop):
    """stop() in a timer callback returns from run_forever."""
    loop.call_later(0.01, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    assert 0.01 <= time.monotonic() - t0 < 5


def test_is_running_and_running_loop_during_callbacks(loop):
    """Inside callbacks the loop is running and is the running loop."""
    seen = []

    def cb():
        seen.append((loop.is_running(), asyncio.get_running_loop() is loop,
                     asyncio.get_event_loop() is loop))

    loop.call_soon(cb)
    assert not loop.is_running()
    run_briefly(loop)
    assert seen == [(True, True, True)]
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# ---- run_until_complete / run_forever ----------------------------------

def test_run_until_complete_returns_coroutine_result(loop):
    """run_until_complete(coro) returns the coroutine's value."""
    async def main(x):
        await asyncio.sleep(0)
        return x * 2

    assert loop.run_until_complete(main(21)) == 42


def test_run_until_complete_with_future(loop):
    """run_until_complete(future) returns the future's result."""
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 'value')
    assert loop.run_until_complete(fut) == 'value'


def test_run_until_complete_with_done_future(loop):
    """A future that is already done is returned at once."""
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_with_awaitable(loop):
    """Any awaitable is accepted, as asyncio.ensure_future does."""
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return 'awaited'

    assert loop.run_until_complete(Awaitable()) == 'awaited'


def test_run_until_complete_rejects_non_awaitable(loop):
    """A non-awaitable argument is a TypeError, asyncio's message."""
    with pytest.raises(TypeError, match='An asyncio.Future, a coroutine or '
                                        'an awaitable is required'):
        loop.run_until_complete(42)


def test_run_until_complete_raises_the_exception(loop):
    """The exception of the coroutine is raised by run_until_complete."""
    err = ValueError('boom')

    async def main():
        await asyncio.sleep(0)
        raise err

    with pytest.raises(ValueError) as info:
        loop.run_until_complete(main())
    assert info.value is err
    assert not loop.is_running()
    # The loop is still usable.
    assert loop.run_until_complete(coro_function()) == 'coro'


def test_run_until_complete_cancelled_future(loop):
    """A cancelled future makes run_until_complete raise CancelledError."""
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_stopped_early(loop):
    """stop() before the future is done: RuntimeError, asyncio's text."""
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError,
                       match='^Event loop stopped before Future completed.$'):
        loop.run_until_complete(fut)
    # The future can still complete in a later run.
    loop.call_soon(fut.set_result, 1)
    assert loop.run_until_complete(fut) == 1


def test_run_until_complete_future_of_another_loop(loop, new_loop):
    """A future bound to another loop is a ValueError."""
    other = new_loop()
    fut = other.create_future()
    with pytest.raises(ValueError, match='The future belongs to a different '
                                         'loop than the one specified as the '
                                         'loop argument'):
        loop.run_until_complete(fut)
    assert not loop.is_running()


def test_run_until_complete_repeatedly(loop):
    """The loop can be run to completion many times in a row."""
    async def step(i):
        await asyncio.sleep(0)
        return i

    assert [loop.run_until_complete(step(i)) for i in range(50)] == \
        list(range(50))


def _run_forever(loop):
    loop.run_forever()


def _run_until_complete_future(loop):
    loop.run_until_complete(loop.create_future())


def _run_until_complete_coro(loop):
    coro = coro_function()
    try:
        loop.run_until_complete(coro)
    finally:
        coro.close()


RUNS = {
    'run_forever': _run_forever,
    'run_until_complete_future': _run_until_complete_future,
    'run_until_complete_coro': _run_until_complete_coro,
}


# One attempt per test: on some versions a failed nested run_forever of
# the default loop resets the running loop of the thread.

@pytest.mark.parametrize('run', sorted(RUNS))
def test_running_loop_reentered_raises(loop, run):
    """run_forever/run_until_complete inside the running loop raise
    RuntimeError('This event loop is already running')."""
    errors = []

    def cb():
        try:
            RUNS[run](loop)
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(cb)
    run_briefly(loop)
    assert errors == ['This event loop is already running']
    assert not loop.is_running()


@pytest.mark.parametrize('run', sorted(RUNS))
def test_running_another_loop_inside_a_running_one_raises(loop, new_loop,
                                                          run):
    """A second loop cannot run in the thread of a running loop."""
    other = new_loop()
    errors = []

    def cb():
        try:
            RUNS[run](other)
        except RuntimeError as exc:
            errors.append(str(exc))
        errors.append(other.is_running())

    loop.call_soon(cb)
    run_briefly(loop)
    assert errors == ['Cannot run the event loop while another loop is '
                      'running', False]
    assert not other.is_running()
    # The other loop works afterwards.
    run_briefly(other)


def test_loop_runs_in_another_thread(loop):
    """A loop can run in a thread other than the one that created it."""
    result = []

    def worker():
        result.append(loop.run_until_complete(coro_function()))

    th = threading.Thread(target=worker)
    th.start()
    th.join(30)
    assert result == ['coro']


def test_two_loops_in_two_threads(new_loop):
    """Two loops of the same kind run at the same time in two threads."""
    loops = [new_loop(), new_loop()]
    results = {}

    async def work(i):
        total = 0
        for j in range(100):
            await asyncio.sleep(0)
            total += j
        return i, total

    def worker(i):
        results[i] = loops[i].run_until_complete(work(i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert results == {0: (0, 4950), 1: (1, 4950)}


# ---- closing -------------------------------------------------------------

def _closed_operations():
    def coro_op(method):
        def op(loop):
            coro = coro_function()
            try:
                return getattr(loop, method)(coro)
            finally:
                coro.close()
        return op

    return {
        'call_soon': lambda lp: lp.call_soon(lambda: None),
        'call_soon_ctx': lambda lp: lp.call_soon(
            lambda: None, context=contextvars.copy_context()),
        'call_later': lambda lp: lp.call_later(1, lambda: None),
        'call_at': lambda lp: lp.call_at(lp.time() + 1, lambda: None),
        'call_soon_threadsafe': lambda lp: lp.call_soon_threadsafe(
            lambda: None),
        'create_task': coro_op('create_task'),
        'run_forever': lambda lp: lp.run_forever(),
        'run_until_complete': coro_op('run_until_complete'),
        'run_until_complete_future': lambda lp: lp.run_until_complete(
            lp.create_future()),
        'run_in_executor': lambda lp: lp.run_in_executor(None, int),
    }


@pytest.mark.parametrize('operation', sorted(_closed_operations()))
def test_operation_on_closed_loop_raises(loop, operation):
    """Every scheduling or running operation of a closed loop raises
    RuntimeError('Event loop is closed')."""
    loop.close()
    with pytest.raises(RuntimeError, match='^Event loop is closed$'):
        _closed_operations()[operation](loop)


def test_closed_loop_operations_that_do_not_raise(loop):
    """As asyncio: create_future, time, is_running, get_debug, stop and
    close still work on a closed loop."""
    loop.close()
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert isinstance(loop.time(), float)
    assert loop.is_closed()
    assert not loop.is_running()
    assert loop.get_debug() in (False, True)
    loop.stop()
    loop.close()


def test_closed_loop_call_later_none_delay(loop):
    """call_later(None) is a TypeError even on a closed loop, as the delay
    is checked first."""
    loop.close()
    with pytest.raises(TypeError, match='delay must not be None'):
        loop.call_later(None, lambda: None)


def test_close_while_running_raises(loop):
    """close() inside a callback raises and leaves the loop running."""
    errors = []

    def cb():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        errors.append(loop.is_closed())

    loop.call_soon(cb)
    run_briefly(loop)
    assert errors == ['Cannot close a running event loop', False]
    assert not loop.is_closed()
    run_briefly(loop)


def test_close_twice_is_fine(loop):
    """close() of a closed loop does nothing."""
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()


def test_close_drops_pending_callbacks(loop):
    """close() discards ready callbacks and timers without running them."""
    out = []
    loop.call_soon(out.append, 'soon')
    loop.call_later(0, out.append, 'later')
    loop.close()
    assert out == []


def test_close_from_another_loop_callback(loop, new_loop):
    """One loop may close another (idle) loop from one of its callbacks."""
    other = new_loop()
    other.call_soon(lambda: None)
    loop.call_soon(other.close)
    run_briefly(loop)
    assert other.is_closed()


# ---- bad callbacks ---------------------------------------------------------

class NotCallable:
    def __repr__(self):
        return '<NotCallable>'


def _schedule(loop, method, callback):
    if method == 'call_soon':
        return loop.call_soon(callback)
    if method == 'call_soon_threadsafe':
        return loop.call_soon_threadsafe(callback)
    if method == 'call_later':
        return loop.call_later(1, callback)
    return loop.call_at(loop.time() + 1, callback)


METHODS = ('call_soon', 'call_soon_threadsafe', 'call_later', 'call_at')


def _bad_callbacks():
    return {
        'int': (lambda: 1, 'a callable object was expected by {}(), got 1'),
        'none': (lambda: None,
                 'a callable object was expected by {}(), got None'),
        'object': (NotCallable, 'a callable object was expected by {}(), '
                                'got <NotCallable>'),
        'coroutine_function': (lambda: coro_function,
                               'coroutines cannot be used with {}()'),
        'coroutine_method': (lambda: Owner().method,
                             'coroutines cannot be used with {}()'),
        'coroutine_object': (coro_function,
                             'coroutines cannot be used with {}()'),
    }


class Owner:
    async def method(self):
        pass


def _check_bad_callback(loop, method, kind, expected_method):
    make, message = _bad_callbacks()[kind]
    callback = make()
    try:
        with pytest.raises(TypeError) as info:
            _schedule(loop, method, callback)
    finally:
        if asyncio.iscoroutine(callback):
            callback.close()
    assert str(info.value) == message.format(expected_method)


@pytest.mark.parametrize('kind', sorted(_bad_callbacks()))
@pytest.mark.parametrize('method', METHODS)
def test_bad_callback_accepted_outside_debug_mode(loop, method, kind):
    """Outside debug mode asyncio checks no callback when it is scheduled:
    the call fails when the handle runs, and a coroutine function makes a
    coroutine that is never awaited."""
    callback = _bad_callbacks()[kind][0]()
    handle = _schedule(loop, method, callback)
    assert isinstance(handle, asyncio.Handle)
    handle.cancel()
    if asyncio.iscoroutine(callback):
        callback.close()


@pytest.mark.parametrize('kind', sorted(_bad_callbacks()))
def test_bad_callback_fails_when_run_outside_debug_mode(loop, kind):
    """What a bad callback does when its handle runs: the same exception
    handler call, or the same 'never awaited' RuntimeWarning, on both
    loops; the callbacks after it run."""
    callback = _bad_callbacks()[kind][0]()
    errors, ran = [], []
    loop.set_exception_handler(
        lambda lp, ctx: errors.append(type(ctx.get('exception'))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loop.call_soon(callback)
        loop.call_soon(ran.append, 'next')
        loop.call_soon(loop.stop)
        loop.run_forever()
        if asyncio.iscoroutine(callback):
            callback.close()
        gc.collect()
    assert ran == ['next']
    if kind.startswith('coroutine_') and kind != 'coroutine_object':
        assert errors == []
        assert any(w.category is RuntimeWarning and 'never awaited'
                   in str(w.message) for w in caught)
    else:
        assert errors == [TypeError]


def test_non_callable_done_callback_does_not_stop_the_others(loop):
    """A future's done callbacks are scheduled with call_soon: an async
    def (or any non-callable) among them fails alone, and a task awaiting
    the future still wakes."""
    async def coroutine_callback(fut):
        pass

    async def main():
        fut = loop.create_future()
        fut.add_done_callback(coroutine_callback)
        fut.add_done_callback(42)
        later = []
        fut.add_done_callback(later.append)

        async def waiter():
            return await fut

        task = loop.create_task(waiter())
        await asyncio.sleep(0)
        fut.set_result('done')
        result = await asyncio.wait_for(task, 10)
        return result, later == [fut]

    loop.set_exception_handler(lambda lp, ctx: None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        assert loop.run_until_complete(main()) == ('done', True)
        gc.collect()


@pytest.mark.parametrize('kind', sorted(_bad_callbacks()))
@pytest.mark.parametrize('method', ('call_soon', 'call_soon_threadsafe',
                                    'call_at'))
def test_bad_callback_debug_mode_parity(loop, method, kind):
    """In debug mode both loops reject bad callbacks with the same
    TypeError message."""
    loop.set_debug(True)
    _check_bad_callback(loop, method, kind, method)


@pytest.mark.parametrize('kind', sorted(_bad_callbacks()))
def test_bad_callback_call_later_debug_mode(loop, kind):
    """call_later rejects bad callbacks in debug mode too (asyncio names
    call_at() in the message, as call_later delegates to it)."""
    loop.set_debug(True)
    make, message = _bad_callbacks()[kind]
    callback = make()
    try:
        with pytest.raises(TypeError) as info:
            loop.call_later(1, callback)
    finally:
        if asyncio.iscoroutine(callback):
            callback.close()
    assert str(info.value) in (message.format('call_later'),
                               message.format('call_at'))


def test_bad_callback_partial_of_coroutine_function_debug(loop):
    """In debug mode a functools.partial of a coroutine function is a
    coroutine function for both loops only if asyncio says so."""
    loop.set_debug(True)
    callback = functools.partial(coro_function)
    expected = asyncio.iscoroutinefunction(callback)
    if expected:
        with pytest.raises(TypeError):
            loop.call_soon(callback)
    else:
        h = loop.call_soon(callback)
        h.cancel()


def test_callable_objects_are_accepted(loop):
    """Any callable works: builtins, bound methods, partials, classes,
    objects with __call__."""
    out = []

    class Call:
        def __call__(self, x):
            out.append(('call', x))

    class Rec:
        def __init__(self, x):
            out.append(('init', x))

    loop.call_soon(out.append, 'builtin')
    loop.call_soon(functools.partial(out.append, 'partial'))
    loop.call_soon(Call(), 1)
    loop.call_soon(Rec, 2)
    loop.call_soon(out.extend, ['m'])
    run_briefly(loop)
    assert out == ['builtin', 'partial', ('call', 1), ('init', 2), 'm']


def test_call_soon_argument_errors(loop):
    """Missing callback or unknown keywords are TypeErrors."""
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_soon(lambda: None, bogus=1)
    with pytest.raises(TypeError):
        loop.call_later(1)
    with pytest.raises(TypeError):
        loop.call_at(loop.time())
    with pytest.raises(TypeError):
        loop.call_later()
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(lambda: None, bogus=1)


def test_context_that_is_not_a_context(loop):
    """context= is used as asyncio uses it, through its run() method: an
    object with run() works, anything else fails when the handle runs."""
    class Runs:
        def run(self, callback, *args):
            return callback('through run()', *args)

    seen, errors = [], []
    loop.set_exception_handler(
        lambda lp, ctx: errors.append(type(ctx['exception'])))
    loop.call_soon(seen.append, context=Runs())
    loop.call_soon(seen.append, 'never', context='not a context')
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['through run()']
    assert errors == [AttributeError]
