"""TCP transports: asyncio's default loop is the reference for each test."""
import asyncio
import gc
import socket
import weakref

import pytest

import asyncloop


class Recorder(asyncio.Protocol):
    """Keeps every call it receives, in order."""

    def __init__(self, loop):
        self.calls = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()
        self.eof_result = None

    def connection_made(self, transport):
        self.transport = transport
        self.calls.append('made')

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        self.calls.append('data')

    def eof_received(self):
        self.calls.append('eof')
        return self.eof_result

    def pause_writing(self):
        self.calls.append('pause')

    def resume_writing(self):
        self.calls.append('resume')

    def connection_lost(self, exc):
        self.calls.append(('lost', type(exc)))
        if not self.lost.done():
            self.lost.set_result(exc)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


async def echo_server(loop, factory=Echo, **kw):
    server = await loop.create_server(factory, '127.0.0.1', 0, **kw)
    return server, server.sockets[0].getsockname()[1]


def test_transport_is_asyncio_transport(loop):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.ReadTransport)
        assert isinstance(tr, asyncio.WriteTransport)
        assert tr.get_protocol() is pr
        assert tr.can_write_eof()
        assert tr.is_reading()
        assert not tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        assert tr.get_write_buffer_limits() == (16384, 65536)
        assert tr.get_extra_info('peername') == ('127.0.0.1', port)
        assert tr.get_extra_info('sockname')[0] == '127.0.0.1'
        sock = tr.get_extra_info('socket')
        assert isinstance(sock, asyncio.trsock.TransportSocket)
        assert sock.getpeername() == ('127.0.0.1', port)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert tr.get_extra_info('nothing', 42) == 42
        assert weakref.ref(tr)() is tr
        tr.close()
        assert tr.is_closing()
        assert not tr.is_reading()
        assert await pr.lost is None
        assert pr.calls == ['made', ('lost', type(None))]
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_echo_and_eof(loop):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.write(b'hello ')
        tr.writelines([b'wor', bytearray(b'ld'), memoryview(b'!!')])
        tr.write(b'')
        tr.write_eof()
        with pytest.raises(RuntimeError, match='after write_eof'):
            tr.write(b'x')
        with pytest.raises(RuntimeError, match='after write_eof'):
            tr.writelines([b'x'])
        await pr.lost
        assert bytes(pr.data) == b'hello world!!'
        assert pr.calls[0] == 'made'
        assert pr.calls[-2:] == ['eof', ('lost', type(None))]
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_write_type_errors(loop):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        for bad in ('text', 12, None, [b'x']):
            with pytest.raises(TypeError, match='bytes-like'):
                tr.write(bad)
        with pytest.raises(TypeError):
            tr.writelines(['text'])
        with pytest.raises(ValueError, match='must be >= low'):
            tr.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=-1)
        tr.set_write_buffer_limits(low=100)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(high=100)
        assert tr.get_write_buffer_limits() == (25, 100)
        tr.close()
        await pr.lost
        server.close()
    loop.run_until_complete(main())


def test_half_close_keep_open(loop):
    """eof_received() returning True keeps the write side open."""
    async def main():
        got = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                self.buf = b''

            def data_received(self, data):
                self.buf += data

            def eof_received(self):
                self.tr.write(self.buf.upper())
                loop.call_later(0.01, self.tr.close)
                return True

            def connection_lost(self, exc):
                got.set_result(exc)

        server, port = await echo_server(loop, Server)
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'abc')
        w.write_eof()
        assert await r.read() == b'ABC'
        assert await got is None
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_eof_received_returns_false_closes(loop):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.write_eof()
        await pr.lost
        assert pr.calls[-2:] == ['eof', ('lost', type(None))]
        assert tr.is_closing()
        server.close()
    loop.run_until_complete(main())


