"""Subprocess benchmarks: spawn rate and pipe throughput from a child.

Each benchmark runs on asyncio's default loop, uvloop and asyncloop in the same process,
round after round with the loops interleaved, and the best round of each loop is kept.

    python bench/proc_spawn.py                  # full run
    python bench/proc_spawn.py --quick          # smaller sizes, fewer rounds
    python bench/proc_spawn.py --only spawn_true,pipe_protocol
    python bench/proc_spawn.py --json results.json

The spawn benchmarks count children per second. pipe_protocol and pipe_streams count
MiB per second read from the child's stdout, timed from the arrival of the child's first
byte to EOF: the child is a Python process whose start-up (some 20 ms, a large part of
a 100 MiB run) is what spawn_* measure, not the pipe. pipe_small_writes counts the
child's 4 KiB writes per second, start-up included. Every benchmark checks the work was
done: exit statuses, byte counts.

uvloop gives a child sockets (socketpairs) as stdin/stdout/stderr, where asyncio and
asyncloop give pipes (so a child can open /dev/stdin); a socketpair moves bulk data
faster than a pipe, which the pipe_* rows include. After the table, the same child read
with blocking os.read() calls and no event loop, timed the same way, gives the ceiling
of each kind of descriptor: a pipe of the default 64 KiB (asyncio's), a pipe of the size
asyncloop enlarges a busy one to, and a socketpair (uvloop's); each loop's pipe_protocol
is shown as a share of the ceiling of the descriptor it reads.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import sys
import time

from _common import (
    Benchmark, benchmark_parser, check, finish_run, import_asyncloop, markdown_table,
    parse_benchmark_args, rate_table, run_benchmarks, start_run, time_coroutine,
)

PIPE = asyncio.subprocess.PIPE
TRUE = shutil.which("true") or "/bin/true"
MIB = 1 << 20

# A child that writes `sys.argv[1]` MiB to stdout in 1 MiB writes, then exits. It does
# almost no work of its own, so the reading loop sets the pace.
WRITER = (
    "import os, sys\n"
    "block = bytes(1 << 20)\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    view = memoryview(block)\n"
    "    while view:\n"
    "        view = view[os.write(1, view):]\n"
)


# --------------------------------------------------------------------------- spawning


async def _run_true():
    proc = await asyncio.create_subprocess_exec(TRUE, stdin=PIPE, stdout=PIPE,
                                                stderr=PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out, err


def bench_spawn_true(loop, n):
    """Start /bin/true with three pipes and wait for it, one child after the other."""
    async def main():
        for _ in range(n):
            result = await _run_true()
            check(result == (0, b"", b""), f"unexpected result {result!r}")

    return time_coroutine(loop, main())


def bench_spawn_true_concurrent(loop, n):
    """The same, 32 children running at once."""
    async def main():
        for start in range(0, n, 32):
            batch = await asyncio.gather(*(_run_true()
                                           for _ in range(min(32, n - start))))
            check(all(r == (0, b"", b"") for r in batch), "a child failed")

    return time_coroutine(loop, main())


# --------------------------------------------------------------------------- pipes


class _CountingProtocol(asyncio.SubprocessProtocol):
    """Counts the bytes of stdout; done when the transport is finished."""

    def __init__(self, done):
        self.done = done
        self.received = 0
        self.clock = _FirstByteClock()

    def pipe_data_received(self, fd, data):
        self.clock.got(len(data))
        self.received += len(data)

    def pipe_connection_lost(self, fd, exc):
        self.clock.stop()

    def connection_lost(self, exc):
        self.done.set_result(None)


class _FirstByteClock:
    """Times a transfer from the arrival of its first chunk to the end.

    seconds() gives the time the whole transfer takes at the rate measured
    after the first chunk (which arrived at the start of the clock)."""

    def __init__(self):
        self.start = self.end = None
        self.first = 0
        self.total = 0

    def got(self, size):
        if self.start is None:
            self.start = time.perf_counter()
            self.first = size
        self.total += size

    def stop(self):
        self.end = time.perf_counter()

    def seconds(self):
        check(self.start is not None and self.end is not None, "no data, or no end")
        elapsed = self.end - self.start
        return elapsed * self.total / max(1, self.total - self.first)


def _writer_args(mib):
    return [sys.executable, "-S", "-c", WRITER, str(mib)]


def bench_pipe_protocol(loop, n):
    """n MiB from a child's stdout to a SubprocessProtocol (subprocess_exec)."""
    async def main():
        done = loop.create_future()
        transport, proto = await loop.subprocess_exec(
            lambda: _CountingProtocol(done), *_writer_args(n), stdin=None,
            stderr=None)
        await done
        seconds = proto.clock.seconds()
        check(transport.get_returncode() == 0, "the writer failed")
        check(proto.received == n * MIB, f"read {proto.received} bytes")
        transport.close()
        return seconds

    return loop.run_until_complete(main())


def bench_pipe_streams(loop, n):
    """n MiB from a child's stdout read with Process.stdout.read() in 256 KiB pieces."""
    async def main():
        proc = await asyncio.create_subprocess_exec(*_writer_args(n), stdout=PIPE)
        clock = _FirstByteClock()
        while True:
            data = await proc.stdout.read(256 * 1024)
            if not data:
                break
            clock.got(len(data))
        clock.stop()
        seconds = clock.seconds()
        check(await proc.wait() == 0, "the writer failed")
        check(clock.total == n * MIB, f"read {clock.total} bytes")
        return seconds

    return loop.run_until_complete(main())


