"""The Loop methods for the sock_* coroutines, UDP endpoints and sock_sendfile.

The per-operation work is C (asyncloop/_loop: src/sock.c, src/udp.c): each
sock_* coroutine here makes one call into C, which tries the socket at once
and hands back either the result or, when the socket would block, a SockOp
registered with the loop to await. Argument checking and set-up that runs
once per endpoint (create_datagram_endpoint) follows asyncio.base_events of
the running interpreter.

The transport registry: ``loop._transports`` maps a descriptor to the
transport that owns it (a weakref.WeakValueDictionary, as asyncio's). A
transport adds itself when it adopts a socket; add_reader(), add_writer(),
remove_reader(), remove_writer() and a sock_* call that has to wait raise
RuntimeError for a descriptor whose transport is not closing.
"""
import errno
import functools
import io
import os
import socket
import stat
import sys
import warnings
import weakref

from asyncio import (base_events, constants, exceptions, futures,
                     transports, trsock)
from asyncio.log import logger

from . import _loop

_SockOp = _loop.SockOp
_HAS_IPV6 = hasattr(socket, 'AF_INET6')
_PY313 = sys.version_info >= (3, 13)


def _sendfile_source(file, count):
    """(descriptor, bytes to send) of a file for os.sendfile(), or
    SendfileNotAvailableError when it has no descriptor or size."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError("not a regular file")
    try:
        fsize = os.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError("not a regular file")
    return fileno, count if count else fsize


async def _finish(op):
    """Await a SockOp, whose close() unregisters its watcher whether the
    operation finished, failed or was cancelled."""
    try:
        return await op
    finally:
        op.close()


def _set_result_unless_done(fut):
    if not fut.done():
        fut.set_result(None)


class LowLevelMixin:
    """Mixed into asyncloop.Loop."""

    @functools.cached_property
    def _transports(self):
        return weakref.WeakValueDictionary()

    def _ensure_fd_no_transport(self, fd):
        fileno = fd
        if not isinstance(fileno, int):
            try:
                fileno = int(fileno.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fd!r}") from None
        transport = self._transports.get(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f'File descriptor {fd!r} is used by transport '
                               f'{transport!r}')

    # ---- sock_* coroutines -----------------------------------------------
    #
    # Each returns at once when the socket does not block; otherwise it
    # awaits the SockOp through _finish().

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the socket."""
        op = self._sock_recv(sock, n)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_recv_into(self, sock, buf):
        """Receive into the writable buffer buf; return the byte count."""
        op = self._sock_recv_into(sock, buf)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram: (data, address)."""
        op = self._sock_recvfrom(sock, bufsize)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf: (nbytes, address)."""
        op = self._sock_recvfrom_into(sock, buf, nbytes)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_sendall(self, sock, data):
        """Send all of data on the connected socket."""
        op = self._sock_sendall(sock, data)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address; return the bytes sent."""
        op = self._sock_sendto(sock, data, address)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        op = self._sock_accept(sock)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def sock_connect(self, sock, address):
        """Connect the socket to address, resolving a host name first."""
        self._sock_check(sock)
        if sock.family == socket.AF_INET or (
                _HAS_IPV6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type,
                proto=sock.proto, loop=self)
            address = resolved[0][4]
        op = self._sock_connect(sock, address)
        if op.__class__ is not _SockOp:
            return op
        return await _finish(op)

    async def _ensure_resolved(self, address, *, family=0,
                               type=socket.SOCK_STREAM, proto=0, flags=0,
                               loop):
        """[addrinfo] of address: no lookup when the host is numeric."""
        host, port = address[:2]
        info = base_events._ipaddr_info(host, port, family, type, proto,
                                        *address[2:])
        if info is not None:
            return [info]
        return await loop.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)

    async def _wait_fd(self, fd, write):
        """Wait until fd is writable (write) or readable."""
        fut = self.create_future()
        if write:
            handle = self._add_writer(fd, _set_result_unless_done, fut)
        else:
            handle = self._add_reader(fd, _set_result_unless_done, fut)
        try:
            await fut
        finally:
            if not handle.cancelled():
                if write:
                    self._remove_writer(fd)
                else:
                    self._remove_reader(fd)

    # ---- sock_sendfile ---------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None, *,
                            fallback=True):
        """Send a file over a connected stream socket; return bytes sent.

        Uses os.sendfile() (zero copy) when the file is a regular file,
        else, if fallback is true, reads and sends it in blocks.
        """
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        self._sock_check(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset,
                                                    count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    @staticmethod
    def _check_sendfile_params(sock, file, offset, count):
        if 'b' not in getattr(file, 'mode', 'b'):
            raise ValueError("file should be opened in binary mode")
        if not sock.type == socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(
                    f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(
                    f"count must be a positive integer (got {count!r})")
        if not isinstance(offset, int):
            raise TypeError(
                f"offset must be a non-negative integer (got {offset!r})")
        if offset < 0:
            raise ValueError(
                f"offset must be a non-negative integer (got {offset!r})")

    async def _sock_sendfile_native(self, sock, file, offset, count):
        fileno, blocksize = _sendfile_source(file, count)
        if not blocksize:
            return 0
        return await self._sendfile_to_fd(sock.fileno(), fileno, offset,
                                          count, blocksize, check_fd=True)

    async def _sendfile_to_fd(self, fd, fileno, offset, count, blocksize, *,
                              check_fd):
        """os.sendfile() from fileno to the non-blocking socket fd until
        count bytes (or the whole file) are sent, waiting whenever the
        socket is full; the file position ends after what was sent. With
        check_fd, a wait refuses a descriptor owned by a transport (the
        sock_* rule); loop.sendfile() sends on its transport's own one."""
        # Within what os.sendfile() takes on a 32-bit build, as asyncio.
        blocksize = min(blocksize, sys.maxsize // 2 + 1)
        total_sent = 0
        try:
            while not count or total_sent < count:
                if count:
                    blocksize = min(count - total_sent, sys.maxsize // 2 + 1)
                try:
                    sent = os.sendfile(fd, fileno, offset + total_sent,
                                       blocksize)
                except (BlockingIOError, InterruptedError):
                    if check_fd:
                        self._ensure_fd_no_transport(fd)
                    await self._wait_fd(fd, True)
                    continue
                except OSError as exc:
                    if total_sent == 0:
                        # Not a file sendfile() can read (a pipe, a
                        # socket): the caller may fall back on send().
                        raise exceptions.SendfileNotAvailableError(
                            "os.sendfile call failed") from exc
                    if (exc.errno == errno.ENOTCONN
                            and type(exc) is not ConnectionError):
                        raise ConnectionError("socket is not connected",
                                              errno.ENOTCONN) from exc
                    raise
                if sent == 0:
                    break  # end of file
                total_sent += sent
                if sent < blocksize and total_sent != count:
                    # The socket is full: a second call now would only
                    # fail with EAGAIN (asyncio waits here too).
                    if check_fd:
                        self._ensure_fd_no_transport(fd)
                    await self._wait_fd(fd, True)
            return total_sent
        finally:
            if total_sent > 0:
                os.lseek(fileno, offset + total_sent, os.SEEK_SET)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = (
            min(count, constants.SENDFILE_FALLBACK_READBUFFER_SIZE)
            if count else constants.SENDFILE_FALLBACK_READBUFFER_SIZE)
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    # ---- UDP -------------------------------------------------------------

    async def create_datagram_endpoint(self, protocol_factory,
                                       local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0,
                                       reuse_port=None,
                                       allow_broadcast=None, sock=None):
        """Create a datagram endpoint: (transport, protocol)."""
        if sock is not None:
            self._check_datagram_sock(sock, local_addr, remote_addr, family,
                                      proto, flags, reuse_port,
                                      allow_broadcast)
            sock.setblocking(False)
            r_addr = None
        else:
            sock, r_addr = await self._open_datagram_socket(
                local_addr, remote_addr, family, proto, flags, reuse_port,
                allow_broadcast)
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_datagram_transport(sock, protocol, r_addr,
                                                  waiter)
        if self.get_debug():
            if local_addr:
                logger.info("Datagram endpoint local_addr=%r remote_addr=%r "
                            "created: (%r, %r)", local_addr, remote_addr,
                            transport, protocol)
            else:
                logger.debug("Datagram endpoint remote_addr=%r created: "
                             "(%r, %r)", remote_addr, transport, protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    def _make_datagram_transport(self, sock, protocol, address=None,
                                 waiter=None, extra=None):
        return DatagramTransport(self, sock, protocol, address, waiter,
                                 extra)

    @staticmethod
    def _check_datagram_sock(sock, local_addr, remote_addr, family, proto,
                             flags, reuse_port, allow_broadcast):
        if _PY313:
            if sock.type == socket.SOCK_STREAM:
                raise ValueError(
                    f'A datagram socket was expected, got {sock!r}')
        elif sock.type != socket.SOCK_DGRAM:
            raise ValueError(f'A UDP Socket was expected, got {sock!r}')
        opts = dict(local_addr=local_addr, remote_addr=remote_addr,
                    family=family, proto=proto, flags=flags,
                    reuse_port=reuse_port, allow_broadcast=allow_broadcast)
        problems = ', '.join(f'{k}={v}' for k, v in opts.items() if v)
        if problems:
            raise ValueError(
                f'socket modifier keyword arguments can not be used '
                f'when sock is specified. ({problems})')

    async def _datagram_addr_pairs(self, local_addr, remote_addr, family,
                                   proto, flags):
        """[((family, proto), (local address, remote address))] to try."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError('unexpected address family')
            return [((family, proto), (None, None))]
        if hasattr(socket, 'AF_UNIX') and family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError('string is expected')
            if local_addr and local_addr[0] not in (0, '\x00'):
                _remove_stale_unix_socket(local_addr)
            return [((family, proto), (local_addr, remote_addr))]
        # Group the resolved addresses by (family, proto), keeping the
        # resolver's order.
        addr_infos = {}
        for idx, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError('2-tuple is expected')
            infos = await self._ensure_resolved(
                addr, family=family, type=socket.SOCK_DGRAM, proto=proto,
                flags=flags, loop=self)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            for fam, _, pro, _, address in infos:
                addr_infos.setdefault((fam, pro), [None, None])[idx] = address
        pairs = [(key, pair) for key, pair in addr_infos.items()
                 if not ((local_addr and pair[0] is None)
                         or (remote_addr and pair[1] is None))]
        if not pairs:
            raise ValueError('can not get address information')
        return pairs

    async def _open_datagram_socket(self, local_addr, remote_addr, family,
                                    proto, flags, reuse_port,
                                    allow_broadcast):
        pairs = await self._datagram_addr_pairs(local_addr, remote_addr,
                                                family, proto, flags)
        exceptions_ = []
        for (fam, pro), (local_address, remote_address) in pairs:
            sock = None
            try:
                sock = socket.socket(family=fam, type=socket.SOCK_DGRAM,
                                     proto=pro)
                if reuse_port:
                    if not hasattr(socket, 'SO_REUSEPORT'):
                        raise ValueError(
                            'reuse_port not supported by socket module')
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT,
                                    1)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local_address)
                r_addr = None
                if remote_addr:
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote_address)
                    r_addr = remote_address
            except OSError as exc:
                if sock is not None:
                    sock.close()
                exceptions_.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                return sock, r_addr
        raise exceptions_[0]


def _remove_stale_unix_socket(path):
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error('Unable to check or remove stale UNIX socket %r: %r',
                     path, err)


# ---- the datagram transport -------------------------------------------------
#
# The work (reading, sending, buffering, flow control, closing) is done by
# the C type asyncloop._loop.DatagramCore (src/udp.c); this class makes it
# an asyncio transport and keeps the extra information.


class DatagramTransport(transports.Transport, transports.DatagramTransport):
    """A datagram transport of asyncloop (UDP, UNIX datagram sockets).

    Also an asyncio.Transport, as the default loop's datagram transport is
    (tests and libraries check for it); its stream methods say what to
    use instead.
    """

    max_size = 256 * 1024

    def __init__(self, loop, sock, protocol, address=None, waiter=None,
                 extra=None):
        super().__init__(extra)
        self._extra['socket'] = trsock.TransportSocket(sock)
        try:
            self._extra['sockname'] = sock.getsockname()
        except OSError:
            self._extra['sockname'] = None
        if 'peername' not in self._extra:
            try:
                self._extra['peername'] = sock.getpeername()
            except socket.error:
                self._extra['peername'] = None
        self._loop = loop
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._address = address
        self._core = _loop.DatagramCore(loop, self, sock, protocol, address,
                                        bool(self._extra['peername']))
        loop._transports[self._sock_fd] = self
        loop.call_soon(protocol.connection_made, self)
        # Reading starts once connection_made() has run.
        loop.call_soon(self._core._start)
        if waiter is not None:
            loop.call_soon(futures._set_result_unless_cancelled, waiter,
                           None)

    def __repr__(self):
        info = [self.__class__.__name__]
        core = self._core
        if core.get_protocol() is None and core.is_closing():
            info.append('closed')
        elif core.is_closing():
            info.append('closing')
        info.append(f'fd={self._sock_fd}')
        reading, writing = core.polling()
        info.append('read=polling' if reading else 'read=idle')
        state = 'polling' if writing else 'idle'
        info.append(f'write=<{state}, bufsize={core.get_write_buffer_size()}>')
        return '<{}>'.format(' '.join(info))

    def __del__(self, _warn=warnings.warn):
        core = getattr(self, '_core', None)
        if core is not None and core.get_protocol() is not None \
                and self._sock.fileno() != -1:
            _warn(f"unclosed transport {self!r}", ResourceWarning,
                  source=self)
            self._sock.close()

    def sendto(self, data, addr=None):
        """Send data to addr (or to the remote address given)."""
        self._core.sendto(data, addr)

    def abort(self):
        """Close now, dropping buffered datagrams."""
        self._core.abort()

    def close(self):
        """Close once the buffered datagrams are sent."""
        self._core.close()

    def is_closing(self):
        return self._core.is_closing()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def get_protocol(self):
        return self._core.get_protocol()

    # ---- asyncio.Transport's stream methods ------------------------------

    def write(self, data):
        raise RuntimeError('a datagram transport sends with sendto()')

    def writelines(self, list_of_data):
        raise RuntimeError('a datagram transport sends with sendto()')

    def write_eof(self):
        raise RuntimeError('a datagram transport has no end of stream')

    def can_write_eof(self):
        return False
