"""connect_read_pipe and connect_write_pipe on pipes, FIFOs, PTYs and
character devices, on the default loop and on asyncloop."""
import asyncio
import errno
import fcntl
import os
import tty

import pytest

TIMEOUT = 10


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class ReadProto(asyncio.Protocol):
    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.got_data = asyncio.Event()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def data_received(self, data):
        self.data += data
        self.got_data.set()

    def eof_received(self):
        self.events.append('eof')

    def connection_lost(self, exc):
        self.events.append(('lost', type(exc)))
        self.exc = exc
        self.done.set_result(exc)

    async def wait_for_bytes(self, n):
        while len(self.data) < n:
            self.got_data.clear()
            await self.got_data.wait()


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.events = []
        self.done = loop.create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def pause_writing(self):
        self.events.append('pause')

    def resume_writing(self):
        self.events.append('resume')
        self.resumed.set()

    def connection_lost(self, exc):
        self.events.append(('lost', type(exc)))
        self.done.set_result(exc)


def read_all(fd, n):
    out = b''
    while len(out) < n:
        out += os.read(fd, n - len(out))
    return out


# ---- read pipes ---------------------------------------------------------------


def test_read_pipe_data_eof_lost(loop, pipe):
    r, w = pipe

    async def main():
        proto = ReadProto(loop)
        transport, p = await loop.connect_read_pipe(lambda: proto,
                                                    open(r, 'rb', 0))
        assert p is proto and transport.get_extra_info('pipe').fileno() == r
        os.write(w, b'one')
        await proto.wait_for_bytes(3)
        os.write(w, b'two')
        os.close(w)
        await proto.done
        return proto

    proto = run(loop, main())
    pipe[:] = []
    assert bytes(proto.data) == b'onetwo'
    assert proto.events == ['made', 'eof', ('lost', type(None))]


def test_read_pipe_pause_resume(loop, pipe):
    r, w = pipe

    async def main():
        proto = ReadProto(loop)
        transport, _ = await loop.connect_read_pipe(lambda: proto,
                                                    open(r, 'rb', 0))
        transport.pause_reading()
        assert not transport.is_reading()
        os.write(w, b'held')
        await asyncio.sleep(0.05)
        assert proto.data == b''
        transport.resume_reading()
        assert transport.is_reading()
        await proto.wait_for_bytes(4)
        transport.close()
        assert transport.is_closing()
        await proto.done
        return proto

    proto = run(loop, main())
    pipe.remove(r)
    assert bytes(proto.data) == b'held'
    assert proto.events == ['made', ('lost', type(None))]


def test_read_pipe_large_data(loop, pipe):
    r, w = pipe
    payload = os.urandom(1 << 20) * 6

    async def main():
        proto = ReadProto(loop)
        await loop.connect_read_pipe(lambda: proto, open(r, 'rb', 0))

        def writer():
            with open(w, 'wb', 0) as f:
                f.write(payload)

        await asyncio.gather(loop.run_in_executor(None, writer), proto.done)
        return proto

    proto = run(loop, main())
    pipe[:] = []
    assert bytes(proto.data) == payload


def test_regular_file_is_rejected(loop, tmp_path):
    path = tmp_path / 'file'
    path.write_bytes(b'x')

    async def main():
        with open(path, 'rb') as f:
            with pytest.raises(ValueError, match='Pipe transport is'):
                await loop.connect_read_pipe(asyncio.Protocol, f)
        with open(path, 'wb') as f:
            with pytest.raises(ValueError, match='Pipe transport is'):
                await loop.connect_write_pipe(asyncio.BaseProtocol, f)

    run(loop, main())


# ---- write pipes ------------------------------------------------------------------