# A child making n writes of 4 KiB: the reader sees many small reads, so the cost per
# read of the loop and its transport shows, not the copying.
SMALL_WRITER = (
    "import os, sys\n"
    "block = b'x' * 4096\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    os.write(1, block)\n"
)


def bench_pipe_small_writes(loop, n):
    """n writes of 4 KiB by a child, counted by a SubprocessProtocol."""
    async def main():
        done = loop.create_future()
        transport, proto = await loop.subprocess_exec(
            lambda: _CountingProtocol(done), sys.executable, "-S", "-c", SMALL_WRITER,
            str(n), stdin=None, stderr=None)
        await done
        check(transport.get_returncode() == 0, "the writer failed")
        check(proto.received == n * 4096, f"read {proto.received} bytes")
        transport.close()

    return time_coroutine(loop, main())


def _blocking_read_seconds(mib, read_fd, child_fd):
    """Seconds for the writer child on child_fd, read by blocking os.read()
    calls on read_fd, timed from the first byte as the pipe_* rows."""
    import subprocess
    proc = subprocess.Popen(_writer_args(mib), stdout=child_fd)
    os.close(child_fd)
    clock = _FirstByteClock()
    try:
        while data := os.read(read_fd, 256 * 1024):
            clock.got(len(data))
        clock.stop()
        seconds = clock.seconds()
    finally:
        os.close(read_fd)
    check(proc.wait() == 0 and clock.total == mib * MIB, "the writer failed")
    return seconds


def _pipe_of(size):
    def make():
        read_fd, write_fd = os.pipe()
        if size:
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, size)
        return read_fd, write_fd
    return make


def _socketpair():
    ours, child = socket.socketpair()
    return ours.detach(), child.detach()


def grown_pipe_size():
    """The capacity asyncloop gives a busy pipe (512 KiB without asyncloop)."""
    try:
        return import_asyncloop()._pipes._GROWN_CAPACITY
    except ImportError:
        return 512 * 1024


def reference_kinds():
    """(loop whose child stdout is of this kind, label, maker of the descriptors)."""
    grown = grown_pipe_size()
    return [
        ("asyncio", "pipe, 64 KiB (asyncio's child stdout)", _pipe_of(0)),
        ("asyncloop", f"pipe, {grown >> 10} KiB (asyncloop's, once enlarged)",
         _pipe_of(grown)),
        ("uvloop", "socketpair (uvloop's child stdout)", _socketpair),
    ]


def reference_rates(mib, rounds):
    """{(loop, label): MiB/s} of blocking reads, no event loop, per kind of
    descriptor: the best of rounds, the kinds interleaved like the loops."""
    best = {}
    for _ in range(rounds):
        for loop_name, label, make in reference_kinds():
            seconds = _blocking_read_seconds(mib, *make())
            key = (loop_name, label)
            best[key] = min(best.get(key, seconds), seconds)
    return {key: mib / seconds for key, seconds in best.items()}


def reference_table(references, results):
    """The ceilings, and the pipe_protocol rate of the loop reading each
    kind of descriptor as a share of that ceiling."""
    measured = results.get("pipe_protocol", {})
    rows = []
    for (loop_name, label), rate in references.items():
        loop_rate = measured.get(loop_name, {}).get("ops_per_sec")
        share = f"{loop_name} {100 * loop_rate / rate:.0f}%" if loop_rate else "-"
        rows.append([label, f"{rate:.0f}", share])
    return markdown_table(["blocking reader, no event loop", "MiB/s",
                           "pipe_protocol / this ceiling"], rows)


BENCHMARKS = [
    Benchmark("spawn_true", bench_spawn_true, n=500, quick_n=100),
    Benchmark("spawn_true_concurrent", bench_spawn_true_concurrent, n=640, quick_n=128),
    Benchmark("pipe_protocol", bench_pipe_protocol, n=100, quick_n=50),
    Benchmark("pipe_streams", bench_pipe_streams, n=100, quick_n=50),
    Benchmark("pipe_small_writes", bench_pipe_small_writes, n=100_000, quick_n=20_000),
]


# --------------------------------------------------------------------------- main


def parse_args(argv):
    bench_names = [b.name for b in BENCHMARKS]
    parser = benchmark_parser('Subprocess benchmarks: asyncio vs uvloop vs asyncloop.', bench_names)
    return parse_benchmark_args(parser, argv, bench_names)


def main(argv=None):
    args = parse_args(argv)
    plan = start_run(args, BENCHMARKS)
    if plan is None:
        return 1
    factories, names, skipped, selected = plan
    started = time.perf_counter()
    results = run_benchmarks(selected, factories, args.rounds, quick=args.quick)
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of "
          f"{args.rounds} rounds (higher is better): spawn_* in children per second, "
          f"pipe_protocol/pipe_streams in MiB per second, pipe_small_writes in "
          f"4 KiB writes per second\n")
    print(rate_table(results, names))
    pipe_benchmarks = [b for b in selected if b.name in ("pipe_protocol", "pipe_streams")]
    if pipe_benchmarks:
        mib = pipe_benchmarks[0].quick_n if args.quick else pipe_benchmarks[0].n
        references = reference_rates(mib, args.rounds)
        print(f"\nCeilings: the same {mib} MiB child read by blocking os.read() calls of "
              f"256 KiB, timed from the first byte, best of {args.rounds}\n")
        print(reference_table(references, results))
    print(f"\ntotal time {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return finish_run(args, names, skipped, selected, results)


if __name__ == "__main__":
    sys.exit(main())
