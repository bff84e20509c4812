"""loop.sendfile() of a file over loopback TCP, MiB per second.

- sendfile: loop.sendfile(transport, file) of an n MiB file to a receiver, a separate
  process that counts the bytes with blocking recv_into() calls until EOF and sends the
  count back; the clock runs from the call until that count arrives, and the count must
  equal the file size.
- write_file: the same file sent with read() of 256 KiB blocks and transport.write(),
  waiting whenever the transport pauses the protocol: what a program does without
  loop.sendfile().

uvloop does not implement loop.sendfile(): it inherits AbstractEventLoop's, which raises
NotImplementedError whatever `fallback` says. Its sendfile cell reads "n/a" with a note
under the table; write_file still compares it.

    python bench/sendfile.py              # 100 MiB, 5 rounds
    python bench/sendfile.py --quick      # 20 MiB, 3 rounds
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from _common import (
    Benchmark, benchmark_parser, check, finish_run, format_rate, markdown_table,
    parse_benchmark_args, ratio, ratio_pairs, run_benchmarks, start_run, WriteFlowProtocol,
)

MIB = 1 << 20

# Accepts connections one after the other; for each, counts the bytes until EOF and
# answers with the count. Prints its port first.
RECEIVER = (
    "import socket\n"
    "srv = socket.create_server(('127.0.0.1', 0))\n"
    "print(srv.getsockname()[1], flush=True)\n"
    "buf = bytearray(1 << 20)\n"
    "while True:\n"
    "    conn, _ = srv.accept()\n"
    "    with conn:\n"
    "        total = 0\n"
    "        while n := conn.recv_into(buf):\n"
    "            total += n\n"
    "        conn.sendall(b'%d\\n' % total)\n"
)


class Receiver:
    """The receiving process, shared by every round of the run."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-S", "-c", RECEIVER],
                                     stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Files:
    """Temporary files of n MiB, made once per size (and so in the page cache)."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="asyncloop-sendfile-")
        self.paths = {}

    def path(self, mib):
        if mib not in self.paths:
            path = os.path.join(self.dir.name, f"{mib}.bin")
            block = os.urandom(MIB)
            with open(path, "wb") as f:
                for _ in range(mib):
                    f.write(block)
            self.paths[mib] = path
        return self.paths[mib]


RECEIVER_PROC = None
FILES = None


class _Sender(WriteFlowProtocol):
    """Collects the receiver's answer; pauses the writer when asked."""

    def __init__(self, loop):
        super().__init__()
        self.answer = b""
        self.closed = loop.create_future()

    def data_received(self, data):
        self.answer += data

    def connection_lost(self, exc):
        self.closed.set_result(exc)


def _make_bench(send):
    def bench(loop, n):
        async def main():
            transport, proto = await loop.create_connection(
                lambda: _Sender(loop), "127.0.0.1", RECEIVER_PROC.port)
            with open(FILES.path(n), "rb") as file:
                start = time.perf_counter()
                sent = await send(loop, transport, proto, file)
                transport.write_eof()
                check(await proto.closed is None, "the connection failed")
                elapsed = time.perf_counter() - start
            check(sent == n * MIB, f"sent {sent} bytes")
            check(proto.answer == b"%d\n" % (n * MIB),
                  f"the receiver counted {proto.answer!r}")
            transport.close()
            return elapsed

        return loop.run_until_complete(main())

    bench.__doc__ = send.__doc__
    return bench


async def _sendfile(loop, transport, proto, file):
    """loop.sendfile(transport, file) of n MiB to a receiving process"""
    return await loop.sendfile(transport, file, fallback=False)


async def _write_file(loop, transport, proto, file):
    """file.read(256 KiB) + transport.write() of n MiB, pausing when asked"""
    sent = 0
    while block := file.read(256 * 1024):
        transport.write(block)
        sent += len(block)
        await proto.writable()
    return sent


BENCHMARKS = [
    Benchmark("sendfile", _make_bench(_sendfile), n=100, quick_n=20),
    Benchmark("write_file", _make_bench(_write_file), n=100, quick_n=20),
]


def sendfile_support(factory):
    """None if the loop implements loop.sendfile(), else why not."""
    loop = factory()
    try:
        loop.run_until_complete(loop.sendfile(None, None))
    except NotImplementedError:
        return "loop.sendfile() raises NotImplementedError"
    except Exception:
        return None     # got past the check for an implementation
    finally:
        loop.close()
    return None


def mib_table(results, names, missing):
    """rate_table() of _common, with "n/a" where a loop lacks the method measured."""
    pairs = ratio_pairs(names)
    header = (["benchmark"] + [f"{name} MiB/s" for name in names]
              + [f"{a}/{b}" for a, b in pairs])
    rows = []
    for bench_name, entry in results.items():
        rates = {name: entry.get(name, {}).get("ops_per_sec") for name in names}
        cells = ["n/a" if (bench_name, name) in missing else format_rate(rates[name])
                 for name in names]
        rows.append([bench_name] + cells + [ratio(rates[a], rates[b]) for a, b in pairs])
    return markdown_table(header, rows)


def parse_args(argv):
    bench_names = [b.name for b in BENCHMARKS]
    parser = benchmark_parser("sendfile benchmarks: asyncio vs uvloop vs asyncloop.",
                              bench_names)
    return parse_benchmark_args(parser, argv, bench_names)


def run(selected, factories, args):
    """Results per benchmark; loops without loop.sendfile() are left out of sendfile."""
    unsupported = {name: why for name, factory in factories.items()
                   if (why := sendfile_support(factory))}
    results, missing = {}, set()
    for bench in selected:
        chosen = factories
        if bench.name == "sendfile":
            chosen = {k: v for k, v in factories.items() if k not in unsupported}
            missing = {("sendfile", name) for name in unsupported}
        results.update(run_benchmarks([bench], chosen, args.rounds, quick=args.quick))
    return results, missing, unsupported


def main(argv=None):
    global RECEIVER_PROC, FILES
    args = parse_args(argv)
    plan = start_run(args, BENCHMARKS)
    if plan is None:
        return 1
    factories, names, skipped, selected = plan
    RECEIVER_PROC, FILES = Receiver(), Files()
    try:
        results, missing, unsupported = run(selected, factories, args)
    finally:
        RECEIVER_PROC.close()
        FILES.dir.cleanup()
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of "
          f"{args.rounds} rounds, MiB per second over loopback TCP (higher is better)\n")
    print(mib_table(results, names, missing))
    if any(bench == "sendfile" for bench, _ in missing):
        print()
        for name, why in unsupported.items():
            print(f"- {name}: {why}; not measured, no fallback either.")
    return finish_run(args, names, skipped, selected, results, unsupported=unsupported)


if __name__ == "__main__":
    sys.exit(main())
