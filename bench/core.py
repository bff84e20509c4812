"""Microbenchmarks of the core event loop: callbacks, timers, tasks, futures, queues.

Each benchmark runs on asyncio's default loop, uvloop and asyncloop in the same process,
round after round with the loops interleaved, and the best round of each loop is kept.
The report is a markdown table of operations per second with asyncloop's ratios to the
other loops, followed by the memory that one million pending timers take on each loop.

    python bench/core.py                      # full run, a few minutes
    python bench/core.py --quick              # under a minute
    python bench/core.py --loops asyncio,uvloop --only call_soon,timers_fire
    python bench/core.py --json results.json  # also write the raw numbers

These are measurements, not tests: nothing here fails because a loop is slow. Each
benchmark checks that the loop did the work, so a broken loop fails instead of looking fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import random
import subprocess
import sys
import time

from _common import (
    Benchmark, benchmark_parser, check, finish_run, loop_factories, markdown_table,
    parse_benchmark_args, rate_table, ratio, ratio_pairs, run_benchmarks, start_run,
    time_coroutine,
)

# --------------------------------------------------------------------------- callbacks


def bench_call_soon(loop, n):
    """call_soon throughput from running callbacks, as programs call it: each
    batch callback schedules 1000 callbacks and the next batch."""
    # next() on an itertools counter is a callback with no Python frame, so the loop's own
    # cost dominates, and the counter proves every callback ran.
    counter = itertools.count()

    def batch(left):
        call_soon = loop.call_soon
        for _ in range(min(left, 1000)):
            call_soon(next, counter)
        if left > 1000:
            call_soon(batch, left - 1000)
        else:
            call_soon(loop.stop)

    start = time.perf_counter()
    loop.call_soon(batch, n)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    check(next(counter) == n, "not every callback ran")
    return elapsed


def bench_call_soon_prerun(loop, n):
    """call_soon before the loop runs: schedule n callbacks, then run them all."""
    # With n callbacks pending at once, the garbage collector's walks over them
    # dominate on every loop.
    counter = itertools.count()
    start = time.perf_counter()
    for _ in range(n):
        loop.call_soon(next, counter)
    loop.call_soon(loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    check(next(counter) == n, "not every callback ran")
    return elapsed


def bench_call_soon_chain(loop, n):
    """Loop iteration cost: each callback schedules the next one, n in a row."""
    counter = itertools.count(1)

    def step():
        if next(counter) < n:
            loop.call_soon(step)
        else:
            loop.stop()

    start = time.perf_counter()
    loop.call_soon(step)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    check(next(counter) == n + 1, "the chain of callbacks broke")
    return elapsed


# --------------------------------------------------------------------------- timers


def bench_timer_cancel(loop, n):
    """call_later + cancel churn: n timers scheduled and cancelled while the loop runs."""
    # One timer in a hundred is kept: those must fire, which proves that the loop really
    # schedules timers, and no cancelled one may.
    fired = []

    async def churn():
        start = time.perf_counter()
        for i in range(n):
            handle = loop.call_later(0.001, fired.append, i)
            if i % 100:
                handle.cancel()
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the loop iterate, as a real program would
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.005)  # by now every timer is due
        check(sorted(fired) == list(range(0, n, 100)),
              "cancelled timers fired, or kept ones did not")
        return elapsed

    return loop.run_until_complete(churn())


def bench_timers_fire(loop, n):
    """Many timers firing: n timers with distinct delays up to 5 ms, in shuffled order."""
    delays = [i * 0.005 / n for i in range(n)]
    random.Random(n).shuffle(delays)  # shuffled, so the timer queue does real ordering work
    fired = []
    done = loop.create_future()

    def fire(i):
        fired.append(i)
        if len(fired) == n:
            done.set_result(None)

    async def schedule_and_wait():
        for i, delay in enumerate(delays):
            loop.call_later(delay, fire, i)
        await done

    elapsed = time_coroutine(loop, schedule_and_wait())
    # Order is not checked: loops with millisecond timers may reorder close deadlines.
    check(sorted(fired) == list(range(n)), "not every timer fired exactly once")
    return elapsed


# --------------------------------------------------------------------------- tasks


async def _one():
    return 1


def bench_create_task(loop, n):
    """create_task + complete: n trivial tasks, created in batches of 1000."""
    async def spawn():
        total = 0
        for _ in range(n // 1000):
            tasks = [loop.create_task(_one()) for _ in range(1000)]
            for task in tasks:
                total += await task
        return total

    start = time.perf_counter()
    total = loop.run_until_complete(spawn())
    elapsed = time.perf_counter() - start
    check(total == n // 1000 * 1000, "tasks did not all return their result")
    return elapsed


def bench_task_await(loop, n):
    """Task await: one task awaits n short-lived child tasks, one after the other."""
    async def parent():
        total = 0
        for _ in range(n):
            total += await loop.create_task(_one())
        return total

    start = time.perf_counter()
    total = loop.run_until_complete(parent())
    elapsed = time.perf_counter() - start
    check(total == n, "child tasks did not all return their result")
    return elapsed


def bench_future_done(loop, n):
    """Await done futures: create_future, set_result, await, n times, never suspending."""
    # Creating a future calls back into the loop (get_debug), so even a future that is
    # done before it is awaited measures the loop's side of future creation.
    async def awaiter():
        total = 0
        for i in range(n):
            future = loop.create_future()
            future.set_result(i)
            total += await future
        return total

    start = time.perf_counter()
    total = loop.run_until_complete(awaiter())
    elapsed = time.perf_counter() - start
    check(total == n * (n - 1) // 2, "futures did not give back their results")
    return elapsed


class _Mailbox:
    """One-slot channel made of a future that its reader renews after each message."""

    def __init__(self, loop):
        self._loop = loop
        self._future = loop.create_future()

    def send(self, value):
        self._future.set_result(value)

    async def receive(self):
        value = await self._future
        self._future = self._loop.create_future()
        return value


def bench_future_ping_pong(loop, n):
    """Future ping-pong: two tasks pass a counter back and forth through futures, n hops."""
    async def player(inbox, outbox):
        while True:
            value = await inbox.receive()
            if value >= n:
                outbox.send(value)  # let the other player see the end too
                return value
            outbox.send(value + 1)

    async def game():
        left, right = _Mailbox(loop), _Mailbox(loop)
        players = [loop.create_task(player(left, right)),
                   loop.create_task(player(right, left))]
        left.send(0)
        return await asyncio.gather(*players)

    start = time.perf_counter()
    finals = loop.run_until_complete(game())
    elapsed = time.perf_counter() - start
    check(finals == [n, n], f"the counter ended at {finals}, not {n}")
    return elapsed


def _bench_sleep0(loop, n, tasks):
    """n sleep(0) calls in total, shared among the given number of tasks."""
    per_task = n // tasks
    counter = itertools.count()

    async def sleeper():
        for _ in range(per_task):
            await asyncio.sleep(0)
            next(counter)

    async def main():
        await asyncio.gather(*(sleeper() for _ in range(tasks)))

    elapsed = time_coroutine(loop, main())
    check(next(counter) == per_task * tasks, "not every sleep(0) returned")
    return elapsed


def bench_sleep0_1(loop, n):
    """asyncio.sleep(0) in one task: a full loop round trip per call."""
    return _bench_sleep0(loop, n, 1)


def bench_sleep0_100(loop, n):
    """asyncio.sleep(0) in 100 tasks at once: a long ready queue every iteration."""
    return _bench_sleep0(loop, n, 100)


def _bench_queue(loop, n, maxsize):
    """One producer puts n items into an asyncio.Queue, one consumer gets them."""
    async def main():
        queue = asyncio.Queue(maxsize)

        async def producer():
            for i in range(n):
                await queue.put(i)

        async def consumer():
            total = 0
            for _ in range(n):
                total += await queue.get()
            return total

        _, total = await asyncio.gather(producer(), consumer())
        return total

    start = time.perf_counter()
    total = loop.run_until_complete(main())
    elapsed = time.perf_counter() - start
    check(total == n * (n - 1) // 2, "items were lost or duplicated in the queue")
    return elapsed


def bench_queue_1(loop, n):
    """asyncio.Queue(maxsize=1): producer and consumer switch on every item."""
    return _bench_queue(loop, n, 1)


def bench_queue_256(loop, n):
    """asyncio.Queue(maxsize=256): producer and consumer work in bursts."""
    return _bench_queue(loop, n, 256)


# Sizes give each round roughly 0.05-0.3 s on the default loop of a typical machine.
BENCHMARKS = [
    Benchmark("call_soon", bench_call_soon, 500_000, 200_000),
    Benchmark("call_soon_prerun", bench_call_soon_prerun, 500_000, 200_000),
    Benchmark("call_soon_chain", bench_call_soon_chain, 300_000, 120_000),
    Benchmark("timer_cancel", bench_timer_cancel, 200_000, 80_000),
    Benchmark("timers_fire", bench_timers_fire, 100_000, 40_000),
    Benchmark("create_task", bench_create_task, 100_000, 40_000),
    Benchmark("task_await", bench_task_await, 50_000, 20_000),
    Benchmark("future_done", bench_future_done, 1_000_000, 400_000),
    Benchmark("future_ping_pong", bench_future_ping_pong, 100_000, 40_000),
    Benchmark("sleep0_1_task", bench_sleep0_1, 100_000, 40_000),
    Benchmark("sleep0_100_tasks", bench_sleep0_100, 200_000, 80_000),
    Benchmark("queue_maxsize_1", bench_queue_1, 50_000, 20_000),
    Benchmark("queue_maxsize_256", bench_queue_256, 100_000, 40_000),
]

# --------------------------------------------------------------------------- memory

MEMORY_BENCHMARK = "timers_memory"
MEMORY_TIMERS = 1_000_000


def _rss_bytes():
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def memory_child(loop_name, count):
    """In a fresh process: print the RSS growth from `count` pending call_later timers."""
    factories, skipped = loop_factories([loop_name])
    if skipped:
        raise SystemExit(skipped[loop_name])
    loop = factories[loop_name]()

    def callback():
        pass

    async def schedule():
        gc.collect()
        before = _rss_bytes()
        references_before = sys.getrefcount(callback)
        for _ in range(count):
            loop.call_later(3600, callback)
        gc.collect()
        growth = _rss_bytes() - before
        # The handles were dropped here: only the loop keeps them, and each one holds a
        # reference to the callback. Counting those references proves no timer was lost.
        kept = sys.getrefcount(callback) - references_before
        check(kept == count, f"the loop kept {kept} of {count} timers")
        return growth

    growth = loop.run_until_complete(schedule())
    print(growth)
    # Exit without closing the loop: tearing down a million timers only costs time here.
    sys.stdout.flush()
    os._exit(0)


def measure_memory(names, count=MEMORY_TIMERS):
    """RSS growth in MiB per loop, each measured in its own fresh interpreter."""
    results = {}
    for name in names:
        command = [sys.executable, os.path.abspath(__file__),
                   "--memory-child", name, "--memory-count", str(count)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            results[name] = {"timers": count, "rss_growth_bytes": None, "error": error}
            print(f"error: {MEMORY_BENCHMARK} on {name}: {error}", file=sys.stderr)
            continue
        growth = int(done.stdout.split()[-1])
        results[name] = {"timers": count, "rss_growth_bytes": growth, "error": None}
        print(f"  {MEMORY_BENCHMARK:<24} {name} {growth / 2**20:.1f} MiB",
              file=sys.stderr, flush=True)
    return results


def memory_table(results, names):
    """Table of MiB per loop (lower is better) plus the subject's ratios."""
    pairs = ratio_pairs(names)
    mib = {name: (results[name]["rss_growth_bytes"] / 2**20
                  if results[name]["rss_growth_bytes"] is not None else None)
           for name in names}
    count = next(iter(results.values()))["timers"]
    header = (["benchmark"] + [f"{name} MiB" for name in names]
              + [f"{a}/{b}" for a, b in pairs])
    row = ([f"{count:,} pending timers"]
           + [f"{mib[name]:.1f}" if mib[name] is not None else "error" for name in names]
           + [ratio(mib[a], mib[b]) for a, b in pairs])
    return markdown_table(header, [row])


