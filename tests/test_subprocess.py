"""Child processes: subprocess_exec/subprocess_shell, the subprocess
transport and protocol, asyncio.create_subprocess_* and reaping.

Every test runs on the default loop and on asyncloop (asyncio is the
reference); every child is waited for with a timeout.
"""
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
PY = sys.executable
TIMEOUT = 20


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def py(code, *args):
    """Arguments that run code in a quick Python child (no site import)."""
    return [PY, '-S', '-c', code, *args]


def open_fds():
    return set(os.listdir('/proc/self/fd'))


def proc_state(pid):
    """The state letter of /proc/<pid>/stat, or None if there is no such
    process (reaped)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError:
        return None


async def exec_output(*args, **kwargs):
    proc = await asyncio.create_subprocess_exec(*args, stdout=PIPE, **kwargs)
    out, _ = await proc.communicate()
    return proc.returncode, out


# ---- the basics -------------------------------------------------------------


def test_exec_communicate(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; data = sys.stdin.buffer.read();'
                'sys.stdout.buffer.write(data.upper());'
                'sys.stderr.buffer.write(b"err")'),
            stdin=PIPE, stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate(b'hello')
        return proc.returncode, out, err

    assert run(loop, main()) == (0, b'HELLO', b'err')


def test_shell(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            'echo out; echo err >&2; exit 3', stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        return proc.returncode, out, err

    assert run(loop, main()) == (3, b'out\n', b'err\n')


def test_shell_bytes_command(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(b'echo bytes',
                                                     stdout=PIPE)
        return await proc.communicate()

    assert run(loop, main()) == (b'bytes\n', None)


def test_shell_missing_command_is_127(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            'no-such-command-here-xyz', stderr=DEVNULL)
        return await proc.wait()

    assert run(loop, main()) == 127


def test_missing_executable_raises_at_the_call(new_loop):
    loop = new_loop()
    run(loop, asyncio.sleep(0))
    before = open_fds()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec('/no/such/program-xyz',
                                                 stdin=PIPE, stdout=PIPE,
                                                 stderr=PIPE)
        with pytest.raises(FileNotFoundError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol,
                                       'no-such-program-xyz')
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(PY, '-c', 'pass',
                                                 cwd='/no/such/dir-xyz')

    run(loop, main())
    assert open_fds() == before


# ---- argument checks, as asyncio ---------------------------------------------

BAD_OPTIONS = [
    ({'universal_newlines': True}, 'universal_newlines must be False'),
    ({'text': True}, 'text must be False'),
    ({'encoding': 'utf-8'}, 'encoding must be None'),
    ({'errors': 'strict'}, 'errors must be None'),
    ({'bufsize': 1}, 'bufsize must be 0'),
    ({'bufsize': -1}, 'bufsize must be 0'),
]


@pytest.mark.parametrize('kwargs, message', BAD_OPTIONS)
def test_exec_rejects_text_options(loop, kwargs, message):
    coro = loop.subprocess_exec(asyncio.SubprocessProtocol, PY, '-c', 'pass',
                                **kwargs)
    with pytest.raises(ValueError, match=message):
        run(loop, coro)


@pytest.mark.parametrize('kwargs, message', BAD_OPTIONS)
def test_shell_rejects_text_options(loop, kwargs, message):
    coro = loop.subprocess_shell(asyncio.SubprocessProtocol, 'true', **kwargs)
    with pytest.raises(ValueError, match=message):
        run(loop, coro)


def test_exec_rejects_shell(loop):
    with pytest.raises(ValueError, match='shell must be False'):
        run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, 'true',
                                       shell=True))


def test_shell_rejects_no_shell(loop):
    with pytest.raises(ValueError, match='shell must be True'):
        run(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, 'true',
                                        shell=False))


@pytest.mark.parametrize('cmd', [['echo', 'x'], 42, None])
def test_shell_command_must_be_str_or_bytes(loop, cmd):
    with pytest.raises(ValueError, match='cmd must be a string'):
        run(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, cmd))


def test_text_mode_of_create_subprocess_rejected(loop):
    async def main():
        with pytest.raises(ValueError, match='text must be False'):
            await asyncio.create_subprocess_exec(PY, '-c', 'pass', text=True)

    run(loop, main())


# ---- standard streams ----------------------------------------------------------


def test_child_stdio_are_pipes(loop):
    """As with the default loop, the child's 0, 1, 2 are pipes: it may open
    /dev/stdin, which a socket would refuse."""
    code = ('import os, stat, sys\n'
            'kinds = [stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in (0, 1, 2)]\n'
            'with open("/dev/stdin", "rb") as f: data = f.read()\n'
            'print(kinds, data)\n')

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py(code), stdin=PIPE, stdout=PIPE, stderr=PIPE)
        return await proc.communicate(b'via /dev/stdin')

    out, err = run(loop, main())
    assert out == b"[True, True, True] b'via /dev/stdin'\n", err


def test_devnull(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; print(repr(sys.stdin.read())); '
                'print("lost", file=sys.stderr)'),
            stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL)
        assert proc.stdin is None and proc.stderr is None
        return await proc.communicate()

    assert run(loop, main()) == (b"''\n", None)


def test_stderr_to_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import os; os.write(1, b"a"); os.write(2, b"b");'
                'os.write(1, b"c")'),
            stdout=PIPE, stderr=STDOUT)
        assert proc.stderr is None
        return await proc.communicate()

    assert run(loop, main()) == (b'abc', None)


def test_none_inherits(loop):
    """stdin/stdout/stderr=None: the child shares the parent's streams."""
    ours = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (0, 1, 2)]
    code = ('import os, sys\n'
            'ids = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino)'
            ' for fd in (0, 1, 2)]\n'
            'os.write(int(sys.argv[1]), repr(ids).encode())\n')
    r, w = os.pipe()
    try:
        async def main():
            proc = await asyncio.create_subprocess_exec(
                *py(code, str(w)), stdin=None, stdout=None, stderr=None,
                pass_fds=(w,))
            assert (proc.stdin, proc.stdout, proc.stderr) == (None,) * 3
            return await proc.wait()

        assert run(loop, main()) == 0
        assert os.read(r, 1000).decode() == repr(ours)
    finally:
        os.close(r)
        os.close(w)


