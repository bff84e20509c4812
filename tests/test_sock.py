"""The sock_* coroutines and the descriptor watchers, on both loops."""
import asyncio
import gc
import os
import socket
import ssl
import sys
import tempfile

import pytest

import asyncloop

TIMEOUT = 10


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


def nb_pair(family=socket.AF_UNIX, type=socket.SOCK_STREAM):
    a, b = socket.socketpair(family, type)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def tcp_listener():
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(16)
    srv.setblocking(False)
    return srv


def fill(sock):
    """Fill the socket's send buffer until send() would block."""
    sent = 0
    chunk = b'x' * 65536
    while True:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            return sent


async def cancel_pending(coro):
    """Start coro, let it block, cancel it; the task must end cancelled."""
    task = asyncio.ensure_future(coro)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- sock_recv / sock_recv_into / sock_sendall ------------------------------


def test_recv_ready_and_waiting(loop):
    a, b = nb_pair()

    async def main():
        b.send(b'now')
        assert await loop.sock_recv(a, 100) == b'now'
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        assert not task.done()
        await loop.sock_sendall(b, b'later')
        assert await task == b'later'
        assert await loop.sock_recv(a, 0) == b''

    with a, b:
        run(loop, main())


def test_recv_into(loop):
    a, b = nb_pair()

    async def main():
        buf = bytearray(10)
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0.01)
        b.send(b'abc')
        assert await task == 3
        assert buf[:3] == b'abc'
        b.send(b'0123456789xyz')
        assert await loop.sock_recv_into(a, memoryview(buf)[2:5]) == 3
        assert buf[2:5] == b'012'

    with a, b:
        run(loop, main())


def test_recv_into_readonly_buffer(loop):
    a, b = nb_pair()

    async def main():
        b.send(b'x')
        with pytest.raises(TypeError):
            await loop.sock_recv_into(a, b'immutable')

    with a, b:
        run(loop, main())


@pytest.mark.parametrize('size', [1, 1024, 10 * 1024 * 1024])
def test_sendall_large_and_compared(loop, size):
    a, b = nb_pair()
    data = os.urandom(1024) * (size // 1024) if size >= 1024 else b'z'

    async def reader():
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(b, 1 << 16)
            assert chunk
            got += chunk
        return bytes(got)

    async def main():
        rtask = asyncio.ensure_future(reader())
        assert await loop.sock_sendall(a, data) is None
        assert await rtask == data

    with a, b:
        run(loop, main())


def test_sendall_accepts_buffers(loop):
    a, b = nb_pair()

    async def main():
        await loop.sock_sendall(a, bytearray(b'ab'))
        await loop.sock_sendall(a, memoryview(b'cdef')[1:3])
        await loop.sock_sendall(a, b'')
        await asyncio.sleep(0.01)
        assert b.recv(100) == b'abde'
        with pytest.raises(TypeError):
            await loop.sock_sendall(a, 'text')

    with a, b:
        run(loop, main())


def test_recv_eof_when_peer_closes(loop):
    a, b = nb_pair()

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        b.close()
        assert await task == b''

    with a:
        run(loop, main())


def test_sendall_peer_vanishes(loop):
    a, b = nb_pair()

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b'x' * 50_000_000))
        await asyncio.sleep(0.02)
        assert not task.done()
        b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            await task
        assert not loop.remove_writer(a)

    with a:
        run(loop, main())


def test_recv_on_closed_socket(loop):
    a, b = nb_pair()
    a.close()

    async def main():
        with pytest.raises(OSError):
            await loop.sock_recv(a, 10)
        with pytest.raises(OSError):
            await loop.sock_sendall(a, b'x')

    with b:
        run(loop, main())


# ---- cancellation leaves the socket consistent -------------------------------


@pytest.mark.parametrize('op', ['recv', 'recv_into', 'recvfrom',
                                'recvfrom_into', 'accept'])
