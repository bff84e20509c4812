"""asyncloop in one file: the asyncio code you already write, run on asyncloop.

asyncloop is an asyncio event loop written in C on top of libuv. Programs do not change
to use it; only the loop they run on does:

    with asyncio.Runner(loop_factory=asyncloop.new_event_loop) as runner:
        runner.run(main())

This demo runs a handful of everyday asyncio patterns twice, once on asyncio's default
loop and once on asyncloop, checks that both loops give the same results, and prints
how long each took:

    python demo/demo.py                 # asyncio vs asyncloop
    python demo/demo.py --loop uvloop   # asyncio vs uvloop, if it is installed

Exit status: 0 when every result matches, 1 when one differs, 2 when the loop to compare
with cannot be imported.

Every pattern returns a value that asyncio's documented behaviour fixes. Where asyncio
leaves something open (which consumer takes which item, the order in which tasks
sharing a deadline wake up), the result keeps only the part that is defined.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3  # each pattern runs this many times per loop; the best time is shown
ROW = "{:<20} {:<9} {:>10} {:>13} {:>9}"  # pattern, result, two timings, speed-up


# --------------------------------------------------------------------------- patterns


async def fetch(i):
    await asyncio.sleep(0)  # stands in for waiting on the network
    return i


async def parse(i):
    raw = await fetch(i)
    await asyncio.sleep(0)
    return raw * 2


async def store(i):
    parsed = await parse(i)
    await asyncio.sleep(0)
    return parsed + 1


async def gather_chain():
    """Thousands of three-step coroutine chains run concurrently under gather."""
    # gather returns results in the order of its arguments, whatever order they finish in.
    return await asyncio.gather(*(store(i) for i in range(10000)))


async def producer_consumer():
    """Several producers and consumers share a bounded asyncio.Queue."""
    producers, consumers, items = 4, 4, 5000
    queue = asyncio.Queue(maxsize=16)
    received = []

    async def produce(p):
        for i in range(items):
            await queue.put((p, i))

    async def consume():
        while True:
            received.append(await queue.get())
            queue.task_done()

    workers = [asyncio.create_task(consume()) for _ in range(consumers)]
    await asyncio.gather(*(produce(p) for p in range(producers)))
    await queue.join()  # every item put has been taken and marked done
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    # Which consumer gets an item is up to scheduling, but the queue is FIFO, so each
    # producer's items must come out once each and in the order they went in.
    return [[i for (p, i) in received if p == producer] for producer in range(producers)]


async def finish_at(job, started, delay):
    # Every job sleeps until the same start time plus its own delay, counted from the
    # moment all jobs are running (the event), so the finishing order depends on the
    # delays only, not on how long starting 200 tasks took.
    start = await started
    await asyncio.sleep(start + delay - asyncio.get_running_loop().time())
    return job


async def as_completed_pattern():
    """as_completed hands back results as jobs finish: groups of jobs, 5 ms apart."""
    groups, per_group = 10, 20
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    jobs = [asyncio.ensure_future(finish_at(job, started, 0.01 + 0.005 * (job % groups)))
            for job in range(groups * per_group)]
    await asyncio.sleep(0)  # let every job reach its wait for the start
    started.set_result(loop.time())
    finished = [await next_done for next_done in asyncio.as_completed(jobs)]
    # Jobs of one group share a deadline, so their order among themselves is open; the
    # groups themselves must finish in deadline order.
    return {"group of each finished job": [job % groups for job in finished],
            "jobs": sorted(finished)}


async def wait_for_pattern():
    """wait_for with a timeout: half the calls finish in time, half time out."""
    cancelled = []

    async def slow(i):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)  # wait_for cancels what it gave up waiting for
            raise

    async def attempt(i):
        if i % 2:
            try:
                return await asyncio.wait_for(slow(i), timeout=0.01)
            except TimeoutError:
                return "timed out"
        return await asyncio.wait_for(fetch(i), timeout=10)

    results = await asyncio.gather(*(attempt(i) for i in range(1000)))
    return {"results": results, "cancelled on timeout": sorted(cancelled)}


async def ticker(n, log):
    """An async generator: yields 0..n-1, pausing on the loop before each value."""
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        log.append(f"ticker({n}) closed")


async def double(i):
    await asyncio.sleep(0)
    return 2 * i


async def async_generators():
    """Async generators, async comprehensions, and how the loop closes generators."""
    log = []
    squares = [i * i async for i in ticker(5000, log)]
    odd = {i async for i in ticker(5000, log) if i % 2}
    doubled = [await double(i) for i in range(3000)]  # await inside a comprehension

    early = ticker(100, log)
    async for i in early:
        if i == 3:
            break  # leaving the loop does not close the generator...
    await early.aclose()  # ...closing it runs its finally block

    # A generator left half-way is closed by the loop itself when the program ends:
    # asyncio.run and Runner call shutdown_asyncgens() on the way out, as here.
    forgotten = ticker(100, log)
    await forgotten.__anext__()
    await asyncio.get_running_loop().shutdown_asyncgens()

    return {"sum of squares": sum(squares), "odd numbers": len(odd),
            "sum of doubled": sum(doubled), "cleanup log": list(log)}


async def square(i):
    await asyncio.sleep(0)
    return i * i


async def task_group():
    """TaskGroup: 500 groups of 10 children, every child succeeds."""
    results = []
    for _ in range(500):
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(square(i)) for i in range(10)]
        results.append([task.result() for task in tasks])
    return results


async def failing_group():
    """One TaskGroup run: a child fails, the others are cancelled, errors are grouped."""
    cancelled = []

    async def fails():
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def waits(i):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def fails_while_cancelled():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise KeyError("cleanup failed")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails())
            for i in range(5):
                group.create_task(waits(i))
            group.create_task(fails_while_cancelled())
    except ExceptionGroup as errors:
        # The failure comes first; the error raised while being cancelled comes after.
        return {"raised": type(errors).__name__, "message": errors.message,
                "exceptions": [(type(e).__name__, str(e)) for e in errors.exceptions],
                "cancelled children": sorted(cancelled)}
    return "no exception"


async def task_group_failure():
    """TaskGroup: a child fails, the others get cancelled, 300 times over."""
    outcomes = [await failing_group() for _ in range(300)]
    return {"outcome": outcomes[0], "all alike": all(o == outcomes[0] for o in outcomes)}


PATTERNS = [
    ("gather chain", gather_chain),
    ("producer/consumer", producer_consumer),
    ("as_completed", as_completed_pattern),
    ("wait_for timeout", wait_for_pattern),
    ("async generators", async_generators),
    ("task group", task_group),
    ("task group failure", task_group_failure),
]


# --------------------------------------------------------------------------- running


def import_asyncloop():
    """Import asyncloop: the installed package, else the project's source tree
    (``python demo/demo.py`` puts demo/, not the project root, on sys.path)."""
    try:
        import asyncloop
    except ImportError:
        sys.path.insert(0, str(PROJECT_ROOT))
        try:
            import asyncloop
        finally:
            sys.path.remove(str(PROJECT_ROOT))
    return asyncloop


def other_loop_factory(name):
    """The loop factory to compare with asyncio's; raises ImportError if it is missing."""
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return import_asyncloop().new_event_loop