def test_file_objects_and_descriptors(loop, tmp_path):
    src = tmp_path / 'in'
    src.write_bytes(b'from a file')
    out_path = tmp_path / 'out'
    err_path = tmp_path / 'err'
    code = ('import sys; data = sys.stdin.buffer.read();'
            'sys.stdout.buffer.write(data); sys.stderr.buffer.write(b"E")')

    async def main():
        with open(src, 'rb') as fin, open(out_path, 'wb') as fout:
            err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *py(code), stdin=fin, stdout=fout, stderr=err_fd)
                return await proc.wait()
            finally:
                os.close(err_fd)

    assert run(loop, main()) == 0
    assert out_path.read_bytes() == b'from a file'
    assert err_path.read_bytes() == b'E'


# ---- Popen keywords passed through ---------------------------------------------


def test_cwd_and_env(loop, tmp_path):
    code = 'import os; print(os.getcwd(), os.environ.get("ASYNCLOOP_X"))'
    result = run(loop, exec_output(*py(code), cwd=tmp_path,
                                   env={'ASYNCLOOP_X': 'yes'}))
    assert result == (0, f'{tmp_path} yes\n'.encode())


def test_pass_fds(loop):
    r, w = os.pipe()
    try:
        result = run(loop, exec_output(
            *py('import os, sys; os.write(int(sys.argv[1]), b"through")',
                str(w)), pass_fds=(w,)))
        assert result == (0, b'')
        assert os.read(r, 100) == b'through'
    finally:
        os.close(r)
        os.close(w)


FD_LISTER = ('import os\n'
             'fds = []\n'
             'for fd in range(256):\n'
             '    try: os.fstat(fd)\n'
             '    except OSError: continue\n'
             '    fds.append(fd)\n'
             'print(fds)\n')


