"""loop.sock_sendfile on both loops."""
import asyncio
import io
import os
import socket

import pytest

TIMEOUT = 20
SIZE = 8 * 1024 * 1024 + 123      # well beyond the socket buffers


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


@pytest.fixture(scope='module')
def data():
    return os.urandom(SIZE)


@pytest.fixture
def datafile(tmp_path, data):
    path = tmp_path / 'data.bin'
    path.write_bytes(data)
    with open(path, 'rb') as f:
        yield f


def connected_pair():
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen()
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    srv.close()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def read_all(loop, sock, expected):
    got = bytearray()
    while len(got) < expected:
        chunk = await loop.sock_recv(sock, 1 << 16)
        if not chunk:
            break
        got += chunk
    return bytes(got)


@pytest.mark.parametrize('offset,count', [(0, None), (1000, None),
                                          (5, 3_000_000), (0, 10)])
def test_sendfile_native(loop, datafile, data, offset, count):
    a, b = connected_pair()
    end = SIZE if count is None else offset + count

    async def main():
        reader = asyncio.ensure_future(read_all(loop, b, end - offset))
        sent = await loop.sock_sendfile(a, datafile, offset, count,
                                        fallback=False)
        assert sent == end - offset
        assert await reader == data[offset:end]
        assert datafile.tell() == end

    with a, b:
        run(loop, main())


def test_sendfile_fallback(loop, data):
    a, b = connected_pair()
    f = io.BytesIO(data[:300_000])

    async def main():
        reader = asyncio.ensure_future(read_all(loop, b, 300_000 - 7))
        sent = await loop.sock_sendfile(a, f, 7)
        assert sent == 300_000 - 7
        assert await reader == data[7:300_000]
        assert f.tell() == 300_000

    with a, b:
        run(loop, main())


def test_sendfile_not_available_without_fallback(loop):
    a, b = connected_pair()

    async def main():
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sock_sendfile(a, io.BytesIO(b'abc'), fallback=False)

    with a, b:
        run(loop, main())


def test_sendfile_empty_file(loop, tmp_path):
    a, b = connected_pair()
    path = tmp_path / 'empty'
    path.write_bytes(b'')

    async def main():
        with open(path, 'rb') as f:
            assert await loop.sock_sendfile(a, f) == 0

    with a, b:
        run(loop, main())


def test_sendfile_bad_arguments(loop, datafile, tmp_path):
    a, b = connected_pair()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    text = tmp_path / 'text'
    text.write_text('hello')

    async def main():
        with open(text, 'r') as tf:
            with pytest.raises(ValueError, match='binary mode'):
                await loop.sock_sendfile(a, tf)
        with pytest.raises(ValueError, match='SOCK_STREAM'):
            await loop.sock_sendfile(udp, datafile)
        with pytest.raises(ValueError, match='count'):
            await loop.sock_sendfile(a, datafile, 0, 0)
        with pytest.raises(TypeError, match='count'):
            await loop.sock_sendfile(a, datafile, 0, '1')
        with pytest.raises(ValueError, match='offset'):
            await loop.sock_sendfile(a, datafile, -1)
        with pytest.raises(TypeError, match='offset'):
            await loop.sock_sendfile(a, datafile, 1.5)

    with a, b, udp:
        run(loop, main())


def test_sendfile_blocking_socket_in_debug(loop, datafile):
    loop.set_debug(True)
    a, b = connected_pair()
    a.setblocking(True)

    async def main():
        with pytest.raises(ValueError, match='non-blocking'):
            await loop.sock_sendfile(a, datafile)

    with a, b:
        run(loop, main())


def test_sendfile_cancelled(loop, datafile):
    a, b = connected_pair()

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert loop.remove_writer(a) is False
        if not isinstance(loop, asyncio.BaseEventLoop):
            # asyncloop moves the file position to where sending stopped
            # (asyncio's default loop leaves it unchanged on cancellation).
            assert 0 < datafile.tell() < SIZE

    with a, b:
        run(loop, main())


def test_sendfile_peer_closes(loop, datafile):
    a, b = connected_pair()

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        await asyncio.sleep(0.01)
        b.close()
        with pytest.raises(OSError):
            await task
        assert loop.remove_writer(a) is False

    with a:
        run(loop, main())
