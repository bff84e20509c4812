"""Futures and tasks on the loop: create_future, create_task, task
factories, eager tasks, and the asyncio helpers built on them."""
import asyncio
import contextvars
import gc
import re
import sys
import threading
import time

import pytest

PY312 = sys.version_info >= (3, 12)

var = contextvars.ContextVar('var', default='unset')


async def returns(value):
    return value


async def sleeps(seconds, value=None):
    await asyncio.sleep(seconds)
    return value


def run_briefly(loop, iterations=1):
    for _ in range(iterations):
        loop.call_soon(loop.stop)
        loop.run_forever()


# ---- create_future --------------------------------------------------------

def test_create_future_returns_an_asyncio_future(loop):
    """create_future returns an asyncio.Future bound to the loop, of the
    very type the default loop uses."""
    fut = loop.create_future()
    assert type(fut) is asyncio.Future
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.cancel()


def test_future_done_callbacks_run_through_the_loop(loop):
    """Done callbacks run in a later iteration, in registration order, in
    the context current at add_done_callback time."""
    fut = loop.create_future()
    out = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'cb context')
    fut.add_done_callback(lambda f: out.append(('first', f.result())))
    fut.add_done_callback(lambda f: out.append(('second', var.get())),
                          context=ctx)
    fut.set_result(5)
    assert out == []
    run_briefly(loop)
    assert out == [('first', 5), ('second', 'cb context')]


def test_await_future_set_from_callback(loop):
    """A coroutine awaiting a future resumes when a callback sets it."""
    async def main():
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, 'later')
        return await fut

    assert loop.run_until_complete(main()) == 'later'


# ---- create_task ----------------------------------------------------------

def test_create_task_returns_an_asyncio_task(loop):
    """create_task returns an asyncio.Task bound to the loop."""
    task = loop.create_task(returns(1))
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert re.fullmatch(r'Task-\d+', task.get_name())
    assert loop.run_until_complete(task) == 1


def test_create_task_name(loop):
    """name= names the task; a non-string name is turned into a str."""
    t1 = loop.create_task(returns(1), name='worker')
    t2 = loop.create_task(returns(2), name=42)
    t3 = loop.create_task(returns(3), name=None)
    assert t1.get_name() == 'worker'
    assert t2.get_name() == '42'
    assert re.fullmatch(r'Task-\d+', t3.get_name())
    loop.run_until_complete(asyncio.gather(t1, t2, t3))


def test_create_task_context(loop):
    """context= runs the task in that context; without it the task runs
    in a copy of the current context."""
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'given')

    async def body():
        before = var.get()
        var.set('set by task')
        await asyncio.sleep(0)
        return before, var.get()

    t1 = loop.create_task(body(), context=ctx)
    token = var.set('current')
    try:
        t2 = loop.create_task(body())
    finally:
        var.reset(token)
    assert loop.run_until_complete(t1) == ('given', 'set by task')
    assert ctx[var] == 'set by task'
    assert loop.run_until_complete(t2) == ('current', 'set by task')
    assert var.get() == 'unset'


def test_create_task_rejects_non_coroutine(loop):
    """A non-coroutine is a TypeError, asyncio's message."""
    with pytest.raises(TypeError, match='a coroutine was expected, got 1'):
        loop.create_task(1)


def test_create_task_positional_arguments(loop):
    """name and context are keyword-only."""
    coro = returns(1)
    try:
        with pytest.raises(TypeError):
            loop.create_task(coro, 'name')
        with pytest.raises(TypeError):
            loop.create_task()
    finally:
        coro.close()


def _default_loop_accepts(**kwargs):
    """Whether the default loop of this interpreter's create_task takes
    these keyword arguments."""
    probe = asyncio.new_event_loop()
    coro = returns(None)
    try:
        task = probe.create_task(coro, **kwargs)
    except TypeError:
        return False
    else:
        probe.run_until_complete(task)
        return True
    finally:
        coro.close()
        probe.close()


@pytest.mark.parametrize('factory', [False, True],
                         ids=['no_factory', 'factory'])
