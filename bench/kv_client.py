"""A redis-style client over asyncio streams: the client's loop is measured.

Each connection, opened with asyncio.open_connection(), sends a command in
RESP (redis's protocol), ``*2 $3 GET $8 key:NNNN``, with write() and drain(),
and parses the reply as redis clients parse it (readline() for the array and
each bulk header, readexactly() for each bulk string), one command in flight
per connection. The server is bench/libuv_echo_server.c (in C, the same for
every loop), so the reply is the command itself and the client's side is
what differs. Server and client each run on one CPU; the loops take turns
round by round, each client in a fresh process; requests per second and the
client's CPU time per request.

    python bench/kv_client.py [--loops L1,L2] [--connections N]
                              [--seconds S] [--rounds R] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402
import net_echo  # noqa: E402


async def one_connection(port, deadline, counts):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    done = 0
    i = 0
    while time.monotonic() < deadline:
        key = b'key:%04d' % (i % 10000)
        i += 1
        writer.write(b'*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n' % (len(key), key))
        await writer.drain()
        header = await reader.readline()
        _common.check(header == b'*2\r\n', f'unexpected reply {header!r}')
        for _ in range(2):
            size = int((await reader.readline())[1:])
            await reader.readexactly(size + 2)
        done += 1
    counts.append(done)
    writer.close()
    await writer.wait_closed()


def client(loop_name, port, connections, seconds):
    """Runs in the measured process: prints requests and CPU seconds."""
    factories, _ = _common.loop_factories([loop_name])
    loop = factories[loop_name]()
    counts = []
    deadline = time.monotonic() + seconds

    async def main():
        await asyncio.gather(*(one_connection(port, deadline, counts)
                               for _ in range(connections)))
    cpu_before = cpu_seconds()
    start = time.monotonic()
    loop.run_until_complete(main())
    elapsed = time.monotonic() - start
    cpu = cpu_seconds() - cpu_before
    loop.close()
    print(sum(counts), elapsed, cpu)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_round(loop_name, port, args, client_cpu):
    out = subprocess.run(
        [sys.executable, __file__, '--client', loop_name, str(port),
         str(args.connections), str(args.seconds)],
        check=True, capture_output=True, text=True, env=child_env(),
        preexec_fn=net_echo._pinned(client_cpu)).stdout
    requests, elapsed, cpu = out.split()
    return {'requests_per_second': int(requests) / float(elapsed),
            'cpu_us_per_request': float(cpu) / int(requests) * 1e6}


def child_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(_common.PROJECT_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(
            os.pathsep) if p])
    return env


def start_server(exe, tmp, server_cpu):
    port_file = Path(tmp) / 'port'
    proc = subprocess.Popen([str(exe), str(port_file)],
                            preexec_fn=net_echo._pinned(server_cpu))
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    proc.kill()
    raise SystemExit('the echo server did not start')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--client', nargs=4, help=argparse.SUPPRESS)
    parser.add_argument('--loops', default=','.join(_common.LOOP_NAMES))
    parser.add_argument('--connections', type=int, default=10)
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--quick', action='store_true',
                        help='one round of 0.5 s')
    args = parser.parse_args(argv)
    if args.client:
        name, port, connections, seconds = args.client
        client(name, int(port), int(connections), float(seconds))
        return 0
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    names = _common.parse_names(args.loops, _common.LOOP_NAMES)
    _, skipped = _common.loop_factories(names)
    _common.print_skipped(skipped)
    names = [n for n in names if n not in skipped]
    server_cpu, client_cpu = net_echo._cpus()
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        exe = net_echo.build(net_echo.CEILING_SOURCE, Path(tmp) / 'echo',
                             pkg='libuv')
        if exe is None:
            raise SystemExit('the echo server did not build')
        proc, port = start_server(exe, tmp, server_cpu)
        try:
            for round_no in range(1, args.rounds + 1):
                for name in names:
                    got = run_round(name, port, args, client_cpu)
                    print(f'  round {round_no} {name:10} '
                          f'{got["requests_per_second"]:9.0f} req/s '
                          f'{got["cpu_us_per_request"]:6.1f} CPU µs/req',
                          file=sys.stderr, flush=True)
                    if (name not in best or got['requests_per_second']
                            > best[name]['requests_per_second']):
                        best[name] = got
        finally:
            proc.terminate()
            proc.wait()
    pairs = _common.ratio_pairs(names)
    header = ([f'{n} req/s' for n in names] + [f'{a}/{b}' for a, b in pairs]
              + [f'{n} CPU µs/req' for n in names])
    row = ([f'{best[n]["requests_per_second"]:.0f}' for n in names]
           + [_common.ratio(best[a]['requests_per_second'],
                            best[b]['requests_per_second']) for a, b in pairs]
           + [f'{best[n]["cpu_us_per_request"]:.1f}' for n in names])
    print(f'\nPython {sys.version.split()[0]}; {args.connections} connections, '
          f'best of {args.rounds} rounds of {args.seconds:g} s\n')
    print(_common.markdown_table(header, [row]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
