"""Benchmarks of the low-level socket API: sockets-mode echo and UDP round trips.

- sock_echo_<size>: an echo server written with sock_accept, sock_recv and sock_sendall
  (a task per connection), and clients written the same way on the same loop, each
  sending a message of <size> bytes and reading the whole echo back, one at a time.
- udp_rtt_512: datagram endpoints; clients send 512-byte datagrams to an echo server,
  one in flight per client, and count the round trips.

Each runs on asyncio's default loop, uvloop and asyncloop in one process, interleaved
round after round; the best round of each loop is reported with asyncloop's ratios.

    python bench/low_sock.py              # full run
    python bench/low_sock.py --quick      # a short one
    python bench/low_sock.py --only sock_echo_1k --loops uvloop,asyncloop
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

from _common import Benchmark, check, rate_script_main

CLIENTS = 10


async def _echo_connection(loop, conn, size):
    with conn:
        while True:
            data = await loop.sock_recv(conn, max(size, 65536))
            if not data:
                return
            await loop.sock_sendall(conn, data)


async def _echo_server(loop, srv, size, handlers):
    while True:
        conn, _ = await loop.sock_accept(srv)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handlers.append(loop.create_task(_echo_connection(loop, conn, size)))


async def _echo_client(loop, addr, size, count):
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await loop.sock_connect(sock, addr)
    message = os.urandom(size)
    buf = bytearray(size)
    view = memoryview(buf)
    with sock:
        for _ in range(count):
            await loop.sock_sendall(sock, message)
            got = 0
            while got < size:
                n = await loop.sock_recv_into(sock, view[got:])
                check(n > 0, "server closed the connection")
                got += n
        check(buf == message, "echo differs from the message")


def make_sock_echo(size):
    def bench(loop, n):
        per_client = max(1, n // CLIENTS)

        async def main():
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", 0))
            srv.listen(CLIENTS)
            srv.setblocking(False)
            handlers = []
            server = loop.create_task(_echo_server(loop, srv, size, handlers))
            addr = srv.getsockname()
            start = time.perf_counter()
            await asyncio.gather(*(_echo_client(loop, addr, size, per_client)
                                   for _ in range(CLIENTS)))
            elapsed = time.perf_counter() - start
            server.cancel()
            await asyncio.gather(*handlers, server, return_exceptions=True)
            srv.close()
            return elapsed

        return loop.run_until_complete(main())

    bench.__doc__ = (f"sockets-mode echo of {size} bytes: sock_sendall + sock_recv round "
                     f"trips, {CLIENTS} connections")
    return bench


class _EchoServer(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _PingClient(asyncio.DatagramProtocol):
    def __init__(self, count, done):
        self.left = count
        self.done = done
        self.payload = b"p" * 512

    def connection_made(self, transport):
        self.transport = transport
        transport.sendto(self.payload)

    def datagram_received(self, data, addr):
        self.left -= 1
        if self.left > 0:
            self.transport.sendto(self.payload)
        elif not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc):
        if not self.done.done():
            self.done.set_exception(exc)


def bench_udp_rtt(loop, n):
    """UDP round trips of 512 bytes, one in flight per client, 10 clients"""
    per_client = max(1, n // CLIENTS)

    async def main():
        server, _ = await loop.create_datagram_endpoint(
            _EchoServer, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        start = time.perf_counter()
        dones, clients = [], []
        for _ in range(CLIENTS):
            done = loop.create_future()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _PingClient(per_client, done), remote_addr=addr)
            dones.append(done)
            clients.append(transport)
        await asyncio.wait_for(asyncio.gather(*dones), 30)
        elapsed = time.perf_counter() - start
        for transport in clients:
            transport.close()
        server.close()
        await asyncio.sleep(0)
        return elapsed

    return loop.run_until_complete(main())


BENCHMARKS = [
    Benchmark("sock_echo_1k", make_sock_echo(1024), 50_000, 10_000),
    Benchmark("sock_echo_10k", make_sock_echo(10 * 1024), 30_000, 5_000),
    Benchmark("sock_echo_100k", make_sock_echo(100 * 1024), 5_000, 1_000),
    Benchmark("udp_rtt_512", bench_udp_rtt, 50_000, 10_000),
]


def main(argv=None):
    return rate_script_main(argv, "Low-level socket benchmarks: asyncio vs uvloop vs asyncloop.",
                            BENCHMARKS, "operations")


if __name__ == "__main__":
    sys.exit(main())
