"""loop.run_in_executor(), set_default_executor() and
shutdown_default_executor(), as asyncio.base_events defines them."""
import asyncio
import concurrent.futures
import contextvars
import sys
import threading
import time
import warnings

import pytest

PY312 = sys.version_info >= (3, 12)


def test_default_executor_runs_in_a_thread(loop):
    """run_in_executor(None, ...) calls func(*args) in a worker thread of
    the default executor (named 'asyncio_...') and returns its result."""
    def work(a, b):
        return a + b, threading.current_thread()

    result, thread = loop.run_until_complete(
        loop.run_in_executor(None, work, 2, 3))
    assert result == 5
    assert thread is not threading.current_thread()
    assert thread.name.startswith('asyncio')


def test_returns_asyncio_future(loop):
    """The result is an asyncio future of this loop."""
    async def main():
        fut = loop.run_in_executor(None, time.sleep, 0)
        assert asyncio.isfuture(fut)
        assert asyncio.futures._get_loop(fut) is loop
        return await fut

    assert loop.run_until_complete(main()) is None


def test_default_executor_is_reused(loop):
    """Later calls use the same default executor (the same pool)."""
    async def main():
        names = set()
        for _ in range(20):
            names.add(await loop.run_in_executor(
                None, lambda: threading.current_thread().name))
        return names

    names = loop.run_until_complete(main())
    assert all(name.startswith('asyncio') for name in names)


def test_exception_propagates(loop):
    """An exception raised by func comes out of the awaited future."""
    def fail():
        raise KeyError('in worker')

    with pytest.raises(KeyError, match='in worker'):
        loop.run_until_complete(loop.run_in_executor(None, fail))


def test_custom_executor(loop):
    """A given executor is used instead of the default one."""
    with concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix='custom') as pool:
        name = loop.run_until_complete(loop.run_in_executor(
            pool, lambda: threading.current_thread().name))
    assert name.startswith('custom')


def test_custom_non_thread_executor(loop):
    """Any concurrent.futures.Executor will do, not only thread pools."""
    class Inline(concurrent.futures.Executor):
        def submit(self, fn, *args, **kwargs):
            fut = concurrent.futures.Future()
            fut.set_result(fn(*args, **kwargs))
            return fut

    assert loop.run_until_complete(
        loop.run_in_executor(Inline(), pow, 2, 10)) == 1024


def test_many_concurrent_calls(loop):
    """Many calls at once all complete, with their own results."""
    async def main():
        return await asyncio.gather(
            *[loop.run_in_executor(None, pow, i, 2) for i in range(100)])

    assert loop.run_until_complete(main()) == [i * i for i in range(100)]


def test_worker_result_wakes_idle_loop(loop):
    """A worker that finishes while the loop waits with nothing else to do
    wakes it up."""
    t0 = time.monotonic()
    assert loop.run_until_complete(
        loop.run_in_executor(None, lambda: time.sleep(0.2) or 'late')) == \
        'late'
    assert time.monotonic() - t0 < 30


def test_cancel_before_start(loop):
    """Cancelling the asyncio future of a call still queued cancels the
    concurrent one: func never runs."""
    started = threading.Event()
    release = threading.Event()
    ran = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        async def main():
            blocker = loop.run_in_executor(
                pool, lambda: (started.set(), release.wait(30)))
            queued = loop.run_in_executor(pool, ran.append, 'ran')
            await loop.run_in_executor(None, started.wait, 30)
            queued.cancel()
            # The cancellation reaches the concurrent future through a
            # callback of the loop: let it run before the worker is free.
            for _ in range(3):
                await asyncio.sleep(0)
            release.set()
            await blocker
            with pytest.raises(asyncio.CancelledError):
                await queued

        loop.run_until_complete(main())
    assert ran == []


def test_to_thread(loop):
    """asyncio.to_thread() works on the loop and carries the context."""
    var = contextvars.ContextVar('var')

    async def main():
        var.set('ctx value')
        return await asyncio.to_thread(var.get)

    assert loop.run_until_complete(main()) == 'ctx value'


