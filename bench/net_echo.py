"""Echo server benchmark: asyncio's default loop vs uvloop vs asyncloop.

    python bench/net_echo.py                      # all modes and sizes
    python bench/net_echo.py --modes protocol --sizes 1024 --seconds 3
    python bench/net_echo.py --json out.json --chart echo.png

The server runs in its own process (one per loop, mode and size), in one of
four modes: a plain asyncio.Protocol, an asyncio.BufferedProtocol, asyncio
streams (start_server + read/write/drain, as a typical streams server: read
what is there, write it back, drain), and tls: the Protocol server behind
an ssl.SSLContext (a self-signed certificate made with the openssl command
at the start of the run). The load comes from a small C client
(bench/net_echo_client.c, compiled with cc on each run, linked with OpenSSL
for tls) in another process: CONNECTIONS connections, each sending one
message and waiting for its echo before sending the next, so requests per
second and the latency percentiles are those of the server. Server and
client are pinned to different CPUs when there are two.

The ceiling, "libuv C", is the same echo server written in C on libuv alone
(bench/libuv_echo_server.c), measured beside the loops in the plain modes;
the "/ceiling" columns give each loop's throughput as a fraction of it.
The server's CPU time (user + system, from /proc) while the client runs,
divided by the requests it served, is the CPU per request.

Rounds alternate between the servers and the best round is kept. What
cannot be built or made (the TLS client without OpenSSL's headers, the
certificate without the openssl command, the chart without matplotlib) is
skipped with a note on stderr; the rest still runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402

CLIENT_SOURCE = HERE / 'net_echo_client.c'
CEILING_SOURCE = HERE / 'libuv_echo_server.c'
CEILING = 'libuv C'
MODES = ('protocol', 'buffered', 'streams', 'tls')
PLAIN_MODES = ('protocol', 'buffered', 'streams')  # where the ceiling runs
SIZES = (1024, 10 * 1024, 100 * 1024)


# --------------------------------------------------------------------- server

def serve(loop_name, mode, port_file, certfile=None, keyfile=None):
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
        if mode == 'tls':
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            return await loop.create_server(EchoProtocol, '127.0.0.1', 0,
                                            ssl=context)
        factory = EchoProtocol if mode == 'protocol' else EchoBuffered
        return await loop.create_server(factory, '127.0.0.1', 0)

    server = loop.run_until_complete(start())
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------- set-up

def build(source, exe, flags=(), pkg=None):
    """Compile a C file of bench/; returns the executable, or None (with a
    note) when the compiler or the library pkg-config names is missing."""
    command = ['cc', '-O2', '-o', str(exe), str(source), *flags]
    if pkg:
        found = subprocess.run(['pkg-config', '--cflags', '--libs', pkg],
                               capture_output=True, text=True)
        if found.returncode:
            print(f'note: pkg-config finds no {pkg}: {exe.name} not built',
                  file=sys.stderr)
            return None
        command += found.stdout.split()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(f'note: {exe.name} did not build:\n{done.stderr}', file=sys.stderr)
        return None
    return exe


def make_certificate(workdir):
    """A self-signed certificate and its key for the TLS servers, or None."""
    if not shutil.which('openssl'):
        print('note: no openssl command to make a certificate', file=sys.stderr)
        return None
    cert, key = Path(workdir) / 'cert.pem', Path(workdir) / 'key.pem'
    done = subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec',
         '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
         '-keyout', str(key), '-out', str(cert), '-days', '1',
         '-subj', '/CN=localhost'], capture_output=True, text=True)
    if done.returncode:
        print(f'note: no certificate made:\n{done.stderr}', file=sys.stderr)
        return None
    return cert, key


# --------------------------------------------------------------------- client

def _pinned(cpu):
    """preexec_fn running the child on one CPU (server and client on
    different ones, so that they do not take turns on the same core)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _cpus():
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def cpu_seconds(pid):
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    fields = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run_one(tools, server, mode, size, conns, seconds):
    """One round against one server: its requests/s, latencies, CPU."""
    server_cpu, client_cpu = _cpus()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / 'port'
        if server == CEILING:
            command = [str(tools['ceiling']), str(port_file)]
        else:
            command = [sys.executable, __file__, '--serve', server, mode,
                       str(port_file)]
            if mode == 'tls':
                command += map(str, tools['certificate'])
        proc = subprocess.Popen(command, preexec_fn=_pinned(server_cpu))
        try:
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f'{server} server did not start')
            port = port_file.read_text()
            client = tools['tls_client' if mode == 'tls' else 'client']
            cpu_before = cpu_seconds(proc.pid)
            out = subprocess.run(
                [str(client), '127.0.0.1', port, str(conns), str(size),
                 str(seconds)] + (['tls'] if mode == 'tls' else []),
                check=True, capture_output=True, text=True,
                preexec_fn=_pinned(client_cpu)).stdout
            cpu = cpu_seconds(proc.pid) - cpu_before
        finally:
            proc.terminate()
            proc.wait()
    requests, secs, p50, p99, all_requests = out.split()
    return {'requests_per_second': int(requests) / float(secs),
            'p50_us': float(p50), 'p99_us': float(p99),
            'cpu_us_per_request': cpu / int(all_requests) * 1e6}


# --------------------------------------------------------------------- report