def test_flow_control_pause_resume(loop):
    async def main():
        paused = asyncio.Event()

        class Slow(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                tr.pause_reading()
                assert not tr.is_reading()
                loop.call_later(0.3, tr.resume_reading)

            def data_received(self, data):
                pass

        server, port = await echo_server(loop, Slow)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.set_write_buffer_limits(high=1024)
        chunk = b'x' * 65536
        for _ in range(200):
            tr.write(chunk)
            if 'pause' in pr.calls:
                break
        assert 'pause' in pr.calls
        assert tr.get_write_buffer_size() > 1024
        while 'resume' not in pr.calls:
            await asyncio.sleep(0.01)
        assert tr.get_write_buffer_size() <= 256
        tr.close()
        await pr.lost
        del paused
        server.close()
    loop.run_until_complete(main())


def test_pause_writing_error_reported(loop):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))

        class Bad(Recorder):
            def pause_writing(self):
                raise ZeroDivisionError

        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                tr.pause_reading()

        server, port = await echo_server(loop, Sink)
        tr, pr = await loop.create_connection(lambda: Bad(loop), '127.0.0.1',
                                              port)
        tr.set_write_buffer_limits(high=0)
        tr.write(b'x' * 10_000_000)
        assert errors and errors[0]['message'] == \
            'protocol.pause_writing() failed'
        assert isinstance(errors[0]['exception'], ZeroDivisionError)
        assert errors[0]['transport'] is tr
        assert errors[0]['protocol'] is pr
        tr.abort()
        await pr.lost
        server.close()
    loop.run_until_complete(main())


def test_close_flushes_buffer(loop):
    async def main():
        received = loop.create_future()

        class Collect(asyncio.Protocol):
            def connection_made(self, tr):
                self.buf = bytearray()

            def data_received(self, data):
                self.buf += data

            def connection_lost(self, exc):
                received.set_result(len(self.buf))

        server, port = await echo_server(loop, Collect)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        payload = b'y' * (8 * 1024 * 1024)
        tr.write(payload)
        tr.close()
        assert tr.is_closing()
        assert await received == len(payload)
        assert await pr.lost is None
        server.close()
    loop.run_until_complete(main())


def test_abort_drops_buffer(loop):
    async def main():
        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                tr.pause_reading()

        server, port = await echo_server(loop, Sink)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.write(b'z' * (16 * 1024 * 1024))
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        assert await pr.lost is None
        assert tr.get_write_buffer_size() == 0
        server.close()
    loop.run_until_complete(main())


def test_writes_after_close_warn(loop, caplog):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.abort()
        await pr.lost
        with caplog.at_level('WARNING', logger='asyncio'):
            for _ in range(4):
                tr.write(b'x')
            assert 'socket.send() raised exception.' not in caplog.text
            tr.write(b'x')
            assert 'socket.send() raised exception.' in caplog.text
        server.close()
    loop.run_until_complete(main())


def test_connection_refused(loop):
    async def main():
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
    loop.run_until_complete(main())


def test_peer_reset_gives_connection_reset(loop):
    async def main():
        class Reset(asyncio.Protocol):
            def connection_made(self, tr):
                sock = tr.get_extra_info('socket')
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b'\x01\x00\x00\x00\x00\x00\x00\x00')
                tr.abort()

        server, port = await echo_server(loop, Reset)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        exc = await pr.lost
        assert isinstance(exc, ConnectionResetError)
        assert exc.errno is not None
        assert pr.calls[-1] == ('lost', ConnectionResetError)
        server.close()
    loop.run_until_complete(main())


def test_broken_pipe_on_write(loop):
    async def main():
        class Reset(asyncio.Protocol):
            def connection_made(self, tr):
                sock = tr.get_extra_info('socket')
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b'\x01\x00\x00\x00\x00\x00\x00\x00')
                tr.abort()

        server, port = await echo_server(loop, Reset)

        class Writer(Recorder):
            def connection_made(self, tr):
                super().connection_made(tr)
                tr.pause_reading()

        tr, pr = await loop.create_connection(lambda: Writer(loop),
                                              '127.0.0.1', port)
        await asyncio.sleep(0.1)
        for _ in range(100):
            tr.write(b'x' * 65536)
            if tr.is_closing():
                break
            await asyncio.sleep(0.01)
        exc = await pr.lost
        assert isinstance(exc, (BrokenPipeError, ConnectionResetError))
        server.close()
    loop.run_until_complete(main())


def test_data_received_error_closes(loop):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))

        class Bad(Recorder):
            def data_received(self, data):
                raise ZeroDivisionError

        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(lambda: Bad(loop),
                                              '127.0.0.1', port)
        tr.write(b'ping')
        exc = await pr.lost
        assert isinstance(exc, ZeroDivisionError)
        assert errors[0]['message'] == \
            'Fatal error: protocol.data_received() call failed.'
        assert errors[0]['transport'] is tr
        assert errors[0]['protocol'] is pr
        server.close()
    loop.run_until_complete(main())


