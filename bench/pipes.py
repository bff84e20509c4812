"""Pipe throughput of connect_read_pipe and connect_write_pipe (no subprocess_exec).

- read_pipe: a child process writes n MiB in 1 MiB blocking writes into an os.pipe();
  the loop reads it through connect_read_pipe with a Protocol counting the bytes.
- write_pipe: the loop floods an os.pipe() through connect_write_pipe with 1 MiB
  transport.write() calls, pausing when the transport asks (pause_writing); a child
  drains the pipe with blocking 256 KiB reads and reports the bytes it counted.

The child's Python start-up is not timed: it announces itself with one byte, and the
clock starts when the parent, having seen that byte, tells it to go (read_pipe) or starts
writing (write_pipe). The clock stops at EOF (read_pipe) or when the child's count
arrives (write_pipe). Both check the byte counts.

    python bench/pipes.py              # full run
    python bench/pipes.py --quick      # a short one
    python bench/pipes.py --only read_pipe --loops uvloop,asyncloop
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from _common import Benchmark, WriteFlowProtocol, check, rate_script_main

MIB = 1 << 20

# Writes b"R" on fd 1, waits for one byte on fd 0, then writes argv[1] MiB on fd 1.
WRITER = (
    "import os, sys\n"
    "os.write(1, b'R')\n"
    "os.read(0, 1)\n"
    "block = bytes(1 << 20)\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    view = memoryview(block)\n"
    "    while view:\n"
    "        view = view[os.write(1, view):]\n"
)

# Writes b"R" on fd 1, reads fd 0 until EOF, then writes the byte count on fd 1.
DRAINER = (
    "import os\n"
    "os.write(1, b'R')\n"
    "total = 0\n"
    "while True:\n"
    "    data = os.read(0, 256 * 1024)\n"
    "    if not data:\n"
    "        break\n"
    "    total += len(data)\n"
    "os.write(1, str(total).encode())\n"
)


def _start_child(code, mib, stdin, stdout):
    """Start a child running code on the given descriptors."""
    return subprocess.Popen([sys.executable, "-S", "-c", code, str(mib)],
                            stdin=stdin, stdout=stdout)


def _read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        check(chunk != b"", "the child ended early")
        data += chunk
    return data


class _Counter(asyncio.Protocol):
    def __init__(self, done):
        self.done = done
        self.received = 0

    def data_received(self, data):
        self.received += len(data)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(time.perf_counter())


def bench_read_pipe(loop, n):
    """n MiB from a child into connect_read_pipe, counted by a Protocol"""
    rfd, wfd = os.pipe()
    go_r, go_w = os.pipe()
    proc = _start_child(WRITER, n, stdin=go_r, stdout=wfd)
    os.close(wfd)
    os.close(go_r)
    try:
        check(_read_exactly(rfd, 1) == b"R", "the writer did not start")

        async def main():
            done = loop.create_future()
            transport, proto = await loop.connect_read_pipe(
                lambda: _Counter(done), os.fdopen(rfd, "rb", buffering=0))
            start = time.perf_counter()
            os.write(go_w, b"g")
            end = await done
            check(proto.received == n * MIB, f"read {proto.received} bytes")
            return end - start

        return loop.run_until_complete(main())
    finally:
        os.close(go_w)
        check(proc.wait() == 0, "the writer failed")


class _Flooder(WriteFlowProtocol):
    def __init__(self, done):
        super().__init__()
        self.done = done

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


def bench_write_pipe(loop, n):
    """n MiB of 1 MiB transport.write() calls into connect_write_pipe, drained by a child"""
    rfd, wfd = os.pipe()
    result_r, result_w = os.pipe()
    proc = _start_child(DRAINER, n, stdin=rfd, stdout=result_w)
    os.close(rfd)
    os.close(result_w)
    try:
        check(_read_exactly(result_r, 1) == b"R", "the drainer did not start")

        async def main():
            done = loop.create_future()
            transport, proto = await loop.connect_write_pipe(
                lambda: _Flooder(done), os.fdopen(wfd, "wb", buffering=0))
            block = bytes(MIB)
            start = time.perf_counter()
            for _ in range(n):
                transport.write(block)
                await proto.writable()
            transport.close()
            check(await done is None, "the pipe was lost")
            return start

        start = loop.run_until_complete(main())
        count = int(os.read(result_r, 64))   # blocks until the child has read EOF
        elapsed = time.perf_counter() - start
        check(count == n * MIB, f"the child read {count} bytes")
        return elapsed
    finally:
        os.close(result_r)
        check(proc.wait() == 0, "the drainer failed")


BENCHMARKS = [
    Benchmark("read_pipe", bench_read_pipe, n=200, quick_n=50),
    Benchmark("write_pipe", bench_write_pipe, n=200, quick_n=50),
]


def main(argv=None):
    return rate_script_main(argv, "Pipe transport benchmarks: asyncio vs uvloop vs asyncloop.",
                            BENCHMARKS, "MiB")


if __name__ == "__main__":
    sys.exit(main())
