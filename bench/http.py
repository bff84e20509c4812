"""HTTP benchmark: uvicorn and aiohttp servers on asyncio's default loop, uvloop, asyncloop.

    python bench/http.py                   # 3 rounds of 5 s per case
    python bench/http.py --quick           # one round of 1 s per case: a smoke run
    python bench/http.py --only uvicorn-httptools/plaintext --loops uvloop,asyncloop
    python bench/http.py --json http.json

Servers: uvicorn with its httptools and its h11 HTTP implementation (the ASGI
application of http_apps/asgi_app.py, ``--loop asyncio``, ``--loop uvloop`` or
``--loop asyncloop:new_event_loop``), and aiohttp (http_apps/aiohttp_server.py,
an AppRunner inside ``asyncio.Runner(loop_factory=...)``). Each serves a plain
text hello world (``/plaintext``) and a small JSON document (``/json``).

Every server runs in its own process pinned to one CPU, listening on
127.0.0.1 only; wrk (``apt-get install wrk``), pinned to the other CPU, loads
it with keep-alive connections for a fixed time after a one-second warm-up.
Per case and loop the report gives requests per second, the p50/p99 latency
from wrk's latency distribution and the server's CPU time per request: its
user + system time from /proc/PID/stat over the measured run, divided by the
requests wrk completed.

The loops are interleaved round by round (the order rotated every round), and
the best round by requests per second is kept with its latency and CPU, as
in the other scripts of bench/. Before it is measured each server must answer
both routes with the right body, and a run with socket errors or non-2xx
responses counts as a failure, so that a broken loop cannot look fast.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402
from net_echo import cpu_seconds  # noqa: E402

# This file is named http.py: with bench/ first on sys.path it would stand in
# for the standard library's http package. Nothing after the imports above
# needs bench/ on the path, so it is taken off again.
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != HERE]

APPS = HERE / 'http_apps'
SERVERS = ('uvicorn-httptools', 'uvicorn-h11', 'aiohttp')
# What each server needs installed, for a note when it is missing.
SERVER_MODULES = {'uvicorn-httptools': ('uvicorn', 'httptools'),
                  'uvicorn-h11': ('uvicorn', 'h11'),
                  'aiohttp': ('aiohttp',)}
UVICORN_LOOPS = {'asyncio': 'asyncio', 'uvloop': 'uvloop',
                 'asyncloop': 'asyncloop:new_event_loop'}
# Response name -> (path, the exact body the server must send).
RESPONSES = {'plaintext': ('/plaintext', b'Hello, World!'),
             'json': ('/json', b'{"message": "Hello, World!"}')}
WARM_UP_SECONDS = 1
START_TIMEOUT = 60  # seconds for a server to answer, generous on a loaded machine


@dataclass
class Case:
    """One server and one response: a row of the report."""
    server: str
    response: str

    @property
    def name(self) -> str:
        return f'{self.server}/{self.response}'

    @property
    def doc(self) -> str:
        return f'{self.server} serving GET {RESPONSES[self.response][0]}'


CASES = [Case(server, response) for server in SERVERS for response in RESPONSES]


# --------------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def child_setup(cpu, lifetime):
    """preexec_fn for servers and wrk: pinned to cpu (when there is one to
    spare), killed with SIGTERM when this script dies, and by SIGALRM (whose
    alarm survives exec) after lifetime seconds whatever happens."""
    def setup():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        signal.alarm(lifetime)
    return setup


def two_cpus():
    """(server CPU, load CPU), or (None, None) when only one CPU is ours."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def server_command(server, loop_name, port):
    if server == 'aiohttp':
        return [sys.executable, str(APPS / 'aiohttp_server.py'), loop_name, str(port)]
    return [sys.executable, '-m', 'uvicorn', 'asgi_app:app', '--app-dir', str(APPS),
            '--host', '127.0.0.1', '--port', str(port),
            '--http', server.split('-', 1)[1], '--loop', UVICORN_LOOPS[loop_name],
            '--lifespan', 'off', '--no-access-log', '--log-level', 'warning']


