"""Child process behaviour specific to asyncloop: what happens to children
when the loop is closed first, reaping that survives Popen.poll(), and the
fallback without pidfds. (The default loop differs here: with its pidfd
watcher, a child outliving its loop stays a zombie and its pidfd stays
open.)"""
import asyncio
import gc
import os
import signal
import time

import pytest

from asyncloop import _subprocess

from test_subprocess import PIPE, DEVNULL, exec_output, open_fds, proc_state, py, run


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out')
        time.sleep(0.01)


# The transport outliving its loop warns, and its close() from __del__ fails
# on the closed loop, exactly as on the default loop.
outlives_loop = pytest.mark.filterwarnings(
    'ignore::ResourceWarning',
    'ignore::pytest.PytestUnraisableExceptionWarning')


@outlives_loop
def test_loop_closed_with_live_child(aloop):
    """The child keeps running, as on the default loop; once it exits it is
    reaped, and the pidfd is closed."""
    run(aloop, asyncio.sleep(0))
    before = open_fds()

    async def start():
        return await asyncio.create_subprocess_exec(
            *py('import time; time.sleep(60)'), stdin=DEVNULL,
            stdout=DEVNULL, stderr=DEVNULL)

    proc = run(aloop, start())
    pid = proc.pid
    aloop.close()
    assert proc_state(pid) in ('S', 'R')
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: proc_state(pid) is None)
    popen = proc._transport.get_extra_info('subprocess')
    wait_until(lambda: popen.returncode is not None)
    assert popen.returncode == -signal.SIGKILL
    proc = popen = None
    gc.collect()
    # The closed loop's own descriptors are gone too: compare what is new.
    assert open_fds() - before == set()


@outlives_loop
def test_loop_closed_then_transport_freed(aloop):
    run(aloop, asyncio.sleep(0))
    before = open_fds()

    async def start():
        return await aloop.subprocess_exec(
            asyncio.SubprocessProtocol, *py('import time; time.sleep(60)'),
            stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)

    transport, _ = run(aloop, start())
    pid = transport.get_pid()
    aloop.close()
    transport.kill()
    del transport
    gc.collect()
    wait_until(lambda: proc_state(pid) is None)
    wait_until(lambda: open_fds() - before == set())


def test_status_kept_when_popen_reaps_first(aloop):
    """Popen.wait()/poll() reaping the child before the loop sees it exit:
    the status Popen read is reported (the default loop reports 255)."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; sys.exit(17)'))
        popen = proc._transport.get_extra_info('subprocess')
        popen.wait()            # blocks the loop; reaps the child
        return await proc.wait()

    assert run(aloop, main()) == 17


def test_reaped_elsewhere_reports_255(aloop, caplog):
    """A waitpid() of the program taking the status: 255, as asyncio."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; sys.exit(3)'))
        os.waitpid(proc.pid, 0)
        return await proc.wait()

    assert run(aloop, main()) == 255
    assert 'exit status already read' in caplog.text


def test_without_pidfd_a_thread_waits(aloop, monkeypatch):
    monkeypatch.setattr(_subprocess, '_HAVE_PIDFD', False)

    async def main():
        results = [await exec_output('sh', '-c', f'echo {i}; exit {i}')
                   for i in range(5)]
        proc = await asyncio.create_subprocess_exec(
            *py('import time; time.sleep(60)'))
        proc.kill()
        return results, await proc.wait()

    results, killed = run(aloop, main())
    assert results == [(i, f'{i}\n'.encode()) for i in range(5)]
    assert killed == -signal.SIGKILL


def test_busy_pipe_is_enlarged_and_budget_returned(aloop):
    import fcntl
    from asyncloop import _pipes

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import os; os.write(1, bytes(8 << 20))'), stdout=PIPE)
        fd = proc._transport.get_pipe_transport(1)._fileno
        first = await proc.stdout.readexactly(1 << 20)
        size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        rest = await proc.stdout.read()
        await proc.wait()
        return len(first) + len(rest), size

    total, size = run(aloop, main())
    assert total == 8 << 20
    assert size == _pipes._GROWN_CAPACITY
    gc.collect()
    assert _pipes._grown == 0


def test_poll_from_another_thread_never_loses_the_status(aloop):
    """Popen.poll() racing the loop's reaping (from a thread) always sees
    the child's real status."""
    import threading
    stop = threading.Event()
    seen = []

    def poller(popen):
        while not stop.is_set() and popen.poll() is None:
            pass
        seen.append(popen.returncode)

    async def one():
        proc = await asyncio.create_subprocess_exec('sh', '-c', 'exit 33')
        popen = proc._transport.get_extra_info('subprocess')
        thread = threading.Thread(target=poller, args=(popen,))
        thread.start()
        try:
            return await proc.wait()
        finally:
            stop.set()
            thread.join()
            stop.clear()

    async def main():
        return [await one() for _ in range(20)]

    assert run(aloop, main()) == [33] * 20
    assert seen == [33] * 20


def test_no_enlarging_past_the_budget(aloop, monkeypatch):
    import fcntl
    from asyncloop import _pipes
    monkeypatch.setattr(_pipes, '_GROWN_BUDGET', 0)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import os; os.write(1, bytes(4 << 20))'), stdout=PIPE)
        fd = proc._transport.get_pipe_transport(1)._fileno
        first = await proc.stdout.readexactly(1 << 20)
        size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        rest = await proc.stdout.read()
        await proc.wait()
        return len(first) + len(rest), size

    total, size = run(aloop, main())
    assert total == 4 << 20
    assert size < _pipes._GROWN_CAPACITY
    assert _pipes._grown == 0
