"""connect_read_pipe / connect_write_pipe, on both loops."""
import asyncio
import os
import socket
import tempfile

import pytest


def read_some(fd):
    try:
        return os.read(fd, 1_000_000)
    except BlockingIOError:
        return b''


class ReadProto(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.calls = []
        self.lost = loop.create_future()

    def connection_made(self, tr):
        self.calls.append('made')

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.calls.append('eof')

    def connection_lost(self, exc):
        self.calls.append('lost')
        self.lost.set_result(exc)


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.lost = loop.create_future()
        self.paused = 0
        self.resumed = 0

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_read_pipe_data_and_eof(loop):
    async def main():
        r, w = os.pipe()
        robj = open(r, 'rb', buffering=0)
        tr, pr = await loop.connect_read_pipe(lambda: ReadProto(loop), robj)
        assert tr.get_extra_info('pipe') is robj
        assert tr.is_reading()
        os.write(w, b'hello')
        while bytes(pr.data) != b'hello':
            await asyncio.sleep(0.005)
        tr.pause_reading()
        assert not tr.is_reading()
        os.write(w, b' world')
        await asyncio.sleep(0.05)
        assert bytes(pr.data) == b'hello'
        tr.resume_reading()
        while bytes(pr.data) != b'hello world':
            await asyncio.sleep(0.005)
        os.close(w)
        assert await pr.lost is None
        assert pr.calls == ['made', 'eof', 'lost']
        assert robj.closed
    loop.run_until_complete(main())


def test_write_pipe_and_reader_closing(loop):
    async def main():
        r, w = os.pipe()
        wobj = open(w, 'wb', buffering=0)
        tr, pr = await loop.connect_write_pipe(lambda: WriteProto(loop), wobj)
        assert tr.get_extra_info('pipe') is wobj
        assert tr.can_write_eof()
        tr.write(b'abc')
        tr.writelines([b'd', b'e'])
        await asyncio.sleep(0)
        assert os.read(r, 100) == b'abcde'
        os.close(r)
        exc = await asyncio.wait_for(pr.lost, 5)
        assert exc is None
        assert tr.is_closing()
    loop.run_until_complete(main())


def test_write_pipe_flow_control_and_broken_pipe(loop):
    async def main():
        r, w = os.pipe()
        wobj = open(w, 'wb', buffering=0)
        tr, pr = await loop.connect_write_pipe(lambda: WriteProto(loop), wobj)
        os.set_blocking(r, False)
        tr.set_write_buffer_limits(high=1000)
        tr.write(b'x' * 1_000_000)      # far more than a pipe holds
        assert tr.get_write_buffer_size() > 1000
        assert pr.paused == 1
        total = 0
        while total < 1_000_000:
            await asyncio.sleep(0)
            total += len(read_some(r))
        while not pr.resumed:
            await asyncio.sleep(0.005)
        assert tr.get_write_buffer_size() == 0
        tr.write(b'y' * 1_000_000)
        os.close(r)
        exc = await asyncio.wait_for(pr.lost, 5)
        assert isinstance(exc, BrokenPipeError)
    loop.run_until_complete(main())


def test_write_pipe_close_flushes(loop):
    async def main():
        r, w = os.pipe()
        wobj = open(w, 'wb', buffering=0)
        tr, pr = await loop.connect_write_pipe(lambda: WriteProto(loop), wobj)
        os.set_blocking(r, False)
        tr.write(b'z' * 200_000)
        tr.close()
        got = bytearray()
        while len(got) < 200_000:
            await asyncio.sleep(0)
            got += read_some(r)
        assert await pr.lost is None
        os.set_blocking(r, True)
        assert os.read(r, 10) == b''
        os.close(r)
    loop.run_until_complete(main())


def test_pipes_reject_regular_files(loop):
    async def main():
        with tempfile.TemporaryFile() as f:
            with pytest.raises(ValueError, match='Pipe transport'):
                await loop.connect_read_pipe(asyncio.Protocol, f)
            with pytest.raises(ValueError, match='Pipe transport'):
                await loop.connect_write_pipe(asyncio.Protocol, f)
    loop.run_until_complete(main())


def test_read_pty(loop):
    async def main():
        master, slave = os.openpty()
        mobj = open(master, 'rb', buffering=0)
        tr, pr = await loop.connect_read_pipe(lambda: ReadProto(loop), mobj)
        os.write(slave, b'tty data\n')
        while b'tty data' not in pr.data:
            await asyncio.sleep(0.005)
        os.close(slave)
        # The end of a PTY is EIO, which asyncio reports quietly.
        exc = await asyncio.wait_for(pr.lost, 5)
        assert exc is None or (isinstance(exc, OSError) and exc.errno == 5)
    loop.run_until_complete(main())


def test_socket_as_pipe(loop):
    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.connect_read_pipe(lambda: ReadProto(loop), a)
        b.sendall(b'over socket')
        b.close()
        assert await pr.lost is None
        assert bytes(pr.data) == b'over socket'
    loop.run_until_complete(main())


def test_streams_over_pipes(loop):
    async def main():
        r, w = os.pipe()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), open(r, 'rb', 0))
        wtr, wpr = await loop.connect_write_pipe(asyncio.Protocol,
                                                 open(w, 'wb', 0))
        wtr.write(b'line one\nline two\n')
        wtr.close()
        assert await reader.readline() == b'line one\n'
        assert await reader.read() == b'line two\n'
    loop.run_until_complete(main())


def test_unpollable_character_device(loop):
    """/dev/null is a character device epoll refuses: an OSError, not a
    crash (asyncio reports the error of its add_reader instead)."""
    async def main():
        with open('/dev/null', 'rb') as f:
            try:
                tr, pr = await loop.connect_read_pipe(asyncio.Protocol, f)
            except OSError:
                return
            await asyncio.sleep(0.01)
            tr.close()
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
    loop.run_until_complete(main())


def test_loop_closed_with_open_pipes(loop_factory):
    loop = loop_factory()
    r, w = os.pipe()
    robj, wobj = open(r, 'rb', 0), open(w, 'wb', 0)

    async def main():
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, robj)
        wt, _ = await loop.connect_write_pipe(asyncio.Protocol, wobj)
        await asyncio.sleep(0.01)
        return rt, wt

    rt, wt = loop.run_until_complete(main())
    loop.close()
    assert 'open' in repr(rt) and 'open' in repr(wt)
    robj.close()
    wobj.close()
    rt._pipe = None
    wt._pipe = None