def test_create_task_eager_start_like_default_loop(loop, factory):
    """create_task(..., eager_start=True) is accepted or refused as the
    default loop of the running Python does (3.12.1 and 3.13.0 refuse it
    with TypeError)."""
    if factory:
        loop.set_task_factory(
            lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw))
    accepted = _default_loop_accepts(eager_start=True)
    coro = returns('eager')
    try:
        if accepted:
            task = loop.create_task(coro, eager_start=True)
            assert loop.run_until_complete(task) == 'eager'
        else:
            with pytest.raises(TypeError):
                loop.create_task(coro, eager_start=True)
    finally:
        coro.close()


def test_create_task_unknown_keyword(loop):
    """An unknown keyword argument is a TypeError."""
    coro = returns(1)
    try:
        with pytest.raises(TypeError):
            loop.create_task(coro, bogus=1)
    finally:
        coro.close()


def test_current_task_and_all_tasks(loop):
    """current_task() inside a task is that task; all_tasks(loop) lists
    the pending ones."""
    async def child():
        await asyncio.sleep(0.01)

    async def main():
        c = loop.create_task(child())
        me = asyncio.current_task()
        tasks = asyncio.all_tasks()
        await c
        return me, tasks, c

    task = loop.create_task(main())
    me, tasks, c = loop.run_until_complete(task)
    assert me is task
    assert tasks == {task, c}
    assert asyncio.all_tasks(loop) == set()


# ---- task factories -------------------------------------------------------

def test_set_task_factory_non_callable(loop):
    """A non-callable factory is a TypeError; the factory set stays."""
    def factory(lp, coro):
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    with pytest.raises(TypeError, match='^task factory must be a callable '
                                        'or None$'):
        loop.set_task_factory(1)
    assert loop.get_task_factory() is factory


def test_get_task_factory(loop):
    """get_task_factory returns None by default and what was set."""
    assert loop.get_task_factory() is None

    def factory(lp, coro):
        return asyncio.Task(coro, loop=lp)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    assert isinstance(loop.create_task(returns(1)), asyncio.Task)
    run_briefly(loop)


def test_task_factory_arguments(loop):
    """The factory gets (loop, coro) without context=, and (loop, coro,
    context=ctx) with it, as asyncio calls it."""
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, coro, kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    c1 = returns(1)
    c2 = returns(2)
    t1 = loop.create_task(c1)
    t2 = loop.create_task(c2, context=ctx)
    t3 = loop.create_task(returns(3), context=None)
    assert calls[0] == (loop, c1, {})
    assert calls[1] == (loop, c2, {'context': ctx})
    assert calls[2][2] == {}
    assert loop.run_until_complete(asyncio.gather(t1, t2, t3)) == [1, 2, 3]


def test_task_factory_name_applied_after(loop):
    """The name is not passed to the factory: it is set on the task the
    factory returns."""
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(kwargs)
        return asyncio.Task(coro, loop=lp, name='from factory')

    loop.set_task_factory(factory)
    task = loop.create_task(returns(1), name='given')
    assert seen == [{}]
    assert task.get_name() == 'given'
    loop.run_until_complete(task)


def test_task_factory_result_is_returned(loop):
    """Whatever task the factory returns is what create_task returns,
    e.g. an instance of a Task subclass."""
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(lambda lp, coro: MyTask(coro, loop=lp))
    task = loop.create_task(returns('mine'))
    assert type(task) is MyTask
    assert loop.run_until_complete(task) == 'mine'


def test_task_factory_used_by_ensure_future_and_gather(loop):
    """asyncio helpers that make tasks go through the factory."""
    made = []

    def factory(lp, coro):
        task = asyncio.Task(coro, loop=lp)
        made.append(task)
        return task

    loop.set_task_factory(factory)

    async def main():
        return await asyncio.gather(returns(1), returns(2))

    assert loop.run_until_complete(main()) == [1, 2]
    # main itself, then the two gathered coroutines.
    assert len(made) == 3


def test_task_factory_that_raises(loop):
    """An error of the factory comes out of create_task."""
    def factory(lp, coro):
        coro.close()
        raise LookupError('factory failed')

    loop.set_task_factory(factory)
    with pytest.raises(LookupError):
        loop.create_task(returns(1))