def test_no_descriptor_leaks_into_children(loop):
    """The loop's own descriptors (pidfds, epoll, pipes of other children)
    never reach a child."""
    r, w = os.pipe()

    async def main():
        # Another child running meanwhile: its pipes and pidfd are open.
        other = await asyncio.create_subprocess_exec(
            *py('import sys; sys.stdin.read()'), stdin=PIPE, stdout=PIPE)
        plain = await exec_output(*py(FD_LISTER), stdin=PIPE, stderr=PIPE)
        passed = await exec_output(*py(FD_LISTER), stdin=PIPE, stderr=PIPE,
                                   pass_fds=(w,))
        other.stdin.close()
        await other.wait()
        return plain, passed

    try:
        plain, passed = run(loop, main())
    finally:
        os.close(r)
        os.close(w)
    assert plain == (0, b'[0, 1, 2]\n')
    assert passed == (0, f'{sorted([0, 1, 2, w])}\n'.encode())


def test_close_fds_false_keeps_inheritable(loop):
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        rc, out = run(loop, exec_output(*py(FD_LISTER), close_fds=False))
    finally:
        os.close(r)
        os.close(w)
    assert rc == 0
    assert w in eval(out)


def test_start_new_session(loop):
    code = 'import os; print(os.getsid(0) == os.getpid())'
    assert run(loop, exec_output(*py(code), start_new_session=True)) == \
        (0, b'True\n')
    assert run(loop, exec_output(*py(code))) == (0, b'False\n')


def test_process_group(loop):
    code = 'import os; print(os.getpgid(0) == os.getpid())'
    assert run(loop, exec_output(*py(code), process_group=0)) == \
        (0, b'True\n')


def _sig_ignored(status_text, signum):
    for line in status_text.splitlines():
        if line.startswith('SigIgn:'):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError('no SigIgn line')


@pytest.mark.skipif(signal.getsignal(signal.SIGPIPE) != signal.SIG_IGN,
                    reason='Python ignores SIGPIPE only when it owns main')
def test_restore_signals(loop):
    # cat is no Python: it keeps the dispositions it was started with.
    async def status(restore):
        return await exec_output('cat', '/proc/self/status',
                                 restore_signals=restore)

    rc, restored = run(loop, status(True))
    assert rc == 0 and not _sig_ignored(restored.decode(), signal.SIGPIPE)
    rc, kept = run(loop, status(False))
    assert rc == 0 and _sig_ignored(kept.decode(), signal.SIGPIPE)


def _umask_of(status_text):
    for line in status_text.splitlines():
        if line.startswith('Umask:'):
            return int(line.split()[1], 8)
    raise AssertionError('no Umask line')


def test_umask_and_preexec_fn(loop):
    rc, out = run(loop, exec_output('cat', '/proc/self/status', umask=0o037))
    assert rc == 0 and _umask_of(out.decode()) == 0o037
    rc, out = run(loop, exec_output('cat', '/proc/self/status',
                                    preexec_fn=lambda: os.umask(0o061)))
    assert rc == 0 and _umask_of(out.decode()) == 0o061


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to switch ids')
def test_user_group_extra_groups(loop):
    # The venv's Python may not be readable by that user: id(1) is.
    rc, out = run(loop, exec_output('id', '-u', cwd='/', user=65534,
                                    group=65533, extra_groups=[65532, 65531]))
    assert (rc, out) == (0, b'65534\n')
    rc, out = run(loop, exec_output('id', '-G', cwd='/', user=65534,
                                    group=65533, extra_groups=[65532, 65531]))
    assert rc == 0
    assert out.split()[0] == b'65533'
    assert sorted(out.split()[1:]) == [b'65531', b'65532']


def test_popen_errors_surface(loop):
    async def main():
        with pytest.raises(TypeError):
            await asyncio.create_subprocess_exec(PY, '-c', 'pass',
                                                 no_such_keyword=1)
        with pytest.raises(ValueError):
            await asyncio.create_subprocess_exec(PY, '-c', 'pass',
                                                 pass_fds=(-5,))

    run(loop, main())


# ---- the transport and protocol ---------------------------------------------------


