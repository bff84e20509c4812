#!/usr/bin/env python3
"""Soak test: servers and clients on one event loop under mixed load for a
while, sampling the process's descriptors, memory and tasks, then a verdict
on whether they stayed flat after warm-up.

    python scripts/soak.py [--loop asyncio|uvloop|asyncloop] [--minutes N]
                           [--seconds N] [--interval S] [--plot FILE]

The load, all on 127.0.0.1 and Unix sockets in a temporary directory:
echo over TCP (a protocol and a streams server), TLS (a certificate made at
start with the openssl command), Unix sockets; clients that reset the
connection (SO_LINGER 0), clients that stop reading while the server
writes; call_later/cancel churn; short subprocesses with pipes; tasks
created and cancelled. Each worker repeats its exchange until the time is
up, a bounded number at once.

Verdict: the largest value of the last third of the samples is at most the
largest of the first third plus a margin (descriptors: 16; RSS: 4 MiB,
not checked under AddressSanitizer, whose own allocator grows; tasks: 64),
every descriptor is released after the servers close, and no worker met an
exception it did not expect. Exit 0 when all hold, 1 if not.
"""
import argparse
import asyncio
import gc
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.sysconf('SC_PAGE_SIZE')
UNDER_ASAN = 'asan' in os.environ.get('LD_PRELOAD', '')

# Up to ~20 connections and 2 subprocesses are open at any time, and the
# tasks worker makes bursts of 50 children: the margins are above that
# noise and far below what a leak of one per exchange adds in minutes.
MARGIN_FDS = 16
MARGIN_RSS = 4 << 20
MARGIN_TASKS = 64


def make_loop(kind):
    if kind == 'asyncio':
        return asyncio.new_event_loop()
    if kind == 'uvloop':
        import uvloop
        return uvloop.new_event_loop()
    try:
        import asyncloop
    except ImportError:  # not installed: the build in place
        sys.path.append(ROOT)
        import asyncloop
    print(f'soak: asyncloop from {asyncloop.__file__}', file=sys.stderr)
    return asyncloop.new_event_loop()


def make_certificate(tmpdir):
    """A self-signed certificate for localhost, for this run only."""
    cert, key = os.path.join(tmpdir, 'cert.pem'), os.path.join(tmpdir, 'key.pem')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
         '-subj', '/CN=localhost', '-days', '1', '-keyout', key,
         '-out', cert, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
        check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)
    return server, client


