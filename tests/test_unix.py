"""Unix-socket connections and servers, on both loops."""
import asyncio
import os
import pathlib
import socket
import sys

import pytest

PY313 = sys.version_info >= (3, 13)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.lost = loop.create_future()

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def exchange(loop, **kw):
    tr, pr = await loop.create_unix_connection(lambda: Client(loop), **kw)
    tr.write(b'hello')
    while bytes(pr.data) != b'hello':
        await asyncio.sleep(0.005)
    return tr, pr


@pytest.mark.parametrize('kind', ['str', 'pathlib'])
def test_unix_server_path(loop, tmp_path, kind):
    path = str(tmp_path / 'sock')
    if kind == 'pathlib':
        path = pathlib.Path(path)

    async def main():
        server = await loop.create_unix_server(Echo, path)
        assert server.sockets[0].getsockname() == str(path)
        tr, pr = await exchange(loop, path=path)
        assert tr.get_extra_info('peername') == str(path)
        assert tr.get_extra_info('sockname') == ''
        assert tr.can_write_eof()
        tr.write_eof()
        tr.close()
        assert await pr.lost is None
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_unix_abstract_namespace(loop):
    name = f'\0asyncloop-test-{os.getpid()}-{id(loop)}'

    async def main():
        server = await loop.create_unix_server(Echo, name)
        assert server.sockets[0].getsockname() == name.encode()
        tr, pr = await exchange(loop, path=name)
        assert tr.get_extra_info('peername') == name.encode()
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_unix_sock_arguments(loop, tmp_path):
    path = str(tmp_path / 's')

    async def main():
        lsock = socket.socket(socket.AF_UNIX)
        lsock.bind(path)
        server = await loop.create_unix_server(Echo, sock=lsock)
        csock = socket.socket(socket.AF_UNIX)
        csock.connect(path)
        tr, pr = await exchange(loop, sock=csock)
        assert tr.get_extra_info('socket').fileno() == csock.fileno()
        tr.close()
        await pr.lost
        await asyncio.sleep(0)
        assert csock.fileno() == -1
        server.close()
        await server.wait_closed()
        assert lsock.fileno() == -1
    loop.run_until_complete(main())


def test_unix_bad_arguments(loop, tmp_path):
    async def main():
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, 'x',
                                              sock=socket.socket())
        tcp = socket.socket()
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, sock=tcp)
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol, sock=tcp)
        tcp.close()
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, 'x',
                                              server_hostname='h')
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol,
                                              str(tmp_path / 'missing'))
        with pytest.raises(ConnectionRefusedError):
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(tmp_path / 'dead'))
            s.close()
            await loop.create_unix_connection(asyncio.Protocol,
                                              str(tmp_path / 'dead'))
    loop.run_until_complete(main())


def test_unix_server_replaces_stale_socket(loop, tmp_path):
    path = str(tmp_path / 'stale')
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()

    async def main():
        server = await loop.create_unix_server(Echo, path)
        tr, pr = await exchange(loop, path=path)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


@pytest.mark.skipif(not PY313, reason='3.13 API')
@pytest.mark.parametrize('cleanup', [True, False])
def test_cleanup_socket(loop, tmp_path, cleanup):
    path = str(tmp_path / 'c')

    async def main():
        server = await loop.create_unix_server(Echo, path,
                                               cleanup_socket=cleanup)
        assert os.path.exists(path)
        server.close()
        await server.wait_closed()
        assert os.path.exists(path) != cleanup
    loop.run_until_complete(main())


def test_unix_streams(loop, tmp_path):
    path = str(tmp_path / 'st')

    async def handle(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        r, w = await asyncio.open_unix_connection(path)
        w.write(b'abc\n')
        assert await r.read() == b'ABC\n'
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())