class Recorder(asyncio.SubprocessProtocol):
    """Records every protocol call; `done` resolves at connection_lost."""

    def __init__(self, loop):
        self.events = []
        self.data = {1: b'', 2: b''}
        self.done = loop.create_future()
        self.exited = loop.create_future()

    def connection_made(self, transport):
        self.events.append('connection_made')

    def pipe_data_received(self, fd, data):
        self.events.append(('data', fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(('pipe_lost', fd, exc))

    def process_exited(self):
        self.events.append('process_exited')
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append(('connection_lost', exc))
        self.done.set_result(None)


def test_protocol_events_in_order(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop),
            *py('import os; os.write(1, b"out"); os.write(2, b"err");'
                'os.read(0, 1)'))
        transport.get_pipe_transport(0).write(b'x')
        await proto.done
        transport.close()
        return transport, proto

    transport, proto = run(loop, main())
    events = proto.events
    assert events[0] == 'connection_made'
    assert events[-1] == ('connection_lost', None)
    assert events.count('process_exited') == 1
    for fd in (1, 2):
        lost = events.index(('pipe_lost', fd, None))
        assert all(e != ('data', fd) for e in events[lost:])
    assert ('pipe_lost', 0, None) in events
    assert proto.data == {1: b'out', 2: b'err'}
    assert transport.get_returncode() == 0


def test_transport_api(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), *py('import sys; sys.stdin.read()'),
            stderr=DEVNULL)
        popen = transport.get_extra_info('subprocess')
        assert isinstance(popen, subprocess.Popen)
        assert transport.get_pid() == popen.pid > 0
        assert transport.get_returncode() is None
        assert transport.get_pipe_transport(0) is not None
        assert transport.get_pipe_transport(1) is not None
        assert transport.get_pipe_transport(2) is None
        assert transport.get_extra_info('nothing', 'dflt') == 'dflt'
        assert not transport.is_closing()
        transport.get_pipe_transport(0).close()
        await proto.done
        assert transport.get_returncode() == 0
        transport.close()
        assert transport.is_closing()
        transport.close()   # twice is fine

    run(loop, main())


@pytest.mark.parametrize('method, code', [
    ('terminate', -signal.SIGTERM),
    ('kill', -signal.SIGKILL),
    ('send_signal', -signal.SIGUSR1),
])
def test_signals_give_negative_returncode(loop, method, code):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop),
            *py('import os, sys; os.write(1, b"r"); sys.stdin.read()'),
            stderr=DEVNULL)
        while not proto.data[1]:    # running: its handlers are set
            await asyncio.sleep(0.005)
        if method == 'send_signal':
            transport.send_signal(signal.SIGUSR1)
        else:
            getattr(transport, method)()
        await proto.done
        transport.close()
        return transport.get_returncode()

    assert run(loop, main()) == code


def test_child_killed_by_own_signal(loop):
    code = 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'
    assert run(loop, exec_output(*py(code))) == (-signal.SIGKILL, b'')


def test_close_kills_running_child(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), *py('import time; time.sleep(60)'),
            stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        pid = transport.get_pid()
        transport.close()
        await proto.exited
        return pid, transport.get_returncode()

    pid, rc = run(loop, main())
    assert rc == -signal.SIGKILL
    assert proc_state(pid) is None


def test_process_wait_and_returncode(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; sys.exit(int(sys.stdin.readline()))'),
            stdin=PIPE)
        assert proc.returncode is None
        proc.stdin.write(b'42\n')
        await proc.stdin.drain()
        rc = await proc.wait()
        assert await proc.wait() == rc == proc.returncode
        return rc

    assert run(loop, main()) == 42


def test_stdin_drain_large_input(loop):
    payload = os.urandom(1 << 16) * 64    # 4 MiB

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py('import sys; d = sys.stdin.buffer.read();'
                'sys.stdout.buffer.write(d)'),
            stdin=PIPE, stdout=PIPE)

        async def feed():
            for i in range(0, len(payload), 1 << 20):
                proc.stdin.write(payload[i:i + (1 << 20)])
                await proc.stdin.drain()
            proc.stdin.close()
            await proc.stdin.wait_closed()

        out, _ = await asyncio.gather(proc.stdout.read(), feed())
        await proc.wait()
        return out

    assert run(loop, main()) == payload