# --------------------------------------------------------------------------- main


def parse_args(argv):
    bench_names = [b.name for b in BENCHMARKS] + [MEMORY_BENCHMARK]
    parser = benchmark_parser('Core event loop microbenchmarks: asyncio vs uvloop vs asyncloop.', bench_names)
    # Used internally: measure_memory() starts this script again in a fresh process.
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--memory-count", type=int, default=MEMORY_TIMERS, help=argparse.SUPPRESS)
    return parse_benchmark_args(parser, argv, bench_names)


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_count)
        return 0

    plan = start_run(args, BENCHMARKS)
    if plan is None:
        return 1
    factories, names, skipped, selected = plan

    started = time.perf_counter()
    results = run_benchmarks(selected, factories, args.rounds, quick=args.quick)
    memory = measure_memory(names) if MEMORY_BENCHMARK in args.only else None

    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"best of {args.rounds} rounds, operations per second (higher is better)\n")
    if results:
        print(rate_table(results, names))
    if memory:
        print("\nMemory: RSS growth of a fresh process after call_later(3600, f) "
              "(lower is better)\n")
        print(memory_table(memory, names))
    print(f"\ntotal time {time.perf_counter() - started:.0f} s", file=sys.stderr)

    status = finish_run(args, names, skipped, selected, results, memory=memory)
    return status or int(any(stats["error"] for stats in (memory or {}).values()))


if __name__ == "__main__":
    sys.exit(main())
