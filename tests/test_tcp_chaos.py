"""Random sequences of transport calls against a peer that misbehaves at
random: nothing may crash, every connection_lost comes exactly once.

asyncloop only: the default loop's own transports raise TypeError or
AttributeError on 3.12+ for some of these sequences (calls made after the
transport closed), which would say nothing about asyncloop."""
import asyncio
import random
import socket

import pytest


class Tracker(asyncio.BufferedProtocol):
    """Switches between plain and buffered reading at random."""

    def __init__(self, loop, rng, counts):
        self.rng = rng
        self.counts = counts
        self.buf = bytearray(rng.choice([1, 7, 4096]))
        self.done = loop.create_future()

    def connection_made(self, tr):
        self.tr = tr

    def get_buffer(self, n):
        return self.buf

    def buffer_updated(self, n):
        if self.rng.random() < 0.05:
            raise ValueError('protocol error at random')

    def data_received(self, data):
        pass

    def eof_received(self):
        return self.rng.random() < 0.5

    def connection_lost(self, exc):
        self.counts[id(self)] = self.counts.get(id(self), 0) + 1
        if not self.done.done():
            self.done.set_result(exc)


class Plain(asyncio.Protocol):
    pass


class Peer(asyncio.Protocol):
    def __init__(self, rng):
        self.rng = rng

    def connection_made(self, tr):
        self.tr = tr
        asyncio.get_running_loop().call_later(self.rng.random() * 0.05,
                                              self.misbehave)

    def misbehave(self):
        r = self.rng.random()
        if self.tr.is_closing():
            return
        if r < 0.3:
            sock = self.tr.get_extra_info('socket')
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b'\x01\x00\x00\x00\x00\x00\x00\x00')
            self.tr.abort()
        elif r < 0.5:
            self.tr.close()
        elif r < 0.7:
            self.tr.pause_reading()
        else:
            self.tr.write(b'p' * self.rng.choice([1, 1000, 200_000]))

    def data_received(self, data):
        if self.rng.random() < 0.1:
            self.tr.write(data[:100])


async def poke(loop, port, rng, counts):
    proto = Tracker(loop, rng, counts)
    try:
        tr, _ = await loop.create_connection(lambda: proto, '127.0.0.1', port)
    except OSError:
        return
    for _ in range(rng.randrange(1, 30)):
        op = rng.randrange(12)
        try:
            if op == 0:
                tr.write(b'x' * rng.choice([0, 1, 100, 100_000]))
            elif op == 1:
                tr.writelines([b'a', bytearray(b'b'), memoryview(b'c' * 500)])
            elif op == 2:
                tr.write_eof()
            elif op == 3:
                tr.pause_reading()
            elif op == 4:
                tr.resume_reading()
            elif op == 5:
                tr.set_write_buffer_limits(high=rng.choice([0, 10, 100_000]))
            elif op == 6:
                tr.set_protocol(rng.choice([proto, Plain()]))
                tr.set_protocol(proto)
            elif op == 7:
                tr.get_extra_info('socket')
                tr.get_extra_info('peername')
                tr.get_write_buffer_size()
                repr(tr)
            elif op == 8 and rng.random() < 0.3:
                tr.close()
            elif op == 9 and rng.random() < 0.2:
                tr.abort()
            else:
                await asyncio.sleep(rng.random() * 0.01)
        except (RuntimeError, OSError):
            # write after write_eof(); asyncio's write_eof() raises the
            # shutdown() error of a reset socket.
            pass
    tr.abort()
    await asyncio.wait_for(proto.done, 5)


@pytest.mark.parametrize('seed', range(8))
def test_chaos(aloop, seed):
    loop = aloop
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(ctx))

    async def main():
        rng = random.Random(seed)
        server = await loop.create_server(lambda: Peer(rng), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        counts = {}
        await asyncio.gather(*(poke(loop, port, random.Random(seed * 1000 + i),
                                    counts) for i in range(60)))
        assert counts and set(counts.values()) == {1}
        server.close()
    loop.run_until_complete(main())
    for ctx in errors:
        assert isinstance(ctx.get('exception'), (ValueError, OSError)), ctx