# ---- set_default_executor --------------------------------------------------

def test_set_default_executor(loop):
    """The executor set is the one run_in_executor(None, ...) uses."""
    with concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix='mine') as pool:
        loop.set_default_executor(pool)
        name = loop.run_until_complete(loop.run_in_executor(
            None, lambda: threading.current_thread().name))
    assert name.startswith('mine')


@pytest.mark.parametrize('executor', [
    None, object(), 'pool',
    concurrent.futures.Executor(),
], ids=['None', 'object', 'str', 'Executor'])
def test_set_default_executor_requires_thread_pool(loop, executor):
    """Anything but a ThreadPoolExecutor is a TypeError with asyncio's
    message."""
    with pytest.raises(TypeError) as info:
        loop.set_default_executor(executor)
    assert str(info.value) == 'executor must be ThreadPoolExecutor instance'


def test_set_default_executor_process_pool(loop):
    """A ProcessPoolExecutor is refused too."""
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1)
    try:
        with pytest.raises(TypeError,
                           match='executor must be ThreadPoolExecutor'):
            loop.set_default_executor(pool)
    finally:
        pool.shutdown(wait=False)


def test_set_default_executor_subclass(loop):
    """A ThreadPoolExecutor subclass is accepted."""
    class Pool(concurrent.futures.ThreadPoolExecutor):
        pass

    with Pool() as pool:
        loop.set_default_executor(pool)
        assert loop.run_until_complete(
            loop.run_in_executor(None, len, 'abc')) == 3


# ---- shutdown_default_executor ---------------------------------------------

def test_shutdown_default_executor_joins_threads(loop):
    """shutdown_default_executor() waits for the default executor's
    threads to end."""
    thread = loop.run_until_complete(
        loop.run_in_executor(None, threading.current_thread))
    loop.run_until_complete(loop.shutdown_default_executor())
    thread.join(10)
    assert not thread.is_alive()


def test_shutdown_waits_for_running_work(loop):
    """Work already running finishes before shutdown returns."""
    done = []

    async def main():
        fut = loop.run_in_executor(
            None, lambda: (time.sleep(0.2), done.append('work')))
        await asyncio.sleep(0.05)
        await loop.shutdown_default_executor()
        done.append('shutdown')
        await fut

    loop.run_until_complete(main())
    assert done == ['work', 'shutdown']


def test_run_in_executor_after_shutdown(loop):
    """After shutdown_default_executor(), run_in_executor(None, ...) raises
    RuntimeError('Executor shutdown has been called'); a custom executor
    still works."""
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError) as info:
        loop.run_in_executor(None, int)
    assert str(info.value) == 'Executor shutdown has been called'
    with concurrent.futures.ThreadPoolExecutor() as pool:
        assert loop.run_until_complete(
            loop.run_in_executor(pool, int, '7')) == 7


def test_shutdown_without_default_executor(loop):
    """Shutting down before any use is fine, and forbids later use of the
    default executor as well."""
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match='Executor shutdown has been'):
        loop.run_in_executor(None, int)


@pytest.mark.skipif(not PY312, reason='timeout= is 3.12+')
def test_shutdown_with_timeout_quick_worker(loop):
    """shutdown_default_executor(timeout=...) with work that ends in time:
    no warning."""
    loop.run_until_complete(loop.run_in_executor(None, time.sleep, 0.01))
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        loop.run_until_complete(loop.shutdown_default_executor(timeout=30))


@pytest.mark.skipif(PY312, reason='3.11 has no timeout=')
def test_shutdown_has_no_timeout_on_311(loop):
    """On 3.11 shutdown_default_executor() takes no timeout, as asyncio's."""
    with pytest.raises(TypeError):
        loop.shutdown_default_executor(timeout=1)


