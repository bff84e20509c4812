"""TLS over the socket transports (asyncio's sslproto on top), both loops.

The certificates are made for the test run with the openssl command: a
CA, and a server certificate for 'localhost' / 127.0.0.1 signed by it.
"""
import asyncio
import shutil
import socket
import ssl
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which('openssl') is None,
                                reason='needs the openssl command')


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp('certs')
    # The extensions Python 3.13's strict verification asks for.
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
             '-subj', '/CN=asyncloop test CA', '-keyout', 'ca.key',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
             '-out', 'ca.pem', cwd=d)
    (d / 'ext.cnf').write_text(
        'subjectAltName=DNS:localhost,IP:127.0.0.1\n'
        'basicConstraints=critical,CA:FALSE\n'
        'keyUsage=critical,digitalSignature,keyEncipherment\n'
        'extendedKeyUsage=serverAuth\n'
        'authorityKeyIdentifier=keyid\n'
        'subjectKeyIdentifier=hash\n')
    _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
             '-keyout', 'server.key', '-out', 'server.csr', cwd=d)
    _openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey',
             'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf',
             '-out', 'server.pem', cwd=d)
    return d


@pytest.fixture
def contexts(certs):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs / 'server.pem', certs / 'server.key')
    client = ssl.create_default_context(cafile=str(certs / 'ca.pem'))
    return server, client


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def test_tls_client_server(loop, contexts):
    sctx, cctx = contexts

    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port, ssl=cctx,
                                             server_hostname='localhost')
        assert w.get_extra_info('sslcontext') is cctx
        assert w.get_extra_info('ssl_object') is not None
        assert w.get_extra_info('peercert')['subject']
        assert w.get_extra_info('cipher')
        assert w.get_extra_info('peername')[1] == port
        payload = bytes(range(256)) * 4000
        w.write(payload)
        assert await r.readexactly(len(payload)) == payload
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_bad_certificate(loop, contexts):
    sctx, _ = contexts

    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        strict = ssl.create_default_context()    # does not trust our CA
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection('127.0.0.1', port, ssl=strict,
                                          server_hostname='localhost')
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_handshake_timeout(loop, contexts):
    _, cctx = contexts

    async def main():
        # A server that accepts but never speaks TLS.
        lsock = socket.create_server(('127.0.0.1', 0))
        port = lsock.getsockname()[1]
        with pytest.raises((TimeoutError, ConnectionError, ssl.SSLError)):
            await loop.create_connection(
                asyncio.Protocol, '127.0.0.1', port, ssl=cctx,
                server_hostname='localhost', ssl_handshake_timeout=0.2)
        lsock.close()
    loop.run_until_complete(main())


def test_tls_timeouts_need_ssl(loop):
    async def main():
        with pytest.raises(ValueError, match='ssl_handshake_timeout'):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', 1,
                                         ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match='ssl_shutdown_timeout'):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', 1,
                                         ssl_shutdown_timeout=1)
    loop.run_until_complete(main())


def test_start_tls_upgrade(loop, contexts):
    sctx, cctx = contexts

    async def handle(r, w):
        assert await r.readline() == b'STARTTLS\n'
        w.write(b'GO\n')
        await w.drain()
        await w.start_tls(sctx)
        line = await r.readline()
        w.write(line.upper())
        await w.drain()
        w.close()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'STARTTLS\n')
        assert await r.readline() == b'GO\n'
        await w.start_tls(cctx, server_hostname='localhost')
        assert w.get_extra_info('ssl_object') is not None
        w.write(b'secret\n')
        assert await r.readline() == b'SECRET\n'
        w.close()
        try:
            await w.wait_closed()
        except (ssl.SSLError, ConnectionError):
            pass
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_peer_drops_without_close_notify(loop, contexts):
    sctx, cctx = contexts

    async def main():
        lost = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr

            def data_received(self, data):
                # Drop TCP under the TLS layer: no close_notify is sent.
                self.tr._ssl_protocol._transport.abort()

            def connection_lost(self, exc):
                pass

        class Client(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        server = await loop.create_server(Server, '127.0.0.1', 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(
            Client, '127.0.0.1', port, ssl=cctx, server_hostname='localhost')
        tr.write(b'x')
        await asyncio.wait_for(lost, 5)
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_data_in_flight_at_shutdown(loop, contexts):
    sctx, cctx = contexts
    size = 4 * 1024 * 1024

    async def handle(r, w):
        w.write(b'z' * size)
        w.close()       # close_notify after everything written
        await w.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port, ssl=cctx,
                                             server_hostname='localhost')
        data = await r.read()
        assert len(data) == size
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_unix(loop, contexts, tmp_path):
    sctx, cctx = contexts
    path = str(tmp_path / 'tls.sock')

    async def main():
        server = await loop.create_unix_server(Echo, path, ssl=sctx)
        r, w = await asyncio.open_unix_connection(
            path, ssl=cctx, server_hostname='localhost')
        w.write(b'over unix')
        assert await r.readexactly(9) == b'over unix'
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_shutdown_timeout(loop, contexts):
    """The peer never answers close_notify: the shutdown gives up after
    ssl_shutdown_timeout and the connection is lost."""
    sctx, cctx = contexts

    async def main():
        lost = loop.create_future()
        handshaken = loop.create_future()

        class Mute(asyncio.Protocol):
            def connection_made(self, tr):
                handshaken.set_result(tr)

        class Client(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        server = await loop.create_server(Mute, '127.0.0.1', 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(
            Client, '127.0.0.1', port, ssl=cctx, server_hostname='localhost',
            ssl_shutdown_timeout=0.3)
        server_tr = await handshaken
        # The server stops reading its raw socket: no close_notify reply.
        server_tr._ssl_protocol._transport.pause_reading()
        t0 = loop.time()
        tr.write(b'x' * 10)
        tr.close()
        await asyncio.wait_for(lost, 5)
        assert loop.time() - t0 < 3
        server_tr.abort()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_tls_callbacks_run_in_their_connection_context(loop, contexts):
    """Behind TLS too, the protocols run in the context of the server or
    of the caller of create_connection (see test_contexts.py)."""
    import contextvars
    where = contextvars.ContextVar('where', default='loop')
    server_ctx, client_ctx = contexts
    seen = []

    class Recorder(asyncio.Protocol):
        def __init__(self, side, done):
            self.side, self.done = side, done
            seen.append((side, 'factory', where.get()))

        def connection_made(self, transport):
            self.transport = transport
            seen.append((self.side, 'connection_made', where.get()))

        def data_received(self, data):
            seen.append((self.side, 'data_received', where.get()))
            if self.side == 'server':
                self.transport.write(data)
            else:
                self.transport.close()

        def connection_lost(self, exc):
            seen.append((self.side, 'connection_lost', where.get()))
            self.done.set_result(None)

    async def main():
        server_done = loop.create_future()
        client_done = loop.create_future()
        where.set('server')
        server = await loop.create_server(
            lambda: Recorder('server', server_done), '127.0.0.1', 0,
            ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        where.set('client')
        transport, _ = await loop.create_connection(
            lambda: Recorder('client', client_done), '127.0.0.1', port,
            ssl=client_ctx, server_hostname='localhost')
        where.set('caller')
        transport.write(b'ping')
        await asyncio.wait_for(asyncio.gather(server_done, client_done), 10)
        server.close()
        await server.wait_closed()

    contextvars.copy_context().run(loop.run_until_complete, main())
    for side, name, value in seen:
        assert value == side, (side, name, value)
    assert {name for _, name, _ in seen} == {
        'factory', 'connection_made', 'data_received', 'connection_lost'}