def report_tables(results, names):
    """Markdown tables: throughput and ratios, then CPU and latency."""
    servers = names + [CEILING]
    pairs = _common.ratio_pairs(names)
    rate_header = (['mode', 'size'] + [f'{n} req/s' for n in servers]
                   + [f'{a}/{b}' for a, b in pairs]
                   + [f'{n}/ceiling' for n in names])
    cost_header = (['mode', 'size'] + [f'{n} CPU µs/req' for n in servers]
                   + [f'{n} p50/p99 µs' for n in servers])
    rate_rows, cost_rows = [], []
    for (mode, size), best in results.items():
        def value(name, key):
            return best[name][key] if name in best else None

        def show(number, form='.0f'):
            return '-' if number is None else format(number, form)

        rps = {n: value(n, 'requests_per_second') for n in servers}
        label = [mode, f'{size // 1024} KiB']
        rate_rows.append(
            label + [show(rps[n]) for n in servers]
            + [_common.ratio(rps[a], rps[b]) for a, b in pairs]
            + [show(rps[n] / rps[CEILING] if rps[n] and rps[CEILING] else None,
                    '.2f') for n in names])
        cost_rows.append(
            label + [show(value(n, 'cpu_us_per_request'), '.1f') for n in servers]
            + [f"{best[n]['p50_us']:.0f}/{best[n]['p99_us']:.0f}" if n in best
               else '-' for n in servers])
    return (_common.markdown_table(rate_header, rate_rows) + '\n\n'
            + _common.markdown_table(cost_header, cost_rows))


def write_chart(path, results, names):
    """Grouped bars of requests/s: one panel per mode, a group per size."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('note: matplotlib is not installed: no chart '
              '(scripts/dev.sh bench installs it)', file=sys.stderr)
        return
    modes = list(dict.fromkeys(mode for mode, _ in results))
    servers = names + [CEILING]
    fig, axes = plt.subplots(1, len(modes), figsize=(3.2 * len(modes), 3.6),
                             squeeze=False)
    width = 0.8 / len(servers)
    for ax, mode in zip(axes[0], modes):
        sizes = [size for m, size in results if m == mode]
        for i, server in enumerate(servers):
            heights = [results[mode, size].get(server, {}).get(
                'requests_per_second', 0) for size in sizes]
            ax.bar([x + (i - (len(servers) - 1) / 2) * width
                    for x in range(len(sizes))], heights, width, label=server)
        ax.set_xticks(range(len(sizes)), [f'{s // 1024} KiB' for s in sizes])
        ax.set_title(mode)
        ax.grid(axis='y', alpha=0.3)
    axes[0][0].set_ylabel('requests/s')
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='upper center', ncol=len(servers))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=80)
    print(f'chart written to {path}', file=sys.stderr)


# --------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--serve', nargs='+', help=argparse.SUPPRESS)
    parser.add_argument('--loops', default=','.join(_common.LOOP_NAMES))
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--sizes', default=','.join(map(str, SIZES)))
    parser.add_argument('--connections', type=int, default=10)
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--no-ceiling', action='store_true',
                        help=f'leave out the {CEILING} echo server')
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument('--chart', metavar='FILE.png',
                        help='draw requests/s as a bar chart (needs matplotlib)')
    parser.add_argument('--quick', action='store_true',
                        help='one round of 0.5 s per case')
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    if args.serve:
        serve(*args.serve)
        return

    names = _common.parse_names(args.loops, _common.LOOP_NAMES)
    _, skipped = _common.loop_factories(names)
    _common.print_skipped(skipped)
    names = [n for n in names if n not in skipped]
    modes = _common.parse_names(args.modes, MODES)
    sizes = [int(s) for s in args.sizes.split(',')]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tools = {'client': build(CLIENT_SOURCE, tmp / 'net_echo_client')}
        if tools['client'] is None:
            raise SystemExit('the load client did not build')
        if not args.no_ceiling:
            tools['ceiling'] = build(CEILING_SOURCE, tmp / 'libuv_echo_server',
                                     pkg='libuv')
        if 'tls' in modes:
            tools['tls_client'] = build(CLIENT_SOURCE, tmp / 'net_echo_client_tls',
                                        ['-DWITH_OPENSSL'], pkg='openssl')
            tools['certificate'] = make_certificate(tmp)
            if not (tools['tls_client'] and tools['certificate']):
                print('note: tls mode skipped', file=sys.stderr)
                modes.remove('tls')
        for mode in modes:
            servers = list(names)
            if mode in PLAIN_MODES and tools.get('ceiling'):
                servers.append(CEILING)
            for size in sizes:
                best = {}
                for round_no in range(args.rounds):
                    shift = round_no % len(servers)
                    for name in servers[shift:] + servers[:shift]:
                        res = run_one(tools, name, mode, size,
                                      args.connections, args.seconds)
                        if (name not in best or res['requests_per_second']
                                > best[name]['requests_per_second']):
                            best[name] = res
                results[(mode, size)] = best
                print(f'{mode:9} {size // 1024:4} KiB  ' + '  '.join(
                    f"{n}: {best[n]['requests_per_second']:7.0f} req/s "
                    f"{best[n]['cpu_us_per_request']:6.1f} CPU us/req"
                    for n in servers), file=sys.stderr, flush=True)

    print()
    print(report_tables(results, names))
    if args.json:
        _common.write_json(args.json, {
            'environment': _common.environment(),
            'versions': _common.loop_versions(names),
            'results': [{'mode': m, 'size': s, 'loops': best}
                        for (m, s), best in results.items()],
        })
    if args.chart:
        write_chart(args.chart, results, names)


if __name__ == '__main__':
    main()