def _stuck_worker_outcome(loop):
    """Runs shutdown_default_executor(timeout=0.2) while a worker is stuck
    (released by a timer thread after 3 s). Returns (warning messages,
    whether shutdown returned before the worker was released)."""
    release = threading.Event()
    started = threading.Event()
    releaser = threading.Timer(3.0, release.set)

    async def main():
        loop.run_in_executor(None, lambda: (started.set(), release.wait(30)))
        await loop.run_in_executor(None, started.wait, 30)
        releaser.start()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            await loop.shutdown_default_executor(timeout=0.2)
        return ([str(w.message) for w in caught
                 if issubclass(w.category, RuntimeWarning)],
                not release.is_set())

    try:
        return loop.run_until_complete(main())
    finally:
        release.set()
        releaser.cancel()


@pytest.fixture(scope='module')
def reference_stuck_worker_outcome():
    """What the default loop of this interpreter does (3.12.0/3.12.1 waited
    for the worker regardless of timeout; later versions do not)."""
    loop = asyncio.new_event_loop()
    try:
        return _stuck_worker_outcome(loop)
    finally:
        loop.close()


@pytest.mark.skipif(not PY312, reason='timeout= is 3.12+')
def test_shutdown_timeout_with_stuck_worker(loop,
                                            reference_stuck_worker_outcome):
    """shutdown_default_executor(timeout=0.2) with a worker that does not
    finish: as the default loop of this Python, it stops waiting after the
    timeout and warns with a RuntimeWarning about the executor's threads."""
    messages, returned_early = _stuck_worker_outcome(loop)
    ref_messages, ref_returned_early = reference_stuck_worker_outcome
    assert returned_early == ref_returned_early
    assert messages == ref_messages
    if ref_returned_early:
        assert messages == ['The executor did not finishing joining its '
                            'threads within 0.2 seconds.']


def test_close_shuts_down_default_executor(new_loop):
    """close() shuts the default executor down (without waiting); running
    in it afterwards fails as the loop is closed."""
    loop = new_loop()
    thread = loop.run_until_complete(
        loop.run_in_executor(None, threading.current_thread))
    loop.close()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.run_in_executor(None, int)


# ---- errors ----------------------------------------------------------------

def test_closed_loop(new_loop):
    """run_in_executor() on a closed loop: RuntimeError, for the default and
    for a custom executor."""
    loop = new_loop()
    loop.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.run_in_executor(None, int)
    with concurrent.futures.ThreadPoolExecutor() as pool:
        with pytest.raises(RuntimeError, match='Event loop is closed'):
            loop.run_in_executor(pool, int)


def test_debug_rejects_coroutine_function(loop):
    """In debug mode a coroutine function is refused with TypeError."""
    loop.set_debug(True)

    async def coro_func():
        pass

    with pytest.raises(TypeError) as info:
        loop.run_in_executor(None, coro_func)
    assert str(info.value) == ('coroutines cannot be used with '
                               'run_in_executor()')


def test_debug_rejects_coroutine_object(loop):
    """In debug mode a coroutine object is refused with TypeError."""
    loop.set_debug(True)

    async def coro_func():
        pass

    coro = coro_func()
    try:
        with pytest.raises(TypeError, match='coroutines cannot be used'):
            loop.run_in_executor(None, coro)
    finally:
        coro.close()


def test_debug_rejects_non_callable(loop):
    """In debug mode a non-callable is refused with asyncio's message."""
    loop.set_debug(True)
    with pytest.raises(TypeError) as info:
        loop.run_in_executor(None, 42)
    assert str(info.value) == ('a callable object was expected by '
                               'run_in_executor(), got 42')


def test_non_debug_non_callable_fails_in_worker(loop):
    """Without debug mode a non-callable is only found out by the worker:
    the future fails with TypeError."""
    loop.set_debug(False)
    with pytest.raises(TypeError):
        loop.run_until_complete(loop.run_in_executor(None, 42))


def test_debug_check_before_shutdown_check(loop):
    """In debug mode the callback is checked before the executor state:
    a coroutine function after shutdown is still a TypeError."""
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.set_debug(True)

    async def coro_func():
        pass

    with pytest.raises(TypeError):
        loop.run_in_executor(None, coro_func)