def test_write_goes_out_at_once(loop, pipe):
    """A write the pipe can take is in the pipe when write() returns."""
    r, w = pipe

    async def main():
        transport, _ = await loop.connect_write_pipe(
            lambda: WriteProto(loop), open(w, 'wb', 0))
        transport.write(b'now')
        os.set_blocking(r, False)
        assert os.read(r, 10) == b'now'
        assert transport.get_write_buffer_size() == 0
        # A reader blocked in another thread sees the data too.
        os.set_blocking(r, True)
        reader = loop.run_in_executor(None, os.read, r, 10)
        await asyncio.sleep(0.01)
        transport.write(b'later')
        got = await reader
        transport.close()
        return got

    assert run(loop, main()) == b'later'
    pipe.remove(w)


def test_write_flow_control(loop, pipe):
    r, w = pipe

    async def main():
        proto = WriteProto(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto,
                                                     open(w, 'wb', 0))
        transport.set_write_buffer_limits(high=1 << 16)
        data = b'y' * (1 << 20)
        transport.write(data)
        assert proto.events == ['made', 'pause']
        assert transport.get_write_buffer_size() > 0
        got = await loop.run_in_executor(None, read_all, r, len(data))
        await asyncio.wait_for(proto.resumed.wait(), TIMEOUT)
        assert transport.get_write_buffer_size() == 0
        transport.write_eof()
        await proto.done
        return got, proto.events

    got, events = run(loop, main())
    pipe.remove(w)
    assert got == b'y' * (1 << 20)
    assert events == ['made', 'pause', 'resume', ('lost', type(None))]
    assert os.read(r, 1) == b''


def test_write_pipe_reader_closed(loop, pipe):
    """The reader going away with nothing pending: connection_lost(None),
    as asyncio (with data pending, BrokenPipeError: next test)."""
    r, w = pipe

    async def main():
        proto = WriteProto(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto,
                                                     open(w, 'wb', 0))
        os.close(r)
        exc = await proto.done
        return transport, exc

    transport, exc = run(loop, main())
    pipe[:] = []
    assert exc is None
    assert transport.is_closing()


def test_write_to_closed_reader_with_data_pending(loop, pipe):
    r, w = pipe

    async def main():
        proto = WriteProto(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto,
                                                     open(w, 'wb', 0))
        transport.write(b'z' * (1 << 20))     # more than the pipe holds
        os.close(r)
        return await proto.done

    exc = run(loop, main())
    pipe[:] = []
    assert isinstance(exc, BrokenPipeError)


def test_write_pipe_abort(loop, pipe):
    r, w = pipe

    async def main():
        proto = WriteProto(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto,
                                                     open(w, 'wb', 0))
        transport.write(b'q' * (1 << 20))
        transport.abort()
        return await proto.done

    assert run(loop, main()) is None
    pipe.remove(w)
    os.set_blocking(r, False)
    total = 0
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert total < 1 << 20


# ---- FIFOs, PTYs, character devices ---------------------------------------------------


def test_fifo_round_trip(loop, tmp_path):
    path = tmp_path / 'fifo'
    os.mkfifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)

    async def main():
        rproto = ReadProto(loop)
        await loop.connect_read_pipe(lambda: rproto, open(rfd, 'rb', 0))
        wproto = WriteProto(loop)
        wt, _ = await loop.connect_write_pipe(lambda: wproto,
                                              open(wfd, 'wb', 0))
        wt.write(b'through the fifo')
        wt.close()
        await rproto.done
        return bytes(rproto.data), rproto.events

    data, events = run(loop, main())
    assert data == b'through the fifo'
    assert events == ['made', 'eof', ('lost', type(None))]