@pytest.mark.skipif(not PY312, reason='eager tasks are new in 3.12')
def test_eager_task_factory(loop):
    """asyncio.eager_task_factory: a task created while the loop runs
    starts at once; one that finishes without suspending is done when
    create_task returns."""
    loop.set_task_factory(asyncio.eager_task_factory)
    out = []

    async def quick():
        out.append('quick ran')
        return 'quick'

    async def slow():
        out.append('slow started')
        await asyncio.sleep(0)
        out.append('slow resumed')
        return 'slow'

    async def main():
        t1 = loop.create_task(quick())
        out.append('after quick')
        assert t1.done()
        t2 = loop.create_task(slow())
        out.append('after slow')
        assert not t2.done()
        return await t1, await t2

    assert loop.run_until_complete(main()) == ('quick', 'slow')
    assert out == ['quick ran', 'after quick', 'slow started', 'after slow',
                   'slow resumed']


@pytest.mark.skipif(not PY312, reason='eager tasks are new in 3.12')
def test_eager_task_factory_context_and_name(loop):
    """Eager tasks honour name= and context=."""
    loop.set_task_factory(asyncio.eager_task_factory)
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'eager ctx')

    async def body():
        return var.get()

    async def main():
        task = loop.create_task(body(), name='eager', context=ctx)
        assert task.get_name() == 'eager'
        return await task

    assert loop.run_until_complete(main()) == 'eager ctx'


# ---- awaiting and cancelling ----------------------------------------------

def test_await_task_result(loop):
    """A task awaiting another gets its result."""
    async def main():
        return await loop.create_task(sleeps(0.001, 'child'))

    assert loop.run_until_complete(main()) == 'child'


def test_cancel_sleeping_task(loop):
    """cancel() of a sleeping task raises CancelledError inside it and
    makes it cancelled."""
    seen = []

    async def sleeper():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append('cancelled inside')
            raise

    async def main():
        task = loop.create_task(sleeper())
        await asyncio.sleep(0)
        task.cancel('stop it')
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    t0 = time.monotonic()
    task = loop.run_until_complete(main())
    assert time.monotonic() - t0 < 5
    assert task.cancelled()
    assert seen == ['cancelled inside']


def test_task_cancelled_before_start(loop):
    """A task cancelled before its first step never runs its body."""
    out = []

    async def body():
        out.append('ran')

    task = loop.create_task(body())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert out == []


def test_task_exception(loop):
    """An exception of a task is raised by awaiting it."""
    async def failing():
        await asyncio.sleep(0)
        raise KeyError('task failed')

    async def main():
        with pytest.raises(KeyError):
            await loop.create_task(failing())
        return 'caught'

    assert loop.run_until_complete(main()) == 'caught'


def test_unretrieved_task_exception_is_reported(loop):
    """A failed task garbage collected without its exception retrieved is
    reported to the handler: 'Task exception was never retrieved'."""
    contexts = []
    loop.set_exception_handler(lambda lp, c: contexts.append(c))

    async def failing():
        raise KeyError('lost')

    task = loop.create_task(failing())
    run_briefly(loop, 2)
    assert task.done()
    del task
    gc.collect()
    assert [c['message'] for c in contexts] == [
        'Task exception was never retrieved']
    assert type(contexts[0]['exception']) is KeyError


def test_sleep_zero_yields_once(loop):
    """asyncio.sleep(0) lets the other ready tasks run one step."""
    out = []

    async def worker(name):
        for i in range(3):
            out.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker('a'), worker('b'))

    loop.run_until_complete(main())
    assert out == [('a', 0), ('b', 0), ('a', 1), ('b', 1), ('a', 2),
                   ('b', 2)]


def test_sleep_duration(loop):
    """asyncio.sleep(d) sleeps at least d."""
    async def main():
        t0 = loop.time()
        await asyncio.sleep(0.02)
        return loop.time() - t0

    assert loop.run_until_complete(main()) >= 0.02


def test_asyncio_timeout(loop):
    """asyncio.timeout cancels the block at the deadline and raises
    TimeoutError; reschedule() moves the deadline."""
    async def main():
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await asyncio.sleep(10)
        elapsed = loop.time() - t0
        async with asyncio.timeout(10) as cm:
            cm.reschedule(loop.time() + 20)
            await asyncio.sleep(0)
        async with asyncio.timeout(None):
            await asyncio.sleep(0.001)
        return elapsed, cm.expired()

    elapsed, expired = loop.run_until_complete(main())
    assert 0.02 <= elapsed < 5
    assert expired is False