def sample(loop, started, counts, with_objects):
    fds = len(os.listdir('/proc/self/fd'))
    with open('/proc/self/statm') as f:
        rss = int(f.read().split()[1]) * PAGE
    return {
        't': time.monotonic() - started, 'fds': fds, 'rss': rss,
        'tasks': len(asyncio.all_tasks(loop)),
        'objects': len(gc.get_objects()) if with_objects else None,
        'ops': sum(counts.values()),
    }


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Soak:
    def __init__(self, loop, deadline, tmpdir, tls):
        self.loop = loop
        self.deadline = deadline
        self.tmpdir = tmpdir
        self.server_tls, self.client_tls = tls
        self.counts = {}
        self.errors = {}
        self.rng = random.Random(1)
        self.servers = []
        self.subprocesses = asyncio.Semaphore(2)

    def running(self):
        return self.loop.time() < self.deadline

    def count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def error(self, name, exc):
        key = f'{name}: {type(exc).__name__}: {exc}'[:120]
        self.errors[key] = self.errors.get(key, 0) + 1

    def payload(self):
        return os.urandom(self.rng.choice([1, 100, 4096, 70000]))

    # Servers ----------------------------------------------------------

    async def start_servers(self):
        loop = self.loop
        self.echo = await loop.create_server(EchoProtocol, '127.0.0.1', 0)
        self.streams = await asyncio.start_server(self.stream_echo,
                                                  '127.0.0.1', 0)
        self.tls = await asyncio.start_server(self.stream_echo, '127.0.0.1',
                                              0, ssl=self.server_tls)
        self.unix_path = os.path.join(self.tmpdir, 'echo.sock')
        self.unix = await loop.create_unix_server(EchoProtocol,
                                                  self.unix_path)
        self.writer = await asyncio.start_server(self.flood, '127.0.0.1', 0)
        self.servers = [self.echo, self.streams, self.tls, self.unix,
                        self.writer]

    @staticmethod
    def port(server):
        return server.sockets[0].getsockname()[1]

    async def stream_echo(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client reset
        finally:
            writer.close()

    async def flood(self, reader, writer):
        """Writes until the client has read 1 MiB or has stopped reading
        for 2 s, then closes (aborts a stalled client)."""
        chunk = b'f' * 65536
        try:
            for _ in range(16):
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 2)
            writer.close()
        except (asyncio.TimeoutError, ConnectionError):
            writer.transport.abort()

    async def close_servers(self):
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()

    # Workers ----------------------------------------------------------

    async def repeat(self, name, exchange, expected=()):
        while self.running():
            try:
                await asyncio.wait_for(exchange(), 30)
                self.count(name)
            except expected:
                self.count(name)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                self.error(name, exc)
                await asyncio.sleep(0.1)

    async def echo_protocol(self):
        loop = self.loop
        got = loop.create_future()
        data = self.payload()
        received = bytearray()

        class Client(asyncio.Protocol):
            def data_received(self, chunk):
                received.extend(chunk)
                if len(received) >= len(data) and not got.done():
                    got.set_result(None)

            def connection_lost(self, exc):
                if not got.done():
                    got.set_exception(ConnectionError('lost early'))

        transport, _ = await loop.create_connection(
            Client, '127.0.0.1', self.port(self.echo))
        try:
            transport.write(data)
            await got
            assert received == data, 'echo differs'
        finally:
            transport.close()

    async def echo_streams(self, tls=False, unix=False):
        if unix:
            reader, writer = await asyncio.open_unix_connection(self.unix_path)
        elif tls:
            reader, writer = await asyncio.open_connection(
                '127.0.0.1', self.port(self.tls), ssl=self.client_tls,
                server_hostname='localhost')
        else:
            reader, writer = await asyncio.open_connection(
                '127.0.0.1', self.port(self.streams))
        try:
            for _ in range(self.rng.randrange(1, 4)):
                data = self.payload()
                writer.write(data)
                await writer.drain()
                assert await reader.readexactly(len(data)) == data
        finally:
            writer.close()
            await writer.wait_closed()

    async def reset_client(self):
        """Connects, sends, and resets the connection (SO_LINGER 0)."""
        sock = socket.socket()
        sock.setblocking(False)
        try:
            port = self.port(self.rng.choice([self.echo, self.streams]))
            await self.loop.sock_connect(sock, ('127.0.0.1', port))
            await self.loop.sock_sendall(sock, self.payload())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack('ii', 1, 0))
        finally:
            sock.close()

    async def reset_transport(self):
        """The same through a transport: SO_LINGER 0, then abort()."""
        reader, writer = await asyncio.open_connection(
            '127.0.0.1', self.port(self.streams))
        writer.write(self.payload())
        sock = writer.get_extra_info('socket')
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack('ii', 1, 0))
        writer.transport.abort()

    async def stall_client(self):
        """Reads a little of the flood, stops reading for longer than the
        server waits, then closes."""
        reader, writer = await asyncio.open_connection(
            '127.0.0.1', self.port(self.writer))
        try:
            await reader.readexactly(1000)
            writer.transport.pause_reading()
            await asyncio.sleep(self.rng.choice([0.2, 2.5]))
            writer.transport.resume_reading()
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    async def timers(self):
        handles = [self.loop.call_later(self.rng.random() * 0.05, self.count,
                                        'timer-fired') for _ in range(500)]
        for handle in handles[::2]:
            handle.cancel()
        when = self.loop.time() + 0.01
        handles = [self.loop.call_at(when + i * 1e-4, self.count, 'timer-at')
                   for i in range(100)]
        for handle in handles[self.rng.randrange(100):]:
            handle.cancel()
        await asyncio.sleep(0.06)

    async def tasks(self):
        async def child(n):
            await asyncio.sleep(n * 0.001)
            return n
        tasks = [self.loop.create_task(child(i)) for i in range(50)]
        for task in tasks[::3]:
            task.cancel()
        for _ in range(20):
            self.loop.call_soon(self.count, 'soon')
        await asyncio.gather(*tasks, return_exceptions=True)

    async def subprocess(self):
        async with self.subprocesses:
            proc = await asyncio.create_subprocess_exec(
                '/bin/cat', stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE)
            data = self.payload()
            out, _ = await proc.communicate(data)
            assert out == data and proc.returncode == 0, 'cat differs'

    def workers(self):
        resets = (ConnectionError, asyncio.IncompleteReadError)
        plan = [
            ('echo-protocol', self.echo_protocol, (), 4),
            ('echo-streams', self.echo_streams, (), 2),
            ('echo-tls', lambda: self.echo_streams(tls=True), (), 2),
            ('echo-unix', lambda: self.echo_streams(unix=True), (), 2),
            ('reset-sock', self.reset_client, resets, 1),
            ('reset-transport', self.reset_transport, resets, 1),
            ('stall', self.stall_client, resets, 2),
            ('timers', self.timers, (), 1),
            ('tasks', self.tasks, (), 1),
            ('subprocess', self.subprocess, (), 2),
        ]
        return [self.repeat(name, fn, expected)
                for name, fn, expected, copies in plan
                for _ in range(copies)]