def test_buffered_protocol(loop):
    async def main():
        class Buf(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(7)
                self.got = bytearray()
                self.lost = loop.create_future()
                self.sizes = []

            def connection_made(self, tr):
                self.tr = tr

            def get_buffer(self, sizehint):
                self.sizes.append(sizehint)
                return self.buf

            def buffer_updated(self, nbytes):
                self.got += self.buf[:nbytes]

            def eof_received(self):
                return False

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(Buf, '127.0.0.1', port)
        data = bytes(range(256)) * 40
        tr.write(data)
        while len(pr.got) < len(data):
            await asyncio.sleep(0.01)
        assert bytes(pr.got) == data
        assert set(pr.sizes) == {-1}
        # Switching to a plain Protocol changes how data arrives.
        rec = Recorder(loop)
        tr.set_protocol(rec)
        assert tr.get_protocol() is rec
        tr.write(b'again')
        while bytes(rec.data) != b'again':
            await asyncio.sleep(0.01)
        tr.close()
        await rec.lost
        server.close()
    loop.run_until_complete(main())


def test_get_buffer_errors(loop):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))

        class Empty(asyncio.BufferedProtocol):
            def __init__(self):
                self.lost = loop.create_future()

            def get_buffer(self, n):
                return bytearray(0)

            def buffer_updated(self, n):
                pass

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(Empty, '127.0.0.1', port)
        tr.write(b'x')
        exc = await pr.lost
        assert isinstance(exc, RuntimeError)
        assert errors[0]['message'] == \
            'Fatal error: protocol.get_buffer() call failed.'
        server.close()
    loop.run_until_complete(main())


def test_create_connection_sock_keeps_socket(loop):
    """sock= : the transport's 'socket' is the very socket passed."""
    async def main():
        server, port = await echo_server(loop)
        sock = socket.create_connection(('127.0.0.1', port))
        fd = sock.fileno()
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              sock=sock)
        assert tr.get_extra_info('socket').fileno() == fd
        tr.write(b'abc')
        while bytes(pr.data) != b'abc':
            await asyncio.sleep(0.01)
        tr.close()
        await pr.lost
        await asyncio.sleep(0)
        # Closed exactly once, by the transport.
        assert sock.fileno() == -1
        server.close()
    loop.run_until_complete(main())


def test_create_connection_bad_arguments(loop):
    async def main():
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol)
        sock = socket.socket()
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', 1,
                                         sock=sock)
        sock.close()
        with pytest.raises(ValueError, match='server_hostname'):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', 1,
                                         server_hostname='x')
        udp = socket.socket(type=socket.SOCK_DGRAM)
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol, sock=udp)
        udp.close()
    loop.run_until_complete(main())


def test_local_addr_and_happy_eyeballs(loop):
    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(
            lambda: Recorder(loop), 'localhost', port,
            local_addr=('127.0.0.1', 0), happy_eyeballs_delay=0.05,
            interleave=1, family=socket.AF_INET)
        assert tr.get_extra_info('sockname')[0] == '127.0.0.1'
        tr.close()
        await pr.lost
        server.close()
    loop.run_until_complete(main())


def test_connect_accepted_socket(loop):
    async def main():
        lsock = socket.create_server(('127.0.0.1', 0))
        port = lsock.getsockname()[1]
        client = socket.create_connection(('127.0.0.1', port))
        conn, _ = lsock.accept()
        tr, pr = await loop.connect_accepted_socket(lambda: Recorder(loop),
                                                    conn)
        client.sendall(b'ping')
        while bytes(pr.data) != b'ping':
            await asyncio.sleep(0.01)
        tr.write(b'pong')
        await loop.run_in_executor(None, client.recv, 4)
        client.close()
        assert await pr.lost is None
        lsock.close()
    loop.run_until_complete(main())


def test_cancel_create_connection_no_leak(loop):
    async def main():
        # A listening socket whose backlog is full never completes connects.
        lsock = socket.socket()
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        import os
        before = len(os.listdir('/proc/self/fd'))
        for _ in range(20):
            t = loop.create_task(loop.create_connection(asyncio.Protocol,
                                                        '127.0.0.1', port))
            await asyncio.sleep(0.001)
            t.cancel()
            try:
                tr, _ = await t
                tr.close()
            except (asyncio.CancelledError, OSError):
                pass
        await asyncio.sleep(0.05)
        gc.collect()
        after = len(os.listdir('/proc/self/fd'))
        assert after <= before + 2
        lsock.close()
    loop.run_until_complete(main())