def child_env():
    """The environment of a server: asyncloop found from an in-place build."""
    env = dict(os.environ)
    paths = [str(_common.PROJECT_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(
        os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def http_get(port, path, timeout=5.0):
    """One GET on a fresh connection: (status, body)."""
    request = (f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
               'Connection: close\r\n\r\n').encode()
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b''.join(chunks).partition(b'\r\n\r\n')
    status = int(head.split(b' ', 2)[1]) if head.startswith(b'HTTP/1.') else None
    return status, body


class Server:
    """A server process, started and checked on entry, stopped on exit
    (also on an error or Ctrl-C)."""

    def __init__(self, server, loop_name, cpu, lifetime):
        self.name = f'{server} on {loop_name}'
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            server_command(server, loop_name, self.port), env=child_env(),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=child_setup(cpu, lifetime))

    def __enter__(self):
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors='replace')[-2000:]

    def wait_ready(self):
        """Wait until the server answers, then check both responses."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise _common.BenchmarkError(
                    f'{self.name} exited with {self.proc.returncode}:\n{self.output()}')
            try:
                http_get(self.port, '/plaintext')
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise _common.BenchmarkError(
                        f'{self.name} did not answer within {START_TIMEOUT} s')
                time.sleep(0.1)
        for path, body in RESPONSES.values():
            status, got = http_get(self.port, path)
            _common.check(status == 200 and got == body,
                          f'{self.name}: GET {path} gave {status} {got[:100]!r}')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------- load

def require_wrk() -> str:
    wrk = shutil.which('wrk')
    if wrk is None:
        raise SystemExit('wrk is not installed: apt-get install wrk '
                         '(scripts/dev.sh bench installs it)')
    return wrk


_UNITS = {'us': 1.0, 'ms': 1e3, 's': 1e6, 'm': 60e6}


def _microseconds(text):
    number, unit = re.fullmatch(r'([\d.]+)(us|ms|s|m)', text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    """The numbers of a ``wrk --latency`` report."""
    def find(pattern):
        match = re.search(pattern, output)
        if match is None:
            raise _common.BenchmarkError(f'unexpected wrk output:\n{output}')
        return match.groups()

    errors = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), '
                       r'timeout (\d+)', output)
    non_2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', output)
    return {
        'requests': int(find(r'(\d+) requests in')[0]),
        'requests_per_second': float(find(r'Requests/sec:\s+([\d.]+)')[0]),
        'p50_us': _microseconds(find(r'\n\s+50%\s+(\S+)')[0]),
        'p99_us': _microseconds(find(r'\n\s+99%\s+(\S+)')[0]),
        'socket_errors': sum(map(int, errors.groups())) if errors else 0,
        'non_2xx': int(non_2xx.group(1)) if non_2xx else 0,
    }


def run_wrk(wrk, port, path, seconds, args, cpu) -> str:
    command = [wrk, f'-t{args.threads}', f'-c{args.connections}', f'-d{seconds}s',
               '--latency', '--timeout', '10s', f'http://127.0.0.1:{port}{path}']
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          stdin=subprocess.DEVNULL,
                          preexec_fn=child_setup(cpu, seconds + 90))
    if done.returncode:
        raise _common.BenchmarkError(f'wrk failed ({done.returncode}):\n{done.stderr}')
    return done.stdout


def start_perf(pid, path, seconds):
    """perf record -g of the server for the measured run, when asked."""
    return subprocess.Popen(['perf', 'record', '-g', '-q', '-p', str(pid), '-o', str(path),
                             '--', 'sleep', str(seconds)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def measure(wrk, server, path, args, load_cpu, perf_file=None) -> dict:
    """One measured wrk run against a running server, checked."""
    perf = start_perf(server.proc.pid, perf_file, args.duration) if perf_file else None
    cpu_before = cpu_seconds(server.proc.pid)
    try:
        output = run_wrk(wrk, server.port, path, args.duration, args, load_cpu)
    finally:
        if perf:
            perf.wait(args.duration + 60)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    result = parse_wrk(output)
    _common.check(result['requests'] > 0, f'{server.name}: no request completed')
    _common.check(result['socket_errors'] == 0 and result['non_2xx'] == 0,
                  f'{server.name}: {result["socket_errors"]} socket errors, '
                  f'{result["non_2xx"]} non-2xx responses:\n{output}')
    result['cpu_us_per_request'] = cpu / result['requests'] * 1e6
    # Below 1.0 the server was not always running: waiting for wrk, or for a
    # CPU that other processes took.
    result['server_cpu_share'] = cpu / args.duration
    return result


# --------------------------------------------------------------------- rounds

def new_entry():
    return {'rounds': [], 'best': None, 'error': None}


def run_server_round(wrk, server, loop_name, cases, args, round_no, results):
    """Start one server on one loop, warm it up, measure each of its cases."""
    server_cpu, load_cpu = two_cpus()
    lifetime = START_TIMEOUT + 120 + (len(cases) + 1) * (args.duration + 30)
    with Server(server, loop_name, server_cpu, lifetime) as running:
        run_wrk(wrk, running.port, RESPONSES[cases[0].response][0],
                WARM_UP_SECONDS, args, load_cpu)
        for case in cases:
            entry = results[case.name][loop_name]
            perf_file = None
            if args.perf:
                perf_file = Path(args.perf) / (f'{server}-{case.response}-{loop_name}'
                                               f'-r{round_no + 1}.data')
            result = measure(wrk, running, RESPONSES[case.response][0], args, load_cpu,
                             perf_file)
            entry['rounds'].append(result)
            print(f'  round {round_no + 1} {case.name:<28} {loop_name:<10}'
                  f' {result["requests_per_second"]:8.0f} req/s'
                  f' {result["cpu_us_per_request"]:6.1f} CPU µs/req'
                  f' (server busy {result["server_cpu_share"]:.0%})',
                  file=sys.stderr, flush=True)


def run_all(wrk, cases, names, args) -> dict:
    """Every case on every loop, round by round, loops rotated each round.

    Result: ``{case: {loop: {"rounds": [...], "best": {...}, "error"}}}``.
    """
    results = {case.name: {name: new_entry() for name in names} for case in cases}
    servers = list(dict.fromkeys(case.server for case in cases))
    for round_no in range(args.rounds):
        shift = round_no % len(names)
        for server in servers:
            server_cases = [case for case in cases if case.server == server]
            for loop_name in names[shift:] + names[:shift]:
                entries = [results[case.name][loop_name] for case in server_cases]
                if any(entry['error'] for entry in entries):
                    continue  # a server that failed once on a loop is not retried
                try:
                    run_server_round(wrk, server, loop_name, server_cases, args,
                                     round_no, results)
                except (_common.BenchmarkError, OSError,
                        subprocess.SubprocessError) as exc:
                    print(f'error: {server} on {loop_name}: {exc}', file=sys.stderr)
                    for entry in entries:
                        entry['error'] = f'{type(exc).__name__}: {exc}'
    for entry in (e for by_loop in results.values() for e in by_loop.values()):
        if entry['rounds'] and not entry['error']:
            entry['best'] = max(entry['rounds'], key=lambda r: r['requests_per_second'])
    return results


# --------------------------------------------------------------------- report

def report_tables(results, names) -> str:
    """Requests/s with asyncloop's ratios; then CPU per request and latency."""
    pairs = _common.ratio_pairs(names)
    rate_header = (['case'] + [f'{n} req/s' for n in names]
                   + [f'{a}/{b}' for a, b in pairs])
    cost_header = (['case'] + [f'{n} CPU µs/req' for n in names]
                   + [f'CPU {a}/{b}' for a, b in pairs]
                   + [f'{n} p50/p99 ms' for n in names])
    rate_rows, cost_rows = [], []
    for case_name, by_loop in results.items():
        best = {n: by_loop[n]['best'] for n in names}

        def value(name, key):
            return best[name][key] if best[name] else None

        rps = {n: value(n, 'requests_per_second') for n in names}
        cpu = {n: value(n, 'cpu_us_per_request') for n in names}
        rate_rows.append([case_name] + [f'{rps[n]:.0f}' if rps[n] else 'error'
                                        for n in names]
                         + [_common.ratio(rps[a], rps[b]) for a, b in pairs])
        cost_rows.append(
            [case_name] + [f'{cpu[n]:.1f}' if cpu[n] else 'error' for n in names]
            + [_common.ratio(cpu[a], cpu[b]) for a, b in pairs]
            + [f"{best[n]['p50_us'] / 1e3:.2f}/{best[n]['p99_us'] / 1e3:.2f}"
               if best[n] else '-' for n in names])
    return (_common.markdown_table(rate_header, rate_rows) + '\n\n'
            + _common.markdown_table(cost_header, cost_rows))


def package_versions() -> dict:
    versions = {}
    for package in ('uvicorn', 'httptools', 'h11', 'aiohttp'):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def available_cases(cases):
    """The cases whose server can be imported, with a note for the others."""
    missing = {server: [m for m in modules if importlib.util.find_spec(m) is None]
               for server, modules in SERVER_MODULES.items()}
    for server, modules in missing.items():
        if modules and any(case.server == server for case in cases):
            print(f'note: {server} skipped ({", ".join(modules)} not installed: '
                  f'pip install {" ".join(modules)})', file=sys.stderr)
    return [case for case in cases if not missing[case.server]]


# --------------------------------------------------------------------- main

def parse_args(argv):
    parser = _common.benchmark_parser(__doc__.splitlines()[0],
                                      [case.name for case in CASES])
    parser.set_defaults(rounds=0)  # filled below: 3, or 1 with --quick
    for action in parser._actions:  # the shared help gives other defaults
        if action.dest == 'rounds':
            action.help = 'rounds per case (default 3, quick 1)'
    parser.add_argument('--duration', type=int,
                        help='seconds of each measured wrk run (default 5, quick 1)')
    parser.add_argument('--connections', type=int, default=50,
                        help='wrk connections (default 50)')
    parser.add_argument('--threads', type=int, default=1, help='wrk threads (default 1)')
    parser.add_argument('--perf', metavar='DIR',
                        help='record each measured run of the servers with perf record -g '
                             'into DIR (slows them: for profiles, not for numbers)')
    args = _common.parse_benchmark_args(parser, argv, [case.name for case in CASES])
    if args.duration is None:
        args.duration = 1 if args.quick else 5
    if not args.rounds:
        args.rounds = 1 if args.quick else 3
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    if args.perf:
        Path(args.perf).mkdir(parents=True, exist_ok=True)
    # SIGTERM unwinds like Ctrl-C, so that the running server is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = _common.start_run(args, available_cases(CASES))
    if started is None:
        return 1
    _, names, skipped, selected = started
    if selected == []:
        print('no server available to measure', file=sys.stderr)
        return 1
    if two_cpus()[0] is None:
        print('note: one CPU only: server and wrk share it', file=sys.stderr)
    try:
        results = run_all(wrk, selected, names, args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    print(report_tables(results, names))
    server_cpu, load_cpu = two_cpus()
    return _common.finish_run(
        args, names, skipped, selected, results,
        packages=package_versions(), duration=args.duration,
        connections=args.connections, threads=args.threads,
        cpus={'server': server_cpu, 'wrk': load_cpu},
        wrk=subprocess.run([wrk, '--version'], capture_output=True,
                           text=True).stdout.splitlines()[:1])


if __name__ == '__main__':
    sys.exit(main())