def test_cancel_pending_read(loop, op):
    if op in ('recvfrom', 'recvfrom_into'):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(('127.0.0.1', 0))
        a.setblocking(False)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.setblocking(False)
    elif op == 'accept':
        a = tcp_listener()
        b = socket.socket()
        b.setblocking(False)
    else:
        a, b = nb_pair()
    buf = bytearray(100)
    calls = {
        'recv': lambda: loop.sock_recv(a, 100),
        'recv_into': lambda: loop.sock_recv_into(a, buf),
        'recvfrom': lambda: loop.sock_recvfrom(a, 100),
        'recvfrom_into': lambda: loop.sock_recvfrom_into(a, buf),
        'accept': lambda: loop.sock_accept(a),
    }

    async def main():
        await cancel_pending(calls[op]())
        # No watcher left behind ...
        assert loop.remove_reader(a) is False
        # ... and the socket still works.
        if op == 'accept':
            await loop.sock_connect(b, a.getsockname())
            conn, _ = await loop.sock_accept(a)
            conn.close()
        elif op in ('recvfrom', 'recvfrom_into'):
            task = asyncio.ensure_future(calls[op]())
            await asyncio.sleep(0.01)
            await loop.sock_sendto(b, b'ping', a.getsockname())
            res = await task
            assert b'ping' in (res[0], bytes(buf[:4]))
        else:
            task = asyncio.ensure_future(calls[op]())
            await asyncio.sleep(0.01)
            b.send(b'ping')
            res = await task
            assert res == b'ping' or bytes(buf[:res]) == b'ping'

    with a, b:
        run(loop, main())


def test_cancel_pending_sendall(loop):
    a, b = nb_pair()

    async def main():
        queued = fill(a)
        await cancel_pending(loop.sock_sendall(a, b'y' * 1_000_000))
        assert loop.remove_writer(a) is False
        # Drain what got through, then the socket sends again.
        got = 0
        while True:
            try:
                chunk = b.recv(1 << 20)
            except BlockingIOError:
                break
            got += len(chunk)
        assert got >= queued
        await loop.sock_sendall(a, b'end')

    with a, b:
        run(loop, main())


def test_cancel_pending_sendto(loop, tmp_path):
    path = str(tmp_path / 'dgram')
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    tx.setblocking(False)

    async def main():
        # A UNIX datagram socket blocks when the receiver's queue is full.
        while True:
            try:
                tx.sendto(b'q' * 1000, path)
            except BlockingIOError:
                break
        await cancel_pending(loop.sock_sendto(tx, b'late', path))
        assert loop.remove_writer(tx) is False
        rx.setblocking(False)
        while True:
            try:
                rx.recv(2000)
            except BlockingIOError:
                break
        assert await loop.sock_sendto(tx, b'ok', path) == 2

    with rx, tx:
        run(loop, main())


def test_cancel_pending_connect(loop):
    srv = tcp_listener()
    c = socket.socket()
    c.setblocking(False)

    async def main():
        task = asyncio.ensure_future(loop.sock_connect(c, srv.getsockname()))
        await asyncio.sleep(0)
        if task.done():
            pytest.skip('connect() completed at once')
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.remove_writer(c) is False

    with srv, c:
        run(loop, main())