def test_child_exits_while_stdin_written(loop):
    """Writing to a child that has exited raises BrokenPipeError (or
    ConnectionResetError) from drain(); communicate() ignores it."""
    code = 'import os; os.read(0, 1)'

    async def write_until_broken():
        proc = await asyncio.create_subprocess_exec(*py(code), stdin=PIPE)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(1000):
                proc.stdin.write(b'x' * 65536)
                await proc.stdin.drain()
        return await proc.wait()

    async def communicate():
        proc = await asyncio.create_subprocess_exec(*py(code), stdin=PIPE)
        await proc.communicate(b'x' * (8 << 20))
        return proc.returncode

    assert run(loop, write_until_broken()) == 0
    assert run(loop, communicate()) == 0


# ---- reaping ------------------------------------------------------------------------


def test_no_zombies_and_no_descriptor_leak(new_loop):
    loop = new_loop()
    run(loop, asyncio.sleep(0))
    before = open_fds()

    async def main():
        procs = [await asyncio.create_subprocess_exec(
                     'sh', '-c', f'exit {i % 7}', stdin=PIPE, stdout=PIPE)
                 for i in range(40)]
        codes = [(await p.communicate(), p.returncode)[1] for p in procs]
        return [p.pid for p in procs], codes

    pids, codes = run(loop, main())
    assert codes == [i % 7 for i in range(40)]
    assert [pid for pid in pids if proc_state(pid) is not None] == []
    assert open_fds() == before


def test_does_not_steal_status_of_threads_children(loop):
    """subprocess.run() in other threads gets its own children's status."""
    results = []
    stop = threading.Event()

    def runner(code):
        while not stop.is_set():
            results.append((code, subprocess.run(['sh', '-c', f'exit {code}'])
                            .returncode))

    threads = [threading.Thread(target=runner, args=(c,)) for c in (3, 4)]

    async def main():
        for t in threads:
            t.start()
        try:
            return [await exec_output('sh', '-c', f'exit {i % 5 + 10}')
                    for i in range(30)]
        finally:
            stop.set()
            await loop.run_in_executor(None, lambda: [t.join()
                                                      for t in threads])

    ours = run(loop, main())
    assert ours == [(i % 5 + 10, b'') for i in range(30)]
    assert results and all(code == rc for code, rc in results)


def test_does_not_steal_status_from_own_sigchld_handler(loop):
    """A program reaping its own children in a SIGCHLD handler keeps their
    status, and the loop's children are still reported."""
    theirs = {}
    own_pids = set()

    def on_sigchld(signum, frame):
        for pid in list(own_pids):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:   # reaped by a nested call
                continue
            if done:
                own_pids.discard(pid)
                theirs[pid] = os.waitstatus_to_exitcode(status)

    old = signal.signal(signal.SIGCHLD, on_sigchld)
    try:
        async def main():
            for i in range(10):
                own_pids.add(os.posix_spawn('/bin/sh', ['sh', '-c', 'exit 9'],
                                            os.environ))
            ours = [await exec_output('sh', '-c', 'exit 5')
                    for _ in range(10)]
            while own_pids:
                await asyncio.sleep(0.01)
                on_sigchld(None, None)    # a signal may have coalesced
            return ours

        ours = run(loop, main())
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert ours == [(5, b'')] * 10
    assert list(theirs.values()) == [9] * 10


def test_hundreds_of_concurrent_children(loop):
    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            'sh', '-c', 'read x; echo "$x$x"', stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(f'{i}\n'.encode())
        return proc.returncode, out

    async def main():
        return await asyncio.gather(*(one(i) for i in range(300)))

    results = run(loop, main(), timeout=40)
    assert results == [(0, f'{i}{i}\n'.encode()) for i in range(300)]


