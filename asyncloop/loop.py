"""asyncloop.Loop: the C core plus what runs once per run or per call.

Everything that runs per callback (call_soon, timers, the iteration, the
descriptor watchers) is in the C type asyncloop._loop.Loop. This class adds
the parts asyncio writes in Python and that run once: run_forever's set-up,
run_until_complete, close, the exception handler, executors, asynchronous
generator hooks, signals and name resolution. Their behaviour follows
asyncio.base_events and asyncio.unix_events of the running interpreter.
"""
import asyncio
import concurrent.futures
import errno
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref

from asyncio import coroutines, events, futures, tasks
from asyncio.log import logger

from . import _loop
from ._lowlevel import LowLevelMixin
from ._pipes import PipesMixin
from ._streams import StreamsMixin
from ._subprocess import SubprocessMixin

__all__ = ('Loop',)

# asyncio's DEBUG_STACK_DEPTH: frames kept for coroutine origin tracking.
_DEBUG_STACK_DEPTH = 10
_PY312 = sys.version_info >= (3, 12)
_PY313 = sys.version_info >= (3, 13)


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() has already stopped on this exception.
            return
    futures._get_loop(fut).stop()


def _noop_signal_handler(signum, frame):
    """Python-level handler of signals handled by the loop: the C-level
    handler of the signal module writes the number to the wakeup fd, which
    is all the loop needs."""


