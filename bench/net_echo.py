"""Echo server benchmark: asyncio's default loop vs uvloop vs asyncloop.

    python bench/net_echo.py                      # all modes and sizes
    python bench/net_echo.py --modes protocol --sizes 1024 --seconds 3
    python bench/net_echo.py --json out.json

The server runs in its own process (one per loop, mode and size), in one of
three modes: a plain asyncio.Protocol, an asyncio.BufferedProtocol, and
asyncio streams (start_server + readexactly/write/drain... as a typical
streams server: read what is there, write it back, drain). The load comes
from a small C client (bench/net_echo_client.c, compiled with cc on the
first run) in another process: CONNECTIONS connections, each sending one
message and waiting for its echo before sending the next, so requests per
second and the latency percentiles are those of the server. Server and
client are pinned to different CPUs when there are two. Rounds alternate
between the loops and the best round is kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402

CLIENT_SOURCE = HERE / 'net_echo_client.c'
MODES = ('protocol', 'buffered', 'streams')
SIZES = (1024, 10 * 1024, 100 * 1024)


# --------------------------------------------------------------------- server

def serve(loop_name, mode, port_file):
    import asyncio
    factories, _ = _common.loop_factories([loop_name])
    loop = factories[loop_name]()
    asyncio.set_event_loop(loop)

    class EchoProtocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    class EchoBuffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = bytearray(256 * 1024)
            self.view = memoryview(self.buffer)

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.view

        def buffer_updated(self, nbytes):
            self.transport.write(self.view[:nbytes])

    async def echo_stream(reader, writer):
        try:
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def start():
        if mode == 'streams':
            return await asyncio.start_server(echo_stream, '127.0.0.1', 0)
        factory = EchoProtocol if mode == 'protocol' else EchoBuffered
        return await loop.create_server(factory, '127.0.0.1', 0)

    server = loop.run_until_complete(start())
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------- client

def build_client(workdir):
    exe = Path(workdir) / 'net_echo_client'
    subprocess.run(['cc', '-O2', '-o', str(exe), str(CLIENT_SOURCE)],
                   check=True)
    return exe


def _pinned(cpu):
    """preexec_fn running the child on one CPU (server and client on
    different ones, so that they do not take turns on the same core)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _cpus():
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def run_one(client, loop_name, mode, size, conns, seconds):
    server_cpu, client_cpu = _cpus()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / 'port'
        proc = subprocess.Popen(
            [sys.executable, __file__, '--serve', loop_name, mode,
             str(port_file)], preexec_fn=_pinned(server_cpu))
        try:
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f'{loop_name} server did not start')
            port = port_file.read_text()
            out = subprocess.run(
                [str(client), '127.0.0.1', port, str(conns), str(size),
                 str(seconds)], check=True, capture_output=True,
                text=True, preexec_fn=_pinned(client_cpu)).stdout
        finally:
            proc.terminate()
            proc.wait()
    requests, secs, p50, p99 = out.split()
    return int(requests) / float(secs), float(p50), float(p99)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--serve', nargs=3, help=argparse.SUPPRESS)
    parser.add_argument('--loops', default=','.join(_common.LOOP_NAMES))
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--sizes', default=','.join(map(str, SIZES)))
    parser.add_argument('--connections', type=int, default=10)
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument('--quick', action='store_true',
                        help='one round of 0.5 s per case')
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    if args.serve:
        serve(*args.serve)
        return

    names = [n for n in args.loops.split(',') if n]
    _, skipped = _common.loop_factories(names)
    _common.print_skipped(skipped)
    names = [n for n in names if n not in skipped]
    modes = args.modes.split(',')
    sizes = [int(s) for s in args.sizes.split(',')]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        client = build_client(tmp)
        for mode in modes:
            for size in sizes:
                best = {}
                for _ in range(args.rounds):
                    for name in names:
                        res = run_one(client, name, mode, size,
                                      args.connections, args.seconds)
                        if name not in best or res[0] > best[name][0]:
                            best[name] = res
                results[(mode, size)] = best
                print(f'{mode:9} {size // 1024:4} KiB  ' + '  '.join(
                    f'{n}: {best[n][0]:9.0f} req/s p50 {best[n][1]:6.0f}us '
                    f'p99 {best[n][2]:6.0f}us' for n in names), flush=True)

    header = ['mode', 'size'] + [f'{n} req/s' for n in names]
    pairs = _common.ratio_pairs(names)
    header += [f'{a}/{b}' for a, b in pairs]
    header += [f'{n} p50/p99 us' for n in names]
    rows = []
    for (mode, size), best in results.items():
        row = [mode, f'{size // 1024} KiB']
        row += [f'{best[n][0]:.0f}' for n in names]
        row += [_common.ratio(best[a][0], best[b][0]) for a, b in pairs]
        row += [f'{best[n][1]:.0f}/{best[n][2]:.0f}' for n in names]
        rows.append(row)
    print()
    print(_common.markdown_table(header, rows))
    if args.json:
        _common.write_json(args.json, {
            'environment': _common.environment(),
            'versions': _common.loop_versions(names),
            'results': [{'mode': m, 'size': s, 'loops': {
                n: {'requests_per_second': v[0], 'p50_us': v[1],
                    'p99_us': v[2]} for n, v in best.items()}}
                for (m, s), best in results.items()],
        })


if __name__ == '__main__':
    main()