async def soak(loop, args, tmpdir, tls):
    started = time.monotonic()
    state = Soak(loop, loop.time() + args.duration, tmpdir, tls)
    await state.start_servers()
    samples = []
    workers = [loop.create_task(w) for w in state.workers()]
    n = 0
    while state.running():
        await asyncio.sleep(min(args.interval,
                                max(0.0, state.deadline - loop.time())))
        samples.append(sample(loop, started, state.counts, n % 4 == 0))
        n += 1
        print_row(samples[-1], file=sys.stderr)
    await asyncio.gather(*workers)
    await state.close_servers()
    # What is still closing (subprocess pipes, transports) gets a moment.
    for _ in range(10):
        await asyncio.sleep(0.05)
    return samples, state


def print_row(s, file=sys.stdout):
    objects = '-' if s['objects'] is None else s['objects']
    print(f"{s['t']:7.1f} {s['fds']:5d} {s['rss'] / 2**20:9.1f} "
          f"{s['tasks']:6d} {objects:>9} {s['ops']:9d}", file=file,
          flush=True)


def header(file=sys.stdout):
    print(f"{'t (s)':>7} {'fds':>5} {'RSS (MiB)':>9} {'tasks':>6} "
          f"{'objects':>9} {'ops':>9}", file=file)


def verdict(samples, fds_before, fds_after):
    """The reasons the run is not flat (none: flat)."""
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]
    problems = []
    checks = [('fds', MARGIN_FDS), ('tasks', MARGIN_TASKS)]
    if not UNDER_ASAN:
        checks.append(('rss', MARGIN_RSS))
    for key, margin in checks:
        early = max(s[key] for s in first)
        late = max(s[key] for s in last)
        if late > early + margin:
            problems.append(f'{key}: {late} at the end > {early} + {margin} '
                            'early on')
    if fds_after > fds_before:
        problems.append(f'{fds_after - fds_before} descriptors left open '
                        'after the servers closed')
    return problems


def plot(samples, path, kind):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no plot', file=sys.stderr)
        return
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(7, 7))
    t = [s['t'] for s in samples]
    for ax, key, label, scale in zip(
            axes, ('fds', 'rss', 'tasks'),
            ('descriptors', 'RSS (MiB)', 'tasks'), (1, 2**20, 1)):
        ax.plot(t, [s[key] / scale for s in samples])
        ax.set_ylabel(label)
    axes[-1].set_xlabel('seconds')
    axes[0].set_title(f'soak on {kind}')
    fig.savefig(path)
    print(f'plot: {path}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--loop', default='asyncloop',
                        choices=['asyncio', 'uvloop', 'asyncloop'])
    parser.add_argument('--minutes', type=float, default=5)
    parser.add_argument('--seconds', type=float,
                        help='duration in seconds (instead of --minutes)')
    parser.add_argument('--interval', type=float,
                        help='seconds between samples (default: a 30th of '
                        'the duration, 1 to 10)')
    parser.add_argument('--plot', metavar='PNG')
    args = parser.parse_args()
    args.duration = args.seconds if args.seconds else args.minutes * 60
    if args.interval is None:
        args.interval = min(10.0, max(1.0, args.duration / 30))
    if not shutil.which('openssl'):
        sys.exit('soak: the openssl command is needed for the TLS load')
    tmpdir = tempfile.mkdtemp(prefix='soak-')
    try:
        tls = make_certificate(tmpdir)
        loop = make_loop(args.loop)
        fds_before = len(os.listdir('/proc/self/fd'))
        print(f'soak: {args.loop} for {args.duration:.0f} s, a sample every '
              f'{args.interval:.0f} s', file=sys.stderr)
        header(sys.stderr)
        samples, state = loop.run_until_complete(soak(loop, args, tmpdir,
                                                      tls))
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        gc.collect()
        fds_after = len(os.listdir('/proc/self/fd'))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    print(f'\nsoak on {args.loop}, {args.duration:.0f} s'
          f'{" (AddressSanitizer: RSS not judged)" if UNDER_ASAN else ""}')
    header()
    for s in samples:
        print_row(s)
    print('\nexchanges: ' + ', '.join(f'{k} {v}' for k, v in
                                      sorted(state.counts.items())))
    problems = verdict(samples, fds_before, fds_after) if samples else [
        'no sample taken']
    for error, count in sorted(state.errors.items()):
        problems.append(f'{count}x unexpected {error}')
    if args.plot:
        plot(samples, args.plot, args.loop)
    if problems:
        print('verdict: NOT FLAT\n  ' + '\n  '.join(problems))
        return 1
    print(f'verdict: flat (descriptors {fds_before} before, {fds_after} '
          'after)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