class Loop(_loop.Loop, PipesMixin, StreamsMixin, LowLevelMixin,
           SubprocessMixin, asyncio.AbstractEventLoop):
    """An asyncio event loop running on libuv."""

    def __init__(self):
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._signal_handlers = {}
        self._ssock = self._csock = None
        self._wakeup_fd_owned = False
        self._old_wakeup_fd = -1
        self.set_debug(coroutines._is_debug_mode())

    def __repr__(self):
        return (f'<{self.__class__.__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning,
                  source=self)
            if not self.is_running():
                self.close()

    # ---- running ---------------------------------------------------------

    def _check_running(self):
        if self.is_running():
            raise RuntimeError('This event loop is already running')
        if events._get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self.get_debug())
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            self._install_wakeup_fd()
            self._run_forever_c()
        finally:
            self._restore_wakeup_fd()
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def run_until_complete(self, future):
        """Run until the future (or coroutine) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The caller cannot see this task: do not warn if it is
            # destroyed while pending (KeyboardInterrupt, say).
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                # Mark the exception as retrieved: it is raised right now.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def close(self):
        """Close the loop: drop pending callbacks, release libuv resources.

        The loop must not be running. Closing twice is a no-op.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        self._close_c()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        if not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            warnings.warn(f"Closing the loop {self!r} on interpreter "
                          f"shutdown stage, skipping signal handlers removal",
                          ResourceWarning, source=self)
            self._signal_handlers.clear()
        self._close_self_pipe()

    # ---- debug mode ------------------------------------------------------

    def set_debug(self, enabled):
        self._debug = bool(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking,
                                      enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # ---- tasks -----------------------------------------------------------

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # ---- exception handling ----------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, '
                            f'got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context as asyncio's default loop does."""
        message = context.get('message') or 'Unhandled exception in event loop'
        exception = context.get('exception')
        exc_info = False
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        current = self._current_handle
        if ('source_traceback' not in context and current is not None
                and current._source_traceback):
            context['handle_traceback'] = current._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in {'message', 'exception'}:
                continue
            lines.append(f'{key}: {self._format_context_value(key, context[key])}')
        logger.error('\n'.join(lines), exc_info=exc_info)

    @staticmethod
    def _format_context_value(key, value):
        titles = {'source_traceback': 'Object created at',
                  'handle_traceback': 'Handle created at'}
        if key not in titles:
            return repr(value)
        stack = ''.join(traceback.format_list(value)).rstrip()
        return f'{titles[key]} (most recent call last):\n{stack}'

    def call_exception_handler(self, context):
        """Pass the context to the handler set, or to the default one."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler',
                             exc_info=True)
            return
        try:
            self._run_exception_handler(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler '
                             'while handling an unexpected error '
                             'in custom exception handler',
                             exc_info=True)

    def _run_exception_handler(self, context):
        if not _PY312:
            self._exception_handler(self, context)
            return
        # 3.12+: the handler runs in the context of the task, future or
        # handle the error is about.
        thing = (context.get('task') or context.get('future')
                 or context.get('handle'))
        ctx = None
        if thing is not None and hasattr(thing, 'get_context'):
            ctx = thing.get_context()
        if ctx is not None and hasattr(ctx, 'run'):
            ctx.run(self._exception_handler, self, context)
        else:
            self._exception_handler(self, context)

    # ---- asynchronous generators -----------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close all asynchronous generators still open."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[ag.aclose() for ag in closing],
                                     return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # ---- executors -------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        self._check_closed()
        if self.get_debug():
            self._check_executor_callback(func)
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    @staticmethod
    def _check_executor_callback(func):
        if coroutines.iscoroutine(func) or coroutines.iscoroutinefunction(func):
            raise TypeError("coroutines cannot be used with run_in_executor()")
        if not callable(func):
            raise TypeError(f'a callable object was expected by '
                            f'run_in_executor(), got {func!r}')

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(future.set_result, None)
        except Exception as ex:
            if not self.is_closed():
                self.call_soon_threadsafe(future.set_exception, ex)

    async def _shutdown_default_executor(self, timeout):
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        if _PY313:
            # 3.13 stops waiting for the threads at the timeout.
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                self._warn_executor_not_joined(timeout)
            else:
                thread.join()
            return
        # 3.12 waits for the shutdown, then up to timeout for the thread.
        try:
            await future
        finally:
            thread.join(timeout)
        if thread.is_alive():
            self._warn_executor_not_joined(timeout)

    def _warn_executor_not_joined(self, timeout):
        warnings.warn("The executor did not finishing joining "
                      f"its threads within {timeout} seconds.",
                      RuntimeWarning, stacklevel=3)
        self._default_executor.shutdown(wait=False)

    if _PY312:
        async def shutdown_default_executor(self, timeout=None):
            """Shut the default executor down, waiting up to timeout."""
            await self._shutdown_default_executor(timeout)
    else:
        async def shutdown_default_executor(self):
            """Shut the default executor down and wait for its threads."""
            await self._shutdown_default_executor(None)

    # ---- name resolution -------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0,
                          flags=0):
        """socket.getaddrinfo() without blocking the loop.

        A numeric host and port need no lookup: they are answered here
        directly; anything else is resolved in the default executor.
        """
        numeric = self._getaddrinfo_numeric(host, port, family, type, proto,
                                            flags)
        if numeric is not None:
            return numeric
        return await self.run_in_executor(None, socket.getaddrinfo, host,
                                          port, family, type, proto, flags)

    @staticmethod
    def _getaddrinfo_numeric(host, port, family, type, proto, flags):
        if flags & socket.AI_CANONNAME:
            return None
        if not (port is None or isinstance(port, int)
                or (isinstance(port, (str, bytes)) and port.isdigit())):
            return None
        try:
            return socket.getaddrinfo(
                host, port, family, type, proto,
                flags | socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
        except (socket.gaierror, UnicodeError, TypeError, OverflowError):
            return None

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr,
                                          flags)

    # ---- descriptor watchers ---------------------------------------------

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # ---- signals ---------------------------------------------------------
    #
    # As asyncio's Unix loop: the signal module's C handler writes the
    # signal number to a wakeup socket that the loop watches; the Python
    # handler installed is a no-op. The same wakeup socket lets Python-level
    # handlers (asyncio.Runner's SIGINT handler) run promptly while the loop
    # waits, whichever thread the signal was delivered to.

    def _make_self_pipe(self):
        if self._ssock is None:
            self._ssock, self._csock = socket.socketpair()
            self._ssock.setblocking(False)
            self._csock.setblocking(False)
            self._add_reader(self._ssock.fileno(), self._read_from_self)

    def _close_self_pipe(self):
        if self._ssock is not None:
            self._ssock.close()
            self._csock.close()
            self._ssock = self._csock = None

    def _read_from_self(self):
        while True:
            try:
                data = self._ssock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                handle = self._signal_handlers.get(signum)
                if handle is not None and not handle._cancelled:
                    self._call_signal_handler(handle)

    def _call_signal_handler(self, handle):
        self.call_soon(handle._callback, *handle._args,
                       context=handle._context)

    def _install_wakeup_fd(self):
        """While running in the main thread, signals wake the loop up."""
        if threading.current_thread() is not threading.main_thread():
            return
        if self._wakeup_fd_owned:
            return
        self._make_self_pipe()
        fd = self._csock.fileno()
        old = signal.set_wakeup_fd(fd)
        if old not in (-1, fd):
            # Someone else watches signals this way: leave theirs in place.
            signal.set_wakeup_fd(old)
            return
        self._old_wakeup_fd = old
        self._wakeup_fd_owned = 'run'

    def _restore_wakeup_fd(self):
        if self._wakeup_fd_owned == 'run':
            self._wakeup_fd_owned = False
            try:
                current = signal.set_wakeup_fd(self._old_wakeup_fd)
                if self._csock is None or current != self._csock.fileno():
                    # Code run by the loop installed its own: keep it.
                    signal.set_wakeup_fd(current)
            except (ValueError, OSError):
                pass

    @staticmethod
    def _check_signal(sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def add_signal_handler(self, sig, callback, *args):
        """Call callback(*args) in the loop when signal sig arrives."""
        if (coroutines.iscoroutine(callback) or
                coroutines.iscoroutinefunction(callback)):
            raise TypeError("coroutines cannot be used "
                            "with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        self._make_self_pipe()
        try:
            # Raises ValueError outside the main thread, before anything
            # is changed.
            signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._wakeup_fd_owned = 'signals'
        handle = asyncio.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _noop_signal_handler)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                self._release_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler of signal sig; True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        if sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not self._signal_handlers:
            self._release_wakeup_fd()
        return True

    def _release_wakeup_fd(self):
        if self.is_running() and self._wakeup_fd_owned:
            # Still needed until run_forever() returns, which restores it.
            self._old_wakeup_fd = -1
            self._wakeup_fd_owned = 'run'
            return
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            logger.info('set_wakeup_fd(-1) failed: %s', exc)
        self._wakeup_fd_owned = False
