"""os.fork() with an asyncloop loop alive.

A loop inherited by a forked child shares libuv's epoll instance (and its
own descriptor watcher's) with the parent: running it in the child would
steal or remove the parent's registrations. asyncloop refuses, with a
RuntimeError that says what to do, and a new loop made in the child works.
These are asyncloop's own rules (the default loop has no such check), so
the tests use the `aloop` fixture.

Each child reports its outcome through a pipe and always ends with
os._exit(), so no part of the pytest run happens twice.
"""
import asyncio
import json
import os
import socket
import time
import warnings

import pytest

import asyncloop

CHILD_TIMEOUT = 30


def fork():
    # Python 3.12+ warns about fork() in a process with threads (earlier
    # tests may leave executor threads behind): irrelevant here.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return os.fork()


def in_child(body):
    """Run body() in a forked child; return what it returned (JSON) and
    the child's exit status. The child never returns into pytest."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            result = body()
        except BaseException as exc:
            result = {'unexpected': repr(exc)}
            code = 1
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(code)
    os.close(w)
    return _collect(pid, r)


def _collect(pid, r):
    deadline = time.monotonic() + CHILD_TIMEOUT
    data = b''
    try:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError('the child did not exit in time')
        time.sleep(0.01)
    code = os.waitstatus_to_exitcode(status)
    return (json.loads(data) if data else None), code


def outcome(func, *args):
    """('ok', result) or (exception class name, message)."""
    try:
        return ['ok', repr(func(*args))]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]


def assert_refused(result):
    kind, message = result
    assert kind == 'RuntimeError', result
    assert 'fork' in message, result
    assert 'new event loop' in message, result


def test_inherited_loop_refuses_to_run_in_child(aloop):
    """In the child, run_until_complete(), run_forever() and add_reader() on
    the parent's loop raise RuntimeError mentioning fork."""
    aloop.run_until_complete(asyncio.sleep(0))
    a, b = socket.socketpair()

    def child():
        async def noop():
            return 'ran'

        return {
            'run_until_complete': outcome(aloop.run_until_complete, noop()),
            'run_forever': outcome(aloop.run_forever),
            'add_reader': outcome(aloop.add_reader, a.fileno(), print),
            'add_writer': outcome(aloop.add_writer, a.fileno(), print),
            'is_running': aloop.is_running(),
        }

    try:
        result, code = in_child(child)
    finally:
        a.close()
        b.close()
    assert code == 0, result
    assert_refused(result['run_until_complete'])
    assert_refused(result['run_forever'])
    assert_refused(result['add_reader'])
    assert_refused(result['add_writer'])
    assert result['is_running'] is False


def test_parent_loop_keeps_working_after_child_touched_it(aloop):
    """The parent has a reader and a timer pending; the child tries to run,
    add and remove watchers on the inherited loop, then closes it. Back in
    the parent, the reader and the timer still fire."""
    a, b = socket.socketpair()
    got = []
    aloop.add_reader(a.fileno(), lambda: got.append(('read', a.recv(100))))
    aloop.call_later(0.3, got.append, ('timer',))
    aloop.run_until_complete(asyncio.sleep(0))

    def child():
        async def noop():
            pass

        res = {
            'run': outcome(aloop.run_until_complete, noop()),
            'add_reader': outcome(aloop.add_reader, a.fileno(), print),
            'remove_reader': outcome(aloop.remove_reader, a.fileno()),
            'close': outcome(aloop.close),
        }
        # Data sent now must still reach the parent's reader.
        b.send(b'from child')
        return res

    try:
        result, code = in_child(child)
        assert code == 0, result
        assert_refused(result['run'])
        assert_refused(result['add_reader'])
        assert result['close'] == ['ok', 'None']

        async def wait():
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        aloop.run_until_complete(wait())
        assert ('read', b'from child') in got
        assert ('timer',) in got
        b.send(b'from parent')
        got.clear()
        aloop.run_until_complete(asyncio.wait_for(_until(lambda: got), 10))
        assert got == [('read', b'from parent')]
    finally:
        aloop.remove_reader(a.fileno())
        a.close()
        b.close()


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


def test_new_loop_in_child_works(aloop):
    """A new loop made in the child runs normally: asyncloop.run(), timers,
    readers on a socketpair, an executor."""
    aloop.run_until_complete(asyncio.sleep(0))

    def child():
        async def main():
            loop = asyncio.get_running_loop()
            a, b = socket.socketpair()
            fut = loop.create_future()
            loop.add_reader(a.fileno(), lambda: fut.set_result(a.recv(10)))
            loop.call_later(0.01, b.send, b'hi')
            data = await asyncio.wait_for(fut, 10)
            loop.remove_reader(a.fileno())
            a.close()
            b.close()
            thread_result = await loop.run_in_executor(None, sum, [1, 2])
            return [type(loop).__name__, data.decode(), thread_result]

        return asyncloop.run(main())

    result, code = in_child(child)
    assert code == 0, result
    assert result == ['Loop', 'hi', 3]