def run_pattern(pattern, loop_factory):
    """Run one pattern in its own Runner, as a program would; return (result, seconds)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        start = time.perf_counter()
        result = runner.run(pattern())
        return result, time.perf_counter() - start


def compare(pattern, loop_factories):
    """Run pattern on each loop, interleaved; return (results, best seconds, errors)."""
    results, best, errors = {}, {}, {}
    for _ in range(REPEATS):
        for name, factory in loop_factories.items():
            if name in errors:
                continue
            try:
                result, seconds = run_pattern(pattern, factory)
            except Exception:
                errors[name] = traceback.format_exc()
                continue
            # Every repeat must give the same result, not only the first one.
            if name in results and results[name] != result:
                errors[name] = f"result changed between runs:\n{result!r}"
            results.setdefault(name, result)
            best[name] = min(seconds, best.get(name, seconds))
    return results, best, errors


def shorten(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def explain(name, results, errors):
    """Print why a pattern did not give the same result on both loops."""
    print(f"\n{name}:")
    for loop_name, error in errors.items():
        print(f"  {loop_name} failed:\n    " + error.strip().replace("\n", "\n    "))
    if len(results) == 2:
        (first, a), (second, b) = results.items()
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a.keys() | b.keys():
                if a.get(key) != b.get(key):
                    print(f"  {key!r}:\n    {first}: {shorten(a.get(key))}\n"
                          f"    {second}: {shorten(b.get(key))}")
        else:
            print(f"  {first}: {shorten(a)}\n  {second}: {shorten(b)}")


def main(argv=None):
    if sys.version_info < (3, 11):
        print("error: the demo needs Python 3.11 or newer (asyncio.Runner, TaskGroup).",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description="Run everyday asyncio patterns on asyncio "
                                     "and on asyncloop; compare results and timings.")
    parser.add_argument("--loop", choices=["asyncloop", "uvloop"], default="asyncloop",
                        help="the loop to compare with asyncio's default loop")
    args = parser.parse_args(argv)

    try:
        other = other_loop_factory(args.loop)
    except ImportError as exc:
        print(f"error: cannot import {args.loop} ({exc}).", file=sys.stderr)
        if args.loop == "asyncloop":
            print("Build and install it first (see README.md), then run the demo again.",
                  file=sys.stderr)
        return 2
    # asyncio.SelectorEventLoop is the loop asyncio itself uses by default on Unix.
    loops = {"asyncio": asyncio.SelectorEventLoop, args.loop: other}

    print(f"Python {sys.version.split()[0]}: asyncio's default loop vs {args.loop}, "
          f"best of {REPEATS} runs\n")
    header = ROW.format("pattern", "result", "asyncio ms", f"{args.loop} ms", "speed-up")
    print(header)
    print("-" * len(header))
    failures = []
    for name, pattern in PATTERNS:
        results, best, errors = compare(pattern, loops)
        same = not errors and results["asyncio"] == results[args.loop]
        if not same:
            failures.append((name, results, errors))
        verdict = "same" if same else ("ERROR" if errors else "DIFFERENT")
        times = [f"{best[n] * 1000:.1f}" if n in best else "-" for n in loops]
        speedup = f"{best['asyncio'] / best[args.loop]:.1f}x" if len(best) == 2 else "-"
        print(ROW.format(name, verdict, *times, speedup), flush=True)

    for name, results, errors in failures:
        explain(name, results, errors)
    if failures:
        print(f"\n{len(failures)} of {len(PATTERNS)} patterns differ.")
        return 1
    print(f"\nAll {len(PATTERNS)} patterns give the same results on asyncio and {args.loop}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
