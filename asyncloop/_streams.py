"""The Loop methods for TCP and Unix-socket connections, servers, TLS.

The transports and the accepting of connections are C
(asyncloop._loop.SocketTransport and asyncloop._loop.Listener). What runs
once per call stays Python: argument checks, name resolution, happy
eyeballs and binding are asyncio's own methods, reused as they are so that
every parameter and message matches the running Python exactly; they call
back into the private methods defined here (_connect_sock,
_create_connection_transport, _start_serving, _stop_serving), which put the
C transports underneath. The Server object is asyncio's own
base_events.Server, driven through _start_serving/_stop_serving.

Descriptor ownership: a Python socket handed to a transport or a listener
stays owned by it (asyncio's semantics: get_extra_info('socket') and
Server.sockets are that socket) while libuv works on a duplicate of its
descriptor; both are closed together, each by its one owner.

Where this differs from the default loop:
- get_extra_info('socket') of an accepted connection wraps a duplicate of
  the connection's descriptor (closed with the transport), so its fileno()
  is not the number libuv watches.
"""
import os
import socket
import sys

from asyncio import base_events, constants, exceptions, sslproto, unix_events
from asyncio.log import logger

from . import _loop, _lowlevel

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None

_BaseLoop = base_events.BaseEventLoop
_UnixLoop = unix_events._UnixSelectorEventLoop
_PY313 = sys.version_info >= (3, 13)


