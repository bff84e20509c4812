"""Servers: create_server's options and the Server object, on both loops."""
import asyncio
import errno
import os
import random
import resource
import socket
import sys

import pytest

PY313 = sys.version_info >= (3, 13)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def roundtrip(port, host='127.0.0.1', payload=b'ping'):
    r, w = await asyncio.open_connection(host, port)
    w.write(payload)
    data = await r.readexactly(len(payload))
    w.close()
    await w.wait_closed()
    return data


def test_server_object(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0)
        assert isinstance(server, asyncio.AbstractServer)
        assert server.get_loop() is loop
        assert server.is_serving()
        socks = server.sockets
        assert isinstance(socks, tuple) and len(socks) == 1
        assert isinstance(socks[0], asyncio.trsock.TransportSocket)
        port = socks[0].getsockname()[1]
        assert await roundtrip(port) == b'ping'
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        await server.wait_closed()
        with pytest.raises(OSError):
            await roundtrip(port)
    loop.run_until_complete(main())


def test_start_serving_false_and_async_with(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0,
                                          start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        async with server:
            await server.start_serving()
            assert server.is_serving()
            assert await roundtrip(port) == b'ping'
        assert not server.is_serving()
    loop.run_until_complete(main())


def test_serve_forever_cancel(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0,
                                          start_serving=False)
        port = server.sockets[0].getsockname()[1]
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        assert await roundtrip(port) == b'ping'
        with pytest.raises(RuntimeError, match='already being awaited'):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
    loop.run_until_complete(main())


def test_all_interfaces_and_several_hosts(loop):
    async def main():
        server = await loop.create_server(Echo, None, 0,
                                          family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        assert await roundtrip(port) == b'ping'
        server.close()
        await server.wait_closed()
        server = await loop.create_server(Echo, ['127.0.0.1', 'localhost'],
                                          0, family=socket.AF_INET,
                                          reuse_address=True)
        assert len(server.sockets) >= 1
        port = server.sockets[0].getsockname()[1]
        assert await roundtrip(port) == b'ping'
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_reuse_port_and_backlog(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0,
                                          reuse_port=True, backlog=5)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        port = sock.getsockname()[1]
        server2 = await loop.create_server(Echo, '127.0.0.1', port,
                                           reuse_port=True)
        assert await roundtrip(port) == b'ping'
        server.close()
        server2.close()
        await server.wait_closed()
        await server2.wait_closed()
    loop.run_until_complete(main())


def test_create_server_sock(loop):
    async def main():
        sock = socket.create_server(('127.0.0.1', 0))
        fd = sock.fileno()
        server = await loop.create_server(Echo, sock=sock)
        assert server.sockets[0].fileno() == fd
        port = sock.getsockname()[1]
        assert await roundtrip(port) == b'ping'
        server.close()
        await server.wait_closed()
        assert sock.fileno() == -1
        with pytest.raises(ValueError):
            await loop.create_server(Echo, '127.0.0.1', 0, sock=sock)
    loop.run_until_complete(main())


def test_bad_arguments(loop):
    async def main():
        with pytest.raises(TypeError):
            await loop.create_server(Echo, '127.0.0.1', 0, ssl=True)
        with pytest.raises(ValueError):
            await loop.create_server(Echo, '127.0.0.1', 0,
                                     ssl_handshake_timeout=1)
        with pytest.raises(ValueError):
            await loop.create_server(Echo)
        sock = socket.socket(type=socket.SOCK_DGRAM)
        with pytest.raises(ValueError):
            await loop.create_server(Echo, sock=sock)
        sock.close()
        busy = socket.create_server(('127.0.0.1', 0))
        with pytest.raises(OSError) as info:
            await loop.create_server(Echo, '127.0.0.1',
                                     busy.getsockname()[1])
        assert info.value.errno == errno.EADDRINUSE
        busy.close()
    loop.run_until_complete(main())


@pytest.mark.skipif(not PY313, reason='3.13 API')
def test_keep_alive_and_close_clients(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0,
                                          keep_alive=True)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        port = sock.getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'x')
        await r.readexactly(1)
        server.close()
        server.close_clients()
        assert await r.read() == b''
        await server.wait_closed()
        w.close()

        server = await loop.create_server(Echo, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'x')
        await r.readexactly(1)
        server.close()
        server.abort_clients()
        await server.wait_closed()
        w.close()
    loop.run_until_complete(main())


def test_wait_closed_waits_for_connections(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'x')
        await r.readexactly(1)
        server.close()
        waiter = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.05)
        if sys.version_info >= (3, 12):
            assert not waiter.done()
        w.close()
        await w.wait_closed()
        await asyncio.wait_for(waiter, 5)
    loop.run_until_complete(main())


def test_protocol_factory_error_keeps_serving(loop):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
        loop.set_debug(True)     # asyncio reports it in debug mode only
        calls = [0]

        def factory():
            calls[0] += 1
            if calls[0] == 1:
                raise ZeroDivisionError
            return Echo()

        server = await loop.create_server(factory, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if errors:
                break
        w.close()
        assert errors[0]['message'] == \
            'Error on transport creation for incoming connection'
        assert isinstance(errors[0]['exception'], ZeroDivisionError)
        assert await roundtrip(port) == b'ping'
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_emfile_keeps_server_alive(loop):
    """Accept failing for lack of descriptors reports the error and the
    server accepts again once descriptors are free."""
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
        server = await loop.create_server(Echo, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        hog = []
        client = socket.socket()
        client.setblocking(False)
        try:
            while True:
                try:
                    hog.append(os.open('/dev/null', os.O_RDONLY))
                except OSError:
                    break
            # Leave none: the server's accept() gets EMFILE.
            try:
                client.connect(('127.0.0.1', port))
            except BlockingIOError:
                pass
            for _ in range(50):
                await asyncio.sleep(0.01)
                if errors:
                    break
        finally:
            for fd in hog:
                os.close(fd)
            client.close()
        assert errors
        assert errors[0]['message'] == \
            'socket.accept() out of system resource'
        assert isinstance(errors[0]['exception'], OSError)
        # asyncio retries after a second.
        for _ in range(300):
            try:
                assert await roundtrip(port) == b'ping'
                break
            except OSError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError('server did not resume accepting')
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_load_tagged_requests_with_cancellations(loop):
    """Many clients send tagged requests concurrently while connections are
    cancelled and reset at random: every response reaches its own client."""
    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                await asyncio.sleep(random.random() * 0.002)
                writer.write(b'reply:' + line)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def client(port, cid, rng):
        r, w = await asyncio.open_connection('127.0.0.1', port)
        try:
            for i in range(20):
                tag = f'{cid}-{i}-{rng.random()}\n'.encode()
                w.write(tag)
                if rng.random() < 0.01:
                    # Reset the connection mid-request.
                    sock = w.get_extra_info('socket')
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b'\x01\x00\x00\x00\x00\x00\x00\x00')
                    w.transport.abort()
                    return 'reset'
                got = await r.readline()
                assert got == b'reply:' + tag, (got, tag)
            return 'ok'
        finally:
            w.close()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        rng = random.Random(1234)
        tasks = [loop.create_task(client(port, cid, random.Random(cid)))
                 for cid in range(200)]
        await asyncio.sleep(0.01)
        for t in rng.sample(tasks, 30):
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                assert isinstance(res, (asyncio.CancelledError,
                                        ConnectionError)), repr(res)
        assert sum(1 for r in results if r == "ok") > 80
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())
