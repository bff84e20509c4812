"""asyncio streams over TCP on both loops."""
import asyncio

import pytest


def test_streams_echo_many_clients(loop):
    async def handle(r, w):
        while line := await r.readline():
            w.write(line)
            await w.drain()
        w.close()
        await w.wait_closed()

    async def client(port, i):
        r, w = await asyncio.open_connection('127.0.0.1', port)
        for j in range(50):
            msg = f'{i}:{j}\n'.encode() * (1 + j % 5)
            w.write(msg)
            got = b''
            while len(got) < len(msg):
                got += await r.readline()
            assert got == msg
        w.close()
        await w.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.gather(*(client(port, i) for i in range(50)))
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_streams_drain_large_and_limit(loop):
    async def handle(r, w):
        w.write(b'a' * 10_000_000 + b'\n')
        await w.drain()
        w.close()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port, limit=1000)
        with pytest.raises(ValueError):
            await r.readline()
        w.close()
        r, w = await asyncio.open_connection('127.0.0.1', port)
        data = await r.read()
        assert len(data) == 10_000_001
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_streams_incomplete_read_and_reset(loop):
    async def handle(r, w):
        w.write(b'abc')
        await w.drain()
        w.transport.abort()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await r.readexactly(10)
        assert info.value.partial == b'abc'
        w.close()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_streams_write_after_peer_close(loop):
    async def handle(r, w):
        w.close()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection('127.0.0.1', port)
        assert await r.read() == b''
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(100):
                w.write(b'x' * 100000)
                await w.drain()
                await asyncio.sleep(0.01)
        w.close()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())