class StreamsMixin:
    """Mixed into asyncloop.Loop."""

    # asyncio's own argument handling, resolution, happy eyeballs and
    # binding; they end in the private methods below.
    create_connection = _BaseLoop.create_connection
    create_server = _BaseLoop.create_server
    connect_accepted_socket = _BaseLoop.connect_accepted_socket
    start_tls = _BaseLoop.start_tls
    create_unix_server = _UnixLoop.create_unix_server
    sendfile = _BaseLoop.sendfile
    _sendfile_fallback = _BaseLoop._sendfile_fallback
    _ensure_resolved = _BaseLoop._ensure_resolved
    _create_server_getaddrinfo = _BaseLoop._create_server_getaddrinfo

    # ---- connecting ------------------------------------------------------

    async def _net_sock_connect(self, sock, address):
        """Connect the non-blocking socket sock, waiting in the loop."""
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        fd = sock.fileno()
        fut = self.create_future()

        def on_writable():
            if fut.done():
                return
            try:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    raise OSError(err, f'Connect call failed {address}')
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(None)

        self._add_writer(fd, on_writable)
        try:
            await fut
        finally:
            # Before the caller may close the socket (and its number be
            # reused): stop watching it.
            self._remove_writer(fd)
            fut = None

    async def _connect_sock(self, exceptions, addr_info,
                            local_addr_infos=None):
        """Create, bind and connect one socket (base_events' contract:
        the errors of this attempt go to a new list in exceptions)."""
        errors = []
        exceptions.append(errors)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                self._bind_local(sock, family, local_addr_infos, errors)
            await self._net_sock_connect(sock, address)
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            exceptions = errors = None

    @staticmethod
    def _bind_local(sock, family, local_addr_infos, errors):
        for lfamily, _, _, _, laddr in local_addr_infos:
            if lfamily != family:
                continue
            try:
                sock.bind(laddr)
                return
            except OSError as exc:
                if sys.version_info >= (3, 13):
                    reason = str(exc).lower()
                else:
                    reason = exc.strerror.lower()
                errors.append(OSError(
                    exc.errno, f'error while attempting to bind on '
                    f'address {laddr!r}: {reason}'))
        if errors:
            raise errors.pop()
        raise OSError(f"no matching local address with {family=} found")

    async def create_unix_connection(
            self, protocol_factory, path=None, *, ssl=None, sock=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None):
        """Connect to the Unix socket at path (or use the connected sock)."""
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError(
                    'you have to pass server_hostname when using ssl')
        else:
            if server_hostname is not None:
                raise ValueError('server_hostname is only meaningful with ssl')
            if ssl_handshake_timeout is not None:
                raise ValueError(
                    'ssl_handshake_timeout is only meaningful with ssl')
            if ssl_shutdown_timeout is not None:
                raise ValueError(
                    'ssl_shutdown_timeout is only meaningful with ssl')
        if path is not None:
            if sock is not None:
                raise ValueError(
                    'path and sock can not be specified at the same time')
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self._net_sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('no path and sock were specified')
            if (sock.family != socket.AF_UNIX or
                    sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f'A UNIX Domain Stream Socket was expected, got {sock!r}')
            sock.setblocking(False)
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    # ---- transports ------------------------------------------------------

    def _make_ssl_protocol(self, protocol, sslcontext, waiter, server_side,
                           server_hostname, ssl_handshake_timeout,
                           ssl_shutdown_timeout):
        return sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        transport = _loop.SocketTransport(self, sock, protocol, waiter, extra,
                                          server)
        # As asyncio: add_reader() and friends refuse this descriptor now.
        self._transports[sock.fileno()] = transport
        return transport

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            *, server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None,
                            call_connection_made=True):
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made)
        transport = _loop.SocketTransport(self, rawsock, ssl_protocol, None,
                                          extra, server)
        self._transports[rawsock.fileno()] = transport
        return ssl_protocol._app_transport

    async def _create_connection_transport(
            self, sock, protocol_factory, ssl, server_hostname,
            server_side=False, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None):
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = self.create_future()
        if ssl:
            sslcontext = None if isinstance(ssl, bool) else ssl
            transport = self._make_ssl_transport(
                sock, protocol, sslcontext, waiter, server_side=server_side,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout)
        else:
            transport = self._make_socket_transport(sock, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    # ---- serving ---------------------------------------------------------

    @property
    def _net_listeners(self):
        listeners = self.__dict__.get('_net_listeners_map')
        if listeners is None:
            listeners = self.__dict__['_net_listeners_map'] = {}
        return listeners

    @property
    def _unix_server_sockets(self):
        """Listening Unix sockets to unlink at close (3.13's
        cleanup_socket): {socket: inode}."""
        socks = self.__dict__.get('_unix_server_sockets_map')
        if socks is None:
            socks = self.__dict__['_unix_server_sockets_map'] = {}
        return socks

    def _start_serving(self, protocol_factory, sock, sslcontext=None,
                       server=None, backlog=100, ssl_handshake_timeout=None,
                       ssl_shutdown_timeout=None):
        if sslcontext is not None:
            app_factory = protocol_factory

            def protocol_factory():
                return sslproto.SSLProtocol(
                    self, app_factory(), sslcontext, None, server_side=True,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)

        listener = _loop.Listener(self, sock, protocol_factory, server,
                                  backlog)
        try:
            listener.listen()
        except BaseException:
            listener.close()
            raise
        old = self._net_listeners.pop(sock, None)
        if old is not None:
            old.close()
        self._net_listeners[sock] = listener

    def _stop_serving(self, sock):
        path = None
        if sock in self._unix_server_sockets:
            try:
                path = sock.getsockname()
            except OSError:
                path = None
        listener = self._net_listeners.pop(sock, None)
        if listener is not None:
            listener.close()
        sock.close()
        if sock in self._unix_server_sockets:
            inode = self._unix_server_sockets.pop(sock)
            if path:
                self._unlink_unix_socket(path, inode)

    @staticmethod
    def _unlink_unix_socket(path, inode):
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error('Unable to clean up listening UNIX socket %r: %r',
                         path, err)

    # ---- sendfile --------------------------------------------------------

    async def _sendfile_native(self, transp, file, offset, count):
        """loop.sendfile() on a socket transport: os.sendfile() once the
        transport's write buffer is empty (asyncio's contract: raise
        SendfileNotAvailableError to get the fallback)."""
        if (getattr(transp, '_sendfile_compatible', None)
                is not constants._SendfileMode.TRY_NATIVE):
            raise exceptions.SendfileNotAvailableError(
                "sendfile syscall is not supported")
        fileno, blocksize = _lowlevel._sendfile_source(file, count)
        if not blocksize:
            return 0
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            fd = transp.get_extra_info('socket').fileno()
            return await self._sendfile_to_fd(fd, fileno, offset, count,
                                              blocksize, check_fd=False)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
