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
import os
import subprocess

from asyncio import base_events, unix_events
from asyncio.log import logger

_format_pipe = base_events._format_pipe


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
        transport = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        self._watch_child(transport.get_pid(), transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    def _watch_child(self, pid, transport):
        """Report the exit of child pid to its transport, via a pidfd."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already gone and reaped by someone else.
            self.call_soon(transport._process_exited, 255)
            return
        self._add_reader(pidfd, self._child_exited, pid, pidfd, transport)

    def _child_exited(self, pid, pidfd, transport):
        self._remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            # Reaped elsewhere (a waitpid(-1) of the program): as asyncio's
            # watchers, report 255.
            returncode = 255
            logger.warning("child process pid %d exit status already read: "
                           " will report returncode 255", pid)
        else:
            returncode = os.waitstatus_to_exitcode(status)
        transport._process_exited(returncode)