def test_loop_made_in_child_unaffected_by_inherited_one(aloop):
    """The child may have the parent's loop and a new loop side by side:
    only the inherited one refuses to run."""
    def child():
        fresh = asyncloop.new_event_loop()
        try:
            first = outcome(aloop.run_until_complete, asyncio.sleep(0))
            second = outcome(fresh.run_until_complete,
                             asyncio.sleep(0, 'fresh'))
        finally:
            fresh.close()
        return [first, second]

    result, code = in_child(child)
    assert code == 0, result
    assert_refused(result[0])
    assert result[1] == ['ok', "'fresh'"]


def test_fork_inside_running_callback(aloop):
    """os.fork() from a callback of the running loop: in the child the loop
    stops with RuntimeError at its next iteration; the parent's run goes
    on and completes normally."""
    r, w = os.pipe()
    pids = []

    def forking_callback():
        pids.append(fork())

    async def main():
        aloop.call_soon(forking_callback)
        await asyncio.sleep(0.05)
        return 'parent done'

    try:
        res = ['ok', aloop.run_until_complete(main())]
    except BaseException as exc:
        res = [type(exc).__name__, str(exc)]
    if pids == [0]:
        # The child: report and leave, whatever happened.
        try:
            os.close(r)
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    result, code = _collect(pids[0], r)
    assert res == ['ok', 'parent done']
    assert code == 0
    assert_refused(result)
    assert not aloop.is_running()
    assert aloop.run_until_complete(asyncio.sleep(0, 'again')) == 'again'


def test_fork_inside_callback_child_starts_fresh(aloop):
    """A child forked from a running callback can leave the inherited loop
    alone and run a fresh loop (in a thread of its own, since the inherited
    loop still counts as running in the forking thread)."""
    r, w = os.pipe()
    pids = []

    def forking_callback():
        pid = fork()
        pids.append(pid)
        if pid == 0:
            try:
                os.close(r)
                # The inherited loop is "running" in this thread: a new
                # loop must run elsewhere, as with the default loop.
                import threading
                out = []
                t = threading.Thread(target=lambda: out.append(
                    asyncloop.run(asyncio.sleep(0.01, 'child ok'))))
                t.start()
                t.join(CHILD_TIMEOUT)
                os.write(w, json.dumps(out).encode())
            finally:
                os._exit(0)

    aloop.call_soon(forking_callback)
    aloop.run_until_complete(asyncio.sleep(0.05))
    os.close(w)
    result, code = _collect(pids[0], r)
    assert code == 0
    assert result == ['child ok']


@pytest.mark.parametrize('what', ['timer', 'reader'])
def test_child_dropping_inherited_loop_does_not_disturb_parent(what):
    """A child that drops the last reference to the inherited loop (its
    destructor runs in the child) leaves the parent's pending timer or
    reader working."""
    holder = [asyncloop.new_event_loop()]
    a, b = socket.socketpair()
    got = []
    if what == 'reader':
        holder[0].add_reader(a.fileno(), lambda: got.append(a.recv(10)))
    else:
        holder[0].call_later(0.2, got.append, b'timer')
    holder[0].run_until_complete(asyncio.sleep(0))

    def child():
        import gc
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ResourceWarning)
            holder.clear()
            gc.collect()
        return 'dropped'

    try:
        result, code = in_child(child)
        assert (result, code) == ('dropped', 0)
        loop = holder[0]
        if what == 'reader':
            b.send(b'x')
        loop.run_until_complete(asyncio.wait_for(_until(lambda: got), 10))
        assert got == [b'x' if what == 'reader' else b'timer']
    finally:
        holder[0].close()
        a.close()
        b.close()


def test_fork_while_loop_runs_in_other_thread():
    """The parent's loop is running (waiting) in a thread when the main
    thread forks. In the child, that loop cannot be run (it is 'running' in
    a thread that does not exist there), call_soon_threadsafe() on it does
    not crash, and a new loop works. The parent's loop keeps working."""
    import threading
    loop = asyncloop.new_event_loop()
    started = threading.Event()
    got = []

    def run():
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(CHILD_TIMEOUT)
        time.sleep(0.05)  # let it reach the wait

        def child():
            res = {'run': outcome(loop.run_until_complete, asyncio.sleep(0))}
            res['threadsafe'] = outcome(
                lambda: loop.call_soon_threadsafe(lambda: None) and 'ok')
            res['fresh'] = asyncloop.run(asyncio.sleep(0.01, 'fresh ok'))
            return res

        result, code = in_child(child)
        assert code == 0, result
        assert result['run'][0] == 'RuntimeError'
        assert result['fresh'] == 'fresh ok'
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (got.append('parent'), done.set()))
        assert done.wait(CHILD_TIMEOUT)
        assert got == ['parent']
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CHILD_TIMEOUT)
        loop.close()
