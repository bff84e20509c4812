"""The Loop methods connect_read_pipe and connect_write_pipe.

The transports are asyncio's own Unix pipe transports. They drive the pipe
through the loop's descriptor watchers (`_add_reader`/`_add_writer`, which
asyncloop implements in C with the semantics those transports expect), so
EOF, BrokenPipeError, pause/resume reading and write flow control behave
exactly as on the default loop; writes go out at once when the pipe can
take them.

One addition: a pipe that a read finds full, or a write cannot take whole,
is enlarged (see _Enlarging), so that a fast writer and the loop wake up
less often.
"""
import fcntl
import os
import stat
import sys
import termios
import threading

from asyncio import unix_events
from asyncio.log import logger

# Capacity given to a busy pipe: twice asyncio's read size (max_size), so
# that the writer can refill one half while the loop reads the other. Reads
# stay 256 KiB: larger reads were measured slower (a fresh bytes object per
# read costs more in page faults than the wake-ups saved), and so were pipes
# of 1 MiB. The kernel counts pipe capacity against a per-user soft limit
# (fs.pipe-user-pages-soft, 64 MiB by default) past which every new pipe of
# the user gets a tiny buffer: the budget of enlarged pipes keeps far below.
_GROWN_BUDGET = 32
_grown = 0
_grown_lock = threading.Lock()


def _max_pipe_size(default=1 << 20):
    try:
        with open('/proc/sys/fs/pipe-max-size') as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


_GROWN_CAPACITY = min(512 * 1024, _max_pipe_size())


def _take_grown_slot():
    global _grown
    with _grown_lock:
        if _grown >= _GROWN_BUDGET:
            return False
        _grown += 1
        return True


def _give_back_grown_slot():
    global _grown
    with _grown_lock:
        _grown -= 1


def _bytes_waiting(fd):
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b'\0\0\0\0')
    except OSError:
        return 0
    return int.from_bytes(raw, sys.byteorder)


class _Enlarging:
    """Mixed into asyncio's pipe transports: enlarges a busy pipe, once.

    A pipe holds 64 KiB by default: a fast writer fills it, sleeps, and is
    woken for every 64 KiB the reader takes. A pipe found full is enlarged
    to _GROWN_CAPACITY, so both sides wake up less often. Nothing else
    changes: data, EOF, errors, pause/resume and flow control are asyncio's.
    """

    _capacity = 0       # of the pipe while it may still be enlarged
    _grown = False

    def _init_capacity(self):
        if stat.S_ISFIFO(os.fstat(self._fileno).st_mode):
            try:
                capacity = fcntl.fcntl(self._fileno, fcntl.F_GETPIPE_SZ)
            except OSError:
                return
            if capacity < _GROWN_CAPACITY:
                self._capacity = capacity

    def _grow(self):
        if not _take_grown_slot():
            return              # tried again when next found full
        self._capacity = 0      # else one attempt only
        try:
            fcntl.fcntl(self._fileno, fcntl.F_SETPIPE_SZ, _GROWN_CAPACITY)
        except OSError:
            # Over the user's pipe limits (EPERM), or more data than the
            # new size (EBUSY): the pipe stays as it is.
            _give_back_grown_slot()
            return
        self._grown = True

    def _call_connection_lost(self, exc):
        try:
            super()._call_connection_lost(exc)
        finally:
            self._release()

    def __del__(self):
        # Also when the loop was closed before the connection_lost call.
        self._release()
        super().__del__()

    def _release(self):
        if self._grown:
            self._grown = False
            _give_back_grown_slot()


class _ReadPipeTransport(_Enlarging, unix_events._UnixReadPipeTransport):
    """asyncio's read pipe transport; the pipe grows when a read finds it
    full (the bytes waiting reach its capacity)."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(loop, pipe, protocol, waiter, extra)
        self._init_capacity()

    def _read_ready(self):
        if self._capacity and _bytes_waiting(self._fileno) >= self._capacity:
            self._grow()
        super()._read_ready()


class _WritePipeTransport(_Enlarging, unix_events._UnixWritePipeTransport):
    """asyncio's write pipe transport; the pipe grows when a write leaves
    data in the transport's buffer (the pipe could not take it all)."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(loop, pipe, protocol, waiter, extra)
        self._init_capacity()

    def write(self, data):
        super().write(data)
        if self._capacity and self._buffer:
            self._grow()


class PipesMixin:
    """Mixed into asyncloop.Loop."""

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None,
                                  extra=None):
        return _ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None,
                                   extra=None):
        return _WritePipeTransport(self, pipe, protocol, waiter, extra)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Wrap the read end of a pipe (or FIFO, PTY, character device)."""
        return await self._connect_pipe(self._make_read_pipe_transport,
                                        'Read', protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Wrap the write end of a pipe (or FIFO, PTY, character device)."""
        return await self._connect_pipe(self._make_write_pipe_transport,
                                        'Write', protocol_factory, pipe)

    async def _connect_pipe(self, make_transport, kind, protocol_factory,
                            pipe):
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = make_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('%s pipe %r connected: (%r, %r)', kind,
                         pipe.fileno(), transport, protocol)
        return transport, protocol