def test_large_stdout_and_stderr_at_once(loop):
    """A child writing 150 MiB to stdout and to stderr, alternately, in
    blocking writes: both are read, nothing deadlocks."""
    mib = 150
    code = ('import os, sys\n'
            'block = b"o" * (1 << 20)\n'
            'for _ in range(int(sys.argv[1])):\n'
            '    for fd in (1, 2):\n'
            '        view = memoryview(block)\n'
            '        while view: view = view[os.write(fd, view):]\n')

    class Counter(Recorder):
        def pipe_data_received(self, fd, data):
            self.data[fd] += len(data)

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Counter(loop), *py(code, str(mib)), stdin=DEVNULL)
        proto.data = {1: 0, 2: 0}
        await proto.done
        transport.close()
        return transport.get_returncode(), proto.data

    assert run(loop, main(), timeout=40) == (0, {1: mib << 20, 2: mib << 20})


def test_debug_mode_logs_program_not_arguments(loop, caplog):
    loop.set_debug(True)
    caplog.set_level('DEBUG', logger='asyncio')

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), 'sh', '-c', 'exit 0  # secret-argument',
            stdin=DEVNULL, stderr=STDOUT)
        await proto.done
        transport.close()
        transport, proto = await loop.subprocess_shell(
            lambda: Recorder(loop), 'exit 0', stdout=DEVNULL, stderr=DEVNULL)
        await proto.done
        transport.close()

    run(loop, main())
    loop.set_debug(False)
    assert "execute program 'sh'" in caplog.text
    assert 'stdout=stderr=<pipe>' in caplog.text
    assert "run shell command 'exit 0'" in caplog.text
    assert 'secret-argument' not in caplog.text


def test_loop_sigchld_handler_alongside_children(loop):
    """A program's own loop.add_signal_handler(SIGCHLD) keeps working while
    the loop runs children, and takes nothing from them."""
    calls = []
    loop.add_signal_handler(signal.SIGCHLD, calls.append, 'chld')
    try:
        async def main():
            results = [await exec_output('sh', '-c', f'exit {i}')
                       for i in range(5)]
            for _ in range(100):
                if calls:
                    break
                await asyncio.sleep(0.01)
            return results

        results = run(loop, main())
    finally:
        loop.remove_signal_handler(signal.SIGCHLD)
    assert results == [(i, b'') for i in range(5)]
    assert calls


def test_subprocess_pipe_pause_reading(loop):
    async def main():
        # The child writes only once told to, after the pause: however
        # slow the machine, nothing can have been read before it.
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop),
            *py('import os; os.read(0, 1); os.write(1, b"a" * 1000)'),
            stderr=DEVNULL)
        stdout = transport.get_pipe_transport(1)
        stdout.pause_reading()
        transport.get_pipe_transport(0).write(b'x')
        await proto.exited
        await asyncio.sleep(0.05)
        held = proto.data[1]
        stdout.resume_reading()
        await proto.done
        transport.close()
        return held, proto.data[1]

    held, data = run(loop, main())
    assert held == b'' and data == b'a' * 1000


@pytest.mark.filterwarnings('ignore::ResourceWarning',
                            'ignore::pytest.PytestUnraisableExceptionWarning')
def test_loop_close_leaves_child_running(loop):
    """Closing the loop does not kill a child whose transport is still open
    (the transport's close() would)."""
    async def start():
        return await asyncio.create_subprocess_exec(
            *py('import time; time.sleep(60)'), stdin=DEVNULL,
            stdout=DEVNULL, stderr=DEVNULL)

    proc = run(loop, start())
    loop.close()
    try:
        time.sleep(0.05)
        assert proc_state(proc.pid) in ('R', 'S')
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        popen = proc._transport.get_extra_info('subprocess')
        # The default loop's pidfd watcher leaves the zombie behind: wait
        # for it here (harmless if a watcher reaped it already).
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            popen.wait(TIMEOUT)


def test_executable_and_pipesize(loop):
    import fcntl

    async def main():
        named = await exec_output('renamed', '-c', 'echo $0',
                                  executable='/bin/sh')
        proc = await asyncio.create_subprocess_exec(
            *py('pass'), stdout=PIPE, pipesize=1 << 20)
        fd = proc._transport.get_pipe_transport(1)._fileno
        size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        await proc.communicate()
        return named, size

    assert run(loop, main()) == ((0, b'renamed\n'), 1 << 20)