def test_last_reference_dropped_in_callback(loop):
    async def main():
        done = loop.create_future()

        class Drop(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr

            def data_received(self, data):
                tr = self.tr
                self.tr = None
                tr.abort()
                del tr

            def connection_lost(self, exc):
                done.set_result(None)

        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(Drop, '127.0.0.1', port)
        tr.write(b'x')
        del tr, pr
        gc.collect()
        await done
        gc.collect()
        server.close()
    loop.run_until_complete(main())


@pytest.mark.parametrize('order', ['close_loop_first', 'drop_first'])
def test_loop_closed_with_open_transports(loop_factory, order):
    loop = loop_factory()

    async def main():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(asyncio.Protocol,
                                              '127.0.0.1', port)
        tr.write(b'x' * 1_000_000)
        return server, tr, pr

    server, tr, pr = loop.run_until_complete(main())
    if order == 'drop_first':
        del tr, pr
        gc.collect()
        loop.close()
    else:
        loop.close()
        tr.write(b'x')
        for method in (tr.close, tr.abort):
            try:
                method()
            except RuntimeError:    # asyncio: 'Event loop is closed'
                pass
        del tr, pr
        gc.collect()
    server.close()
    gc.collect()


def test_memory_released_after_flood(aloop):
    """uvloop issue 548: the write buffer is released at connection_lost."""
    import tracemalloc
    loop = aloop

    async def main():
        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                tr.pause_reading()

        server, port = await echo_server(loop, Sink)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                                  '127.0.0.1', port)
            for _ in range(100):
                tr.write(bytearray(100_000))
            assert tr.get_write_buffer_size() > 5_000_000
            tr.close()
            tr.abort()
            await pr.lost
            del tr, pr
        await asyncio.sleep(0.05)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert grown < 2_000_000
        # Not wait_closed(): the paused server side never sees the EOF.
        server.close()
    loop.run_until_complete(main())


def test_repr(aloop):
    async def main():
        server, port = await echo_server(aloop)
        tr, pr = await aloop.create_connection(lambda: Recorder(aloop),
                                               '127.0.0.1', port)
        assert 'fd=' in repr(tr)
        tr.close()
        await pr.lost
        assert 'closed' in repr(tr)
        server.close()
    aloop.run_until_complete(main())


def test_transport_type(aloop):
    async def main():
        server, port = await echo_server(aloop)
        tr, pr = await aloop.create_connection(lambda: Recorder(aloop),
                                               '127.0.0.1', port)
        assert type(tr) is asyncloop._loop.SocketTransport
        tr.close()
        await pr.lost
        server.close()
    aloop.run_until_complete(main())


def test_sendfile(loop, tmp_path):
    path = tmp_path / 'f.bin'
    data = bytes(range(256)) * 1000
    path.write_bytes(data)

    async def main():
        got = bytearray()
        done = loop.create_future()

        class Collect(asyncio.Protocol):
            def data_received(self, d):
                got.extend(d)
                if len(got) >= len(data) - 10:
                    done.set_result(None)

        server, port = await echo_server(loop, Collect)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        with open(path, 'rb') as f:
            sent = await loop.sendfile(tr, f, offset=10)
            assert f.tell() == len(data)
        assert sent == len(data) - 10
        await done
        assert bytes(got) == data[10:]
        assert tr.get_protocol() is pr
        tr.close()
        await pr.lost
        server.close()
    loop.run_until_complete(main())


def test_protocol_without_data_received(loop):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
        lost = loop.create_future()

        class Bare(asyncio.BaseProtocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(Bare, '127.0.0.1', port)
        tr.write(b'x')
        assert isinstance(await lost, AttributeError)
        assert errors[0]['message'] == \
            'Fatal error: protocol.data_received() call failed.'
        server.close()
    loop.run_until_complete(main())


def _open_fds():
    import os
    return len(os.listdir('/proc/self/fd'))


def test_no_descriptor_closed_twice(loop):
    """The uvloop issue 645 bug class: a descriptor closed twice closes
    whatever reused its number in between. Probes opened right after each
    close must stay valid."""
    import os

    async def main():
        server, port = await echo_server(loop)
        probes = []
        for i in range(30):
            s = socket.create_connection(('127.0.0.1', port))
            tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                                  sock=s)
            ts = tr.get_extra_info('socket')
            if i % 2:
                tr.close()
            else:
                tr.abort()
            await pr.lost
            s.close()                   # the caller closes its socket too
            del ts
            probes.append(socket.socket())   # likely reuses the numbers
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        gc.collect()
        for p in probes:
            os.fstat(p.fileno())        # EBADF if closed behind our back
            p.getsockname()
            p.close()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