def test_cancel_then_replace_watcher(loop):
    """A reader added by the user after sock_recv started is left alone."""
    a, b = nb_pair()

    async def main():
        called = loop.create_future()
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        loop.add_reader(a, lambda: called.done() or called.set_result(1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        b.send(b'x')
        assert await called == 1
        assert loop.remove_reader(a) is True

    with a, b:
        run(loop, main())


# ---- connect / accept --------------------------------------------------------


def test_connect_accept(loop):
    srv = tcp_listener()
    host, port = srv.getsockname()

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        c = socket.socket()
        c.setblocking(False)
        assert await loop.sock_connect(c, ('localhost', port)) is None
        conn, addr = await accept
        assert conn.gettimeout() == 0
        assert addr == c.getsockname()
        await loop.sock_sendall(c, b'hi')
        assert await loop.sock_recv(conn, 10) == b'hi'
        conn.close()
        c.close()

    with srv:
        run(loop, main())


def test_connect_refused(loop):
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    addr = srv.getsockname()
    srv.close()
    c = socket.socket()
    c.setblocking(False)

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(c, addr)
        assert loop.remove_writer(c) is False

    with c:
        run(loop, main())


def test_connect_unix(loop, tmp_path):
    path = str(tmp_path / 'sock')
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    srv.setblocking(False)
    c = socket.socket(socket.AF_UNIX)
    c.setblocking(False)

    async def main():
        await loop.sock_connect(c, path)
        conn, _ = await loop.sock_accept(srv)
        conn.close()

    with srv, c:
        run(loop, main())


def test_connect_bad_host(loop):
    c = socket.socket()
    c.setblocking(False)

    async def main():
        with pytest.raises(OSError):
            await loop.sock_connect(c, ('host.invalid', 80))

    with c:
        run(loop, main())


# ---- datagram sock_* ---------------------------------------------------------


def test_recvfrom_sendto(loop):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(('127.0.0.1', 0))
    a.setblocking(False)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(('127.0.0.1', 0))
    b.setblocking(False)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0.01)
        assert await loop.sock_sendto(b, b'hello', a.getsockname()) == 5
        assert await task == (b'hello', b.getsockname())
        buf = bytearray(10)
        await loop.sock_sendto(b, b'0123456789', a.getsockname())
        await asyncio.sleep(0.01)
        assert await loop.sock_recvfrom_into(a, buf, 4) == (
            4, b.getsockname())
        assert buf[:4] == b'0123'
        await loop.sock_sendto(b, b'abc', a.getsockname())
        await asyncio.sleep(0.01)
        assert await loop.sock_recvfrom_into(a, buf) == (3, b.getsockname())

    with a, b:
        run(loop, main())


# ---- argument checks -----------------------------------------------------------


def test_ssl_socket_rejected(loop):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sock = ctx.wrap_socket(socket.socket(), server_hostname='x',
                           do_handshake_on_connect=False)
    sock.setblocking(False)

    async def main():
        for coro in (loop.sock_recv(sock, 1),
                     loop.sock_recv_into(sock, bytearray(1)),
                     loop.sock_sendall(sock, b'x'),
                     loop.sock_connect(sock, ('127.0.0.1', 1)),
                     loop.sock_accept(sock),
                     loop.sock_recvfrom(sock, 1),
                     loop.sock_sendto(sock, b'x', ('127.0.0.1', 1))):
            with pytest.raises(TypeError):
                await coro

    with sock:
        run(loop, main())


def test_blocking_socket_rejected_in_debug(loop):
    loop.set_debug(True)
    a, b = socket.socketpair()

    async def main():
        for coro in (loop.sock_recv(a, 1),
                     loop.sock_recv_into(a, bytearray(1)),
                     loop.sock_sendall(a, b'x'),
                     loop.sock_connect(a, ('127.0.0.1', 1)),
                     loop.sock_accept(a),
                     loop.sock_recvfrom(a, 1),
                     loop.sock_recvfrom_into(a, bytearray(1)),
                     loop.sock_sendto(a, b'x', ('127.0.0.1', 1))):
            with pytest.raises(ValueError, match='non-blocking'):
                await coro

    with a, b:
        run(loop, main())


def test_sock_coroutines_are_coroutines(loop):
    a, b = nb_pair()
    with a, b:
        b.send(b'x')
        coro = loop.sock_recv(a, 1)
        assert asyncio.iscoroutine(coro)
        task = loop.create_task(coro)
        assert loop.run_until_complete(task) == b'x'


def test_negative_recv_size(loop):
    a, b = nb_pair()

    async def main():
        with pytest.raises(ValueError):
            await loop.sock_recv(a, -1)

    with a, b:
        run(loop, main())


# ---- closing the loop with operations pending --------------------------------


@pytest.mark.parametrize('op', ['recv', 'sendall', 'accept'])
def test_loop_closed_with_pending_operation(new_loop, op):
    loop = new_loop()
    a, b = nb_pair()
    c, d = nb_pair()
    srv = tcp_listener()
    fill(a)
    coros = {'recv': lambda: loop.sock_recv(c, 10),
             'sendall': lambda: loop.sock_sendall(a, b'z' * 100000),
             'accept': lambda: loop.sock_accept(srv)}

    async def start():
        task = asyncio.ensure_future(coros[op]())
        await asyncio.sleep(0.01)
        return task

    task = loop.run_until_complete(start())
    assert not task.done()
    loop.close()
    del task
    gc.collect()
    for s in (a, b, c, d, srv):
        s.close()


# ---- descriptor watchers -------------------------------------------------------


def test_reader_and_writer_coexist(loop):
    a, b = nb_pair()

    async def main():
        events = []
        readable = loop.create_future()
        writable = loop.create_future()

        def on_read():
            events.append('r')
            if not readable.done():
                readable.set_result(None)

        def on_write():
            events.append('w')
            if not writable.done():
                writable.set_result(None)

        assert loop.add_reader(a, on_read) is None
        assert loop.add_writer(a, on_write) is None
        await writable
        b.send(b'x')
        await readable
        assert loop.remove_writer(a) is True
        assert loop.remove_writer(a) is False
        a.recv(10)
        # The reader is still there after the writer went.
        readable2 = loop.create_future()
        loop.add_reader(a, readable2.set_result, 'again')
        b.send(b'y')
        assert await readable2 == 'again'
        assert loop.remove_reader(a) is True
        assert loop.remove_reader(a) is False

    with a, b:
        run(loop, main())


def test_remove_unknown_fd(loop):
    assert loop.remove_reader(12345) is False
    assert loop.remove_writer(12345) is False


def test_bad_fd(loop):
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises(ValueError):
        loop.add_reader('nonsense', print)
    with pytest.raises(ValueError):
        loop.remove_reader(object())


def test_closed_descriptor_does_not_spin(loop):
    a, b = nb_pair()
    calls = []

    async def main():
        loop.add_reader(a.fileno(), calls.append, 1)
        fd = a.fileno()
        a.close()
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20
        assert len(calls) <= 1
        loop.remove_reader(fd)

    with b:
        run(loop, main())


def test_watch_closed_descriptor_raises(loop):
    a, b = nb_pair()
    fd = a.fileno()
    a.close()
    b.close()
    # Not the number of anything open now.
    with pytest.raises(OSError):
        loop.add_reader(fd, print)


class _FakeTransport(asyncio.BaseTransport):
    def __init__(self):
        super().__init__()
        self.closing = False

    def is_closing(self):
        return self.closing


def test_fd_owned_by_transport(loop):
    a, b = nb_pair()
    transport = _FakeTransport()
    loop._transports[a.fileno()] = transport

    async def main():
        with pytest.raises(RuntimeError, match='is used by transport'):
            loop.add_reader(a, print)
        with pytest.raises(RuntimeError):
            loop.add_writer(a.fileno(), print)
        with pytest.raises(RuntimeError):
            loop.remove_reader(a)
        with pytest.raises(RuntimeError):
            await loop.sock_recv(a, 10)
        transport.closing = True
        loop.add_reader(a, print)
        assert loop.remove_reader(a)

    with a, b:
        run(loop, main())


def test_add_reader_closed_loop(new_loop):
    loop = new_loop()
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_reader(0, print)
    assert loop.remove_reader(0) is False


def test_reader_callback_args_and_exceptions(loop):
    a, b = nb_pair()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def main():
        got = loop.create_future()

        def cb(x, y):
            a.recv(10)
            got.set_result((x, y))
            raise ZeroDivisionError

        loop.add_reader(a, cb, 1, 2)
        b.send(b'x')
        assert await got == (1, 2)
        await asyncio.sleep(0.01)
        loop.remove_reader(a)
        assert isinstance(errors[0]['exception'], ZeroDivisionError)

    with a, b:
        run(loop, main())


def test_socket_closed_while_waiting(loop):
    """Closing the socket under a pending sock_recv: as with asyncio the
    operation waits on; cancelling it then is clean."""
    a, b = nb_pair()

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        fd = a.fileno()
        a.close()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.remove_reader(fd) is False

    with b:
        run(loop, main())


def test_sock_op_survives_dropped_references(loop):
    """The coroutine's caller keeps no reference to the socket or buffer."""
    a, b = nb_pair()

    def dup_nonblocking(sock):
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        dup.setblocking(False)
        return dup

    async def main():
        task = asyncio.ensure_future(
            loop.sock_recv_into(dup_nonblocking(a), bytearray(10)))
        await asyncio.sleep(0.01)
        gc.collect()
        b.send(b'abc')
        assert await task == 3

    with a, b:
        run(loop, main())


@pytest.mark.parametrize('size', [1, 100, 65536, 65537, 300_000])
def test_recv_sizes(loop, size):
    a, b = nb_pair()
    data = os.urandom(50_000)

    async def main():
        await loop.sock_sendall(b, data)
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(a, size)
            assert 0 < len(chunk) <= size
            got += chunk
        assert got == data

    with a, b:
        run(loop, main())
