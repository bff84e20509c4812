"""The datagram transport of create_datagram_endpoint.

The work (reading, sending, buffering, flow control, closing) is done by
the C type asyncloop._loop.DatagramCore; this class makes it an
asyncio.DatagramTransport and keeps the extra information.
"""
import socket
import warnings

from asyncio import futures, transports, trsock

from . import _loop


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
