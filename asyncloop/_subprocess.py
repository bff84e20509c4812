"""The Loop methods subprocess_exec and subprocess_shell.

A child is started with subprocess.Popen, so every Popen keyword the
default loop passes through works the same (cwd, env, pass_fds, preexec_fn,
user, group, umask, process_group, ...). Its pipes are the loop's pipe
transports and the subprocess transport is asyncio's own. Each child is
reaped through a pidfd (Linux 5.3+) watched by the loop: no SIGCHLD
handler, no thread, and no waitpid() on other processes, so children
started elsewhere (subprocess.run in a thread, the program's own SIGCHLD
handling) keep their exit status.
"""
import contextlib
import errno
import os
import subprocess
import threading

from asyncio import base_events, unix_events
from asyncio.log import logger

_format_pipe = base_events._format_pipe
_HAVE_PIDFD = hasattr(os, 'pidfd_open') and hasattr(os, 'P_PIDFD')
_NO_LOCK = contextlib.nullcontext()


def _check_popen_options(universal_newlines, bufsize, text, encoding,
                         errors):
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


class SubprocessMixin:
    """Mixed into asyncloop.Loop."""

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=False,
                              shell=False, bufsize=0,
                              encoding=None, errors=None, text=None,
                              **kwargs):
        """Run program with args in a child process."""
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        _check_popen_options(False, bufsize, text, encoding, errors)
        return await self._start_subprocess(
            protocol_factory, (program,) + args, False,
            f'execute program {program!r}', stdin, stdout, stderr, bufsize,
            kwargs)

    async def subprocess_shell(self, protocol_factory, cmd, *,
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               universal_newlines=False,
                               shell=True, bufsize=0,
                               encoding=None, errors=None, text=None,
                               **kwargs):
        """Run cmd through the shell in a child process."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        _check_popen_options(False, bufsize, text, encoding, errors)
        return await self._start_subprocess(
            protocol_factory, cmd, True, f'run shell command {cmd!r}',
            stdin, stdout, stderr, bufsize, kwargs)

    async def _start_subprocess(self, protocol_factory, args, shell,
                                debug_log, stdin, stdout, stderr, bufsize,
                                kwargs):
        protocol = protocol_factory()
        debug = self.get_debug()
        if debug:
            # Like asyncio: the arguments may hold secrets, so only the
            # program and the pipes are logged.
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, args, shell, stdin, stdout, stderr, bufsize, **kwargs)
        if debug:
            logger.info('%s: %r', debug_log, transport)
        return transport, protocol

    @staticmethod
    def _log_subprocess(msg, stdin, stdout, stderr):
        info = [msg]
        if stdin is not None:
            info.append(f'stdin={_format_pipe(stdin)}')
        if stdout is not None and stderr == subprocess.STDOUT:
            info.append(f'stdout=stderr={_format_pipe(stdout)}')
        else:
            if stdout is not None:
                info.append(f'stdout={_format_pipe(stdout)}')
            if stderr is not None:
                info.append(f'stderr={_format_pipe(stderr)}')
        logger.debug(' '.join(info))


    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        waiter = self.create_future()
        # Popen runs here, synchronously, as on the default loop: a missing
        # program raises FileNotFoundError from this call.
        transport = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        _watch_child(self, transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport


def _watch_child(loop, transport):
    """Arrange for transport._process_exited() once the child exits."""
    if _HAVE_PIDFD:
        try:
            _PidfdWatch(loop, transport)
            return
        except ProcessLookupError:
            # Already reaped by a waitpid(-1) of the program: its status
            # is lost, as with asyncio's watchers.
            _report_lost_status(transport.get_pid())
            loop.call_soon(transport._process_exited, 255)
            return
        except OSError as exc:
            # A kernel before 5.3, or a seccomp filter refusing it.
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
    # Without pidfds, one thread per child blocks in waitpid(pid).
    if not _start_thread(_wait_in_thread, loop, transport):
        raise RuntimeError('cannot watch the child process: no thread')


def _report_lost_status(pid):
    logger.warning("child process pid %d exit status already read: "
                   "will report returncode 255", pid)


def _exit_code(info):
    """Popen's returncode for os.waitid()'s result: negative for a signal."""
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


class _PidfdWatch:
    """Reports the exit of one child to its transport, through a pidfd.

    The pidfd becomes readable when the child exits, and waitid() on it
    reaps exactly that child: the status of processes started elsewhere
    (subprocess.run in a thread, the program's own SIGCHLD handling) is
    never taken, and no signal handler is installed.

    The loop's watcher holds the only reference to this object. If the
    loop is closed while the child runs, the watcher goes and __del__
    hands the child to a thread that reaps it when it exits: no zombie
    stays behind and the pidfd is closed.
    """

    __slots__ = ('_loop', '_transport', '_pidfd')

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._pidfd = -1
        pidfd = os.pidfd_open(transport.get_pid())   # close-on-exec
        try:
            loop._add_reader(pidfd, self._exited)
        except BaseException:
            os.close(pidfd)
            raise
        self._pidfd = pidfd

    def _exited(self):
        pidfd, self._pidfd = self._pidfd, -1
        transport, self._transport = self._transport, None
        self._loop._remove_reader(pidfd)
        returncode = _reap(pidfd, transport._proc)
        # As the default loop, report it from the next iteration, after the
        # reads of the pipes that became ready together with the exit.
        self._loop.call_soon(transport._process_exited, returncode)

    def __del__(self):
        if self._pidfd >= 0:
            pidfd, self._pidfd = self._pidfd, -1
            popen = self._transport._proc
            self._transport = None
            if not _start_thread(_reap, pidfd, popen):
                os.close(pidfd)


def _reap(pidfd, popen):
    """Reap the child of pidfd (closing it) and return its returncode.

    Popen's own lock is held meanwhile, as Popen.wait() and poll() do: a
    poll() from another thread then sees the child running until its
    status is stored, rather than a lost status, and Popen.send_signal()
    cannot signal a pid already reaped and reused.
    """
    try:
        with getattr(popen, '_waitpid_lock', None) or _NO_LOCK:
            return _reap_locked(pidfd, popen)
    finally:
        os.close(pidfd)


def _reap_locked(pidfd, popen):
    # Popen.poll() (from the transport's close() and send_signal(), or the
    # program through get_extra_info('subprocess')) may have reaped it
    # first: the status it stored is the one.
    if popen.returncode is None:
        try:
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        except ChildProcessError:
            _report_lost_status(popen.pid)
            popen.returncode = 255
        else:
            popen.returncode = _exit_code(info)
    return popen.returncode


def _wait_in_thread(loop, transport):
    """Fallback without pidfds: wait for the child of transport in a thread,
    holding Popen's lock as _reap() does."""
    popen = transport._proc
    with getattr(popen, '_waitpid_lock', None) or _NO_LOCK:
        if popen.returncode is None:
            try:
                _, status = os.waitpid(popen.pid, 0)
            except ChildProcessError:
                _report_lost_status(popen.pid)
                popen.returncode = 255
            else:
                popen.returncode = os.waitstatus_to_exitcode(status)
    try:
        loop.call_soon_threadsafe(transport._process_exited, popen.returncode)
    except RuntimeError:
        pass    # the loop was closed meanwhile: nobody is left to tell


def _start_thread(target, *args):
    """Run target(*args) in a daemon thread; False if none can be started
    (at interpreter shutdown)."""
    try:
        threading.Thread(target=target, args=args, daemon=True,
                         name='asyncloop-waitpid').start()
    except RuntimeError:
        return False
    return True