def test_pty_round_trip(loop):
    master, slave = os.openpty()
    tty.setraw(slave)

    async def main():
        # master -> slave
        sproto = ReadProto(loop)
        st, _ = await loop.connect_read_pipe(lambda: sproto,
                                             open(slave, 'rb', 0, closefd=False))
        mproto = WriteProto(loop)
        mt, _ = await loop.connect_write_pipe(lambda: mproto,
                                              open(master, 'wb', 0))
        mt.write(b'ping')
        await sproto.wait_for_bytes(4)
        # slave -> master
        mrproto = ReadProto(loop)
        mrt, _ = await loop.connect_read_pipe(
            lambda: mrproto, open(os.dup(master), 'rb', 0))
        swproto = WriteProto(loop)
        swt, _ = await loop.connect_write_pipe(
            lambda: swproto, open(os.dup(slave), 'wb', 0))
        swt.write(b'pong')
        await mrproto.wait_for_bytes(4)
        # Closing every slave descriptor: the master reads EIO.
        st.close()
        swt.close()
        await sproto.done
        await swproto.done
        os.close(slave)
        exc = await mrproto.done
        mt.close()
        await mproto.done
        return bytes(sproto.data), bytes(mrproto.data), exc

    to_slave, to_master, exc = run(loop, main())
    assert (to_slave, to_master) == (b'ping', b'pong')
    assert isinstance(exc, OSError) and exc.errno == errno.EIO


def test_character_device_write(loop):
    """/dev/null cannot be polled: both loops refuse it the same way."""
    async def main():
        with open('/dev/null', 'wb', 0) as f:
            try:
                transport, _ = await loop.connect_write_pipe(
                    asyncio.BaseProtocol, f)
            except OSError as exc:
                return type(exc), exc.errno
            transport.write(b'x')
            transport.close()
            return None

    result = run(loop, main())
    assert result in (None, (PermissionError, errno.EPERM))


def test_pipe_pair_through_streams(loop, pipe):
    """StreamReader/StreamWriter over the pipe transports."""
    r, w = pipe

    async def main():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), open(r, 'rb', 0))
        wt, wp = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, open(w, 'wb', 0))
        writer = asyncio.StreamWriter(wt, wp, None, loop)
        for i in range(100):
            writer.write(b'line %d\n' % i)
            await writer.drain()
        writer.close()
        return [await reader.readline() for _ in range(100)], \
            await reader.read()

    lines, rest = run(loop, main())
    pipe[:] = []
    assert lines == [b'line %d\n' % i for i in range(100)]
    assert rest == b''


def test_pipe_capacity_of_idle_pipe_unchanged(loop, pipe):
    r, w = pipe
    size = fcntl.fcntl(r, fcntl.F_GETPIPE_SZ)

    async def main():
        proto = ReadProto(loop)
        transport, _ = await loop.connect_read_pipe(lambda: proto,
                                                    open(r, 'rb', 0))
        os.write(w, b'small')
        await proto.wait_for_bytes(5)
        after = fcntl.fcntl(r, fcntl.F_GETPIPE_SZ)
        transport.close()
        await proto.done
        return after

    assert run(loop, main()) == size
    pipe.remove(r)


def test_full_write_pipe_is_enlarged_and_budget_returned(aloop, pipe):
    """A write the pipe cannot take whole enlarges it; the slot of the
    budget comes back when the transport is gone."""
    import gc
    from asyncloop import _pipes
    r, w = pipe
    data = b'z' * (2 << 20)

    async def main():
        proto = WriteProto(aloop)
        transport, _ = await aloop.connect_write_pipe(lambda: proto,
                                                      open(w, 'wb', 0))
        transport.write(data)
        size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        got = await aloop.run_in_executor(None, read_all, r, len(data))
        transport.close()
        await proto.done
        return got, size

    got, size = run(aloop, main())
    pipe.remove(w)
    assert got == data
    assert size == _pipes._GROWN_CAPACITY
    gc.collect()
    assert _pipes._grown == 0


def test_idle_write_pipe_keeps_its_capacity(loop, pipe):
    r, w = pipe
    size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)

    async def main():
        proto = WriteProto(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto,
                                                     open(w, 'wb', 0))
        transport.write(b'small')
        after = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        transport.close()
        await proto.done
        return after

    assert run(loop, main()) == size
    pipe.remove(w)
    assert os.read(r, 5) == b'small'