def test_wait_for(loop):
    """wait_for returns the result in time, raises TimeoutError and
    cancels the awaited task otherwise."""
    async def main():
        assert await asyncio.wait_for(sleeps(0.001, 'fast'), 5) == 'fast'
        inner = loop.create_task(sleeps(10))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(inner, 0.01)
        return inner

    inner = loop.run_until_complete(main())
    assert inner.cancelled()


def test_task_group(loop):
    """TaskGroup waits for its tasks; a failure cancels the others and is
    raised in an ExceptionGroup."""
    cancelled = []

    async def long_one():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def failing():
        await asyncio.sleep(0.01)
        raise ValueError('in group')

    async def main():
        async with asyncio.TaskGroup() as tg:
            t1 = tg.create_task(sleeps(0.001, 1))
            t2 = tg.create_task(sleeps(0.002, 2))
        results = (t1.result(), t2.result())
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(long_one())
                tg.create_task(failing())
        return results, info.value

    t0 = time.monotonic()
    results, group = loop.run_until_complete(main())
    assert time.monotonic() - t0 < 5
    assert results == (1, 2)
    assert [type(e) for e in group.exceptions] == [ValueError]
    assert cancelled == [True]


def test_gather_and_wait(loop):
    """gather keeps argument order; wait(FIRST_COMPLETED) returns the
    first one done."""
    async def main():
        results = await asyncio.gather(sleeps(0.02, 'slow'),
                                       sleeps(0.001, 'fast'))
        slow = loop.create_task(sleeps(10))
        fast = loop.create_task(sleeps(0.001, 'fast'))
        done, pending = await asyncio.wait(
            {slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        slow.cancel()
        return results, done == {fast}, pending == {slow}

    assert loop.run_until_complete(main()) == (['slow', 'fast'], True, True)


def test_as_completed_order(loop):
    """as_completed yields results in completion order (timer order)."""
    async def main():
        out = []
        for fut in asyncio.as_completed([sleeps(0.03, 3), sleeps(0.01, 1),
                                         sleeps(0.02, 2)]):
            out.append(await fut)
        return out

    assert loop.run_until_complete(main()) == [1, 2, 3]


def test_runner_with_loop_factory(loop_factory):
    """asyncio.Runner(loop_factory=...) runs coroutines on the loop."""
    async def main():
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        loop_type = runner.run(main())
        assert loop_type is type(runner.get_loop())
        assert runner.run(returns('twice')) == 'twice'


def test_run_in_executor(loop):
    """run_in_executor runs the function in a thread and returns its
    result; exceptions are raised by the future."""
    def work(x):
        return x * 2, threading.current_thread() is threading.main_thread()

    def failing():
        raise OSError('in thread')

    async def main():
        result = await loop.run_in_executor(None, work, 21)
        with pytest.raises(OSError):
            await loop.run_in_executor(None, failing)
        return result

    assert loop.run_until_complete(main()) == (42, False)
    loop.run_until_complete(loop.shutdown_default_executor())


def test_to_thread_carries_the_context(loop):
    """asyncio.to_thread runs the function in the executor with the
    caller's context variables."""
    def read():
        return var.get(), threading.current_thread() is threading.main_thread()

    async def main():
        var.set('from task')
        return await asyncio.to_thread(read)

    assert loop.run_until_complete(main()) == ('from task', False)
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_coroutine_threadsafe_into_a_loop_thread(loop):
    """run_coroutine_threadsafe from the main thread into a loop running
    forever in another thread: the result comes back promptly."""
    started = threading.Event()

    def runner():
        loop.call_soon(started.set)
        loop.run_forever()

    # A daemon, so that a loop that never wakes up cannot hang the run.
    th = threading.Thread(target=runner, daemon=True)
    th.start()
    try:
        assert started.wait(10)
        t0 = time.monotonic()
        results = [asyncio.run_coroutine_threadsafe(sleeps(0, i), loop)
                   .result(timeout=5) for i in range(20)]
        elapsed = time.monotonic() - t0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)
    assert results == list(range(20))
    assert elapsed < 5


def test_run_in_executor_rejects_coroutines_in_debug(loop):
    """In debug mode run_in_executor refuses coroutine functions."""
    loop.set_debug(True)
    with pytest.raises(TypeError,
                       match='coroutines cannot be used with '
                             'run_in_executor()'):
        loop.run_in_executor(None, returns)


def test_shutdown_asyncgens(loop):
    """shutdown_asyncgens closes asynchronous generators left open."""
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == [True]
    del g
