"""Writes made by one callback leave together (asyncloop holds them until
the callback returns); everything a program or its peer can observe stays
the default loop's. Each test runs on both loops.
"""
import asyncio
import socket

import pytest


def recv_exactly(sock, n, timeout=10):
    sock.settimeout(timeout)
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until_eof(sock, timeout=10):
    sock.settimeout(timeout)
    data = b''
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


class Recorder(asyncio.Protocol):
    def __init__(self):
        self.events = []
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport
        self.lost = asyncio.get_running_loop().create_future()

    def pause_writing(self):
        self.events.append('pause')

    def resume_writing(self):
        self.events.append('resume')

    def connection_lost(self, exc):
        self.events.append('lost')
        self.lost.set_result(exc)


def connect(loop):
    """A transport on one end of a socketpair, and the other end."""
    ours, peer = socket.socketpair()
    tr, pr = loop.run_until_complete(
        loop.create_connection(Recorder, sock=ours))
    return tr, pr, peer


def run_in_callback(loop, func):
    """Runs func() as a callback of the running loop and returns its
    result."""
    async def main():
        fut = loop.create_future()

        def cb():
            fut.set_result(func())
        loop.call_soon(cb)
        return await fut
    return loop.run_until_complete(main())


def test_writes_of_one_callback_arrive_in_order(loop):
    tr, pr, peer = connect(loop)
    big = bytes(range(256)) * 1024

    def writes():
        tr.write(b'head ')
        tr.writelines([b'a', bytearray(b'b'), memoryview(b'cde')])
        tr.write(big)
        for i in range(100):
            tr.write(b'%d,' % i)
    try:
        run_in_callback(loop, writes)
        tail = b''.join(b'%d,' % i for i in range(100))
        expected = b'head abcde' + big + tail
        # More than a socketpair holds: the loop sends the rest.
        got = loop.run_until_complete(
            loop.run_in_executor(None, recv_exactly, peer, len(expected)))
        assert got == expected
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_buffer_size_after_write_is_what_asyncio_reports(loop):
    """A socket with room takes a small write at once: the write buffer is
    empty right after write(), inside the same callback."""
    tr, pr, peer = connect(loop)
    try:
        sizes = run_in_callback(loop, lambda: (
            tr.write(b'x' * 100), tr.get_write_buffer_size())[1])
        assert sizes == 0
        assert recv_exactly(peer, 100) == b'x' * 100
        assert pr.events == []
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_mutable_buffers_are_copied_at_write(loop):
    tr, pr, peer = connect(loop)

    def writes():
        data = bytearray(b'before')
        tr.write(data)
        data[:] = b'AFTER!'
    try:
        run_in_callback(loop, writes)
        assert recv_exactly(peer, 6) == b'before'
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


@pytest.mark.parametrize('end', ['close', 'write_eof', 'abort'])
def test_write_then_end_in_the_same_callback(loop, end):
    """What was written before close(), write_eof() or abort() reaches the
    peer (asyncio sent it at once), then the end of the stream."""
    tr, pr, peer = connect(loop)

    def writes():
        tr.write(b'one ')
        tr.write(b'two')
        getattr(tr, end)()
    try:
        run_in_callback(loop, writes)
        assert recv_until_eof(peer) == b'one two'
        if end != 'write_eof':
            assert loop.run_until_complete(pr.lost) is None
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_write_after_close_while_draining_finishes_the_close(loop):
    """resume_writing() of a closing transport writes more (as TLS does
    with its close_notify): the connection is still lost once drained."""
    tr, pr, peer = connect(loop)
    tr.set_write_buffer_limits(high=1024)
    size = 8 << 20

    def resume_writing():
        pr.events.append('resume')
        tr.write(b'last')
    pr.resume_writing = resume_writing

    def writes():
        tr.write(b'x' * size)
        tr.close()
    try:
        run_in_callback(loop, writes)
        got = loop.run_until_complete(
            loop.run_in_executor(None, recv_until_eof, peer, 30))
        assert got == b'x' * size + b'last'
        assert loop.run_until_complete(
            asyncio.wait_for(pr.lost, 10)) is None
        assert pr.events == ['pause', 'resume', 'lost']
    finally:
        peer.close()


def test_writes_before_an_interrupt_are_sent(loop):
    """A callback that writes, then raises KeyboardInterrupt: run_forever()
    raises it and what was written still leaves."""
    tr, pr, peer = connect(loop)

    def cb():
        tr.write(b'sent anyway')
        raise KeyboardInterrupt
    loop.call_soon(cb)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    try:
        assert recv_exactly(peer, 11) == b'sent anyway'
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_write_outside_the_loop_is_sent_at_once(loop):
    """With the loop not running, write() sends before it returns."""
    tr, pr, peer = connect(loop)
    try:
        tr.write(b'now')
        assert recv_exactly(peer, 3, timeout=5) == b'now'
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_write_from_data_received_is_sent_before_the_next_read(loop):
    """An echo: each reply leaves before the peer's next request is read."""
    ours, peer = socket.socketpair()

    class Echo(Recorder):
        def data_received(self, data):
            self.transport.write(data[:1])
            self.transport.write(data[1:])

    tr, pr = loop.run_until_complete(
        loop.create_connection(Echo, sock=ours))

    def client():
        for i in range(200):
            msg = b'request %d' % i
            peer.sendall(msg)
            assert recv_exactly(peer, len(msg)) == msg
    try:
        loop.run_until_complete(loop.run_in_executor(None, client))
    finally:
        tr.close()
        peer.close()
        loop.run_until_complete(pr.lost)


def test_streams_writes_and_drain(loop):
    """StreamWriter.write() + drain() to a peer that reads slowly: flow
    control pauses and resumes, and every byte arrives in order."""
    async def main():
        ours, peer = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        chunks = [bytes([i % 256]) * 1000 for i in range(3000)]

        async def produce():
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        task = asyncio.ensure_future(produce())
        got = await loop.run_in_executor(None, recv_until_eof, peer, 30)
        await task
        peer.close()
        return got == b''.join(chunks)
    assert loop.run_until_complete(main())