def test_cancel_at_every_step_leaks_nothing(loop):
    async def main():
        server, port = await echo_server(loop)
        # A first connection, so that what a loop opens once (libuv keeps
        # a spare descriptor for EMFILE) is open before counting.
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.close()
        await pr.lost
        await asyncio.sleep(0.01)
        gc.collect()
        before = _open_fds()
        for steps in range(12):
            task = loop.create_task(loop.create_connection(
                lambda: Recorder(loop), '127.0.0.1', port))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                tr, pr = await task
            except asyncio.CancelledError:
                pass
            else:
                tr.close()
                await pr.lost
        for _ in range(5):
            await asyncio.sleep(0.01)
        gc.collect()
        assert _open_fds() <= before
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


@pytest.mark.parametrize('where', ['data_received', 'connection_made'])
def test_keyboard_interrupt_in_protocol(loop, where):
    """KeyboardInterrupt raised by a protocol callback stops the loop and
    comes out of run_until_complete(); the loop stays usable."""
    class Interrupting(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            if where == 'connection_made':
                raise KeyboardInterrupt

        def data_received(self, data):
            raise KeyboardInterrupt

    async def setup():
        server, port = await echo_server(loop)
        tr, pr = await loop.create_connection(Interrupting, '127.0.0.1',
                                              port)
        return server, tr

    async def wait():
        tr.write(b'x')
        await asyncio.sleep(5)

    if where == 'connection_made':
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(setup())
        return
    server, tr = loop.run_until_complete(setup())
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(wait())
    tr.abort()
    server.close()
    loop.run_until_complete(asyncio.sleep(0.01))


def test_writelines_many_buffers(loop):
    """More buffers than one writev() takes (IOV_MAX)."""
    async def main():
        got = bytearray()
        done = loop.create_future()
        parts = [bytes([i % 256]) * (i % 7 + 1) for i in range(5000)]
        expected = b''.join(parts)

        class Collect(asyncio.Protocol):
            def data_received(self, d):
                got.extend(d)
                if len(got) >= len(expected) and not done.done():
                    done.set_result(None)

        server, port = await echo_server(loop, Collect)
        tr, pr = await loop.create_connection(lambda: Recorder(loop),
                                              '127.0.0.1', port)
        tr.writelines(parts)
        tr.writelines(iter(parts))
        expected *= 2
        await asyncio.wait_for(done, 5)
        assert bytes(got) == expected
        tr.close()
        await pr.lost
        server.close()
    loop.run_until_complete(main())


@pytest.mark.parametrize('high', [-1, -3, -4, -5])
def test_negative_high_water_message(loop, high):
    """set_write_buffer_limits(high<0): asyncio's ValueError, whose low is
    high // 4 (floor division)."""
    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            asyncio.Protocol, '127.0.0.1', port)
        try:
            with pytest.raises(ValueError) as info:
                transport.set_write_buffer_limits(high=high)
        finally:
            transport.close()
            server.close()
            await server.wait_closed()
        return str(info.value)

    assert loop.run_until_complete(main()) == (
        f'high ({high}) must be >= low ({high // 4}) must be >= 0')


def test_transport_methods_can_be_replaced_on_the_instance(loop):
    """Tests of servers replace a transport's methods (transport.write =
    ...) and tag transports: asyncio's transports have a __dict__."""
    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(
            asyncio.Protocol, a)
        written = []
        transport.write = written.append
        transport.tag = 'mine'
        transport.write(b'kept')
        del transport.write
        transport.write(b'sent')
        b.setblocking(False)
        received = await loop.sock_recv(b, 100)
        transport.close()
        b.close()
        return written, transport.tag, received

    assert loop.run_until_complete(main()) == ([b'kept'], 'mine', b'sent')
