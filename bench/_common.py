"""Shared pieces of the asyncloop benchmarks.

Every benchmark script in this folder compares the same event loops side by side in one
process run, so that the ratios between them mean something on a noisy machine:

- ``loop_factories()`` turns loop names into factories, skipping loops that cannot be
  imported (with the reason, so the report says why a column is missing);
- ``Benchmark`` and ``run_benchmarks()`` time each benchmark on every loop, interleaving
  the loops round after round and keeping the best round;
- ``markdown_table()``, ``print_report()`` and ``write_json()`` report the results.

A benchmark function receives a fresh event loop and a number of operations, does them,
checks that they really happened (a broken loop must not look fast), and returns the
seconds the measured part took.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# The loops every benchmark compares, in report order. asyncloop is the subject: the
# ratio columns compare it with each of the others.
LOOP_NAMES = ("asyncio", "uvloop", "asyncloop")
SUBJECT = "asyncloop"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class BenchmarkError(Exception):
    """A benchmark found that the loop did not do the work it was asked to do."""


def check(condition: bool, message: str) -> None:
    """Fail the benchmark unless condition holds (kept under ``python -O``, unlike assert)."""
    if not condition:
        raise BenchmarkError(message)


# --------------------------------------------------------------------------- loops


def import_asyncloop():
    """Import asyncloop: the installed package first, else the project's source tree.

    A script run as ``python bench/x.py`` has bench/ on sys.path, not the project root,
    so an in-place build (``setup.py build_ext --inplace``) is only found through the
    fallback.
    """
    try:
        import asyncloop
        return asyncloop
    except ImportError as installed_error:
        if str(PROJECT_ROOT) in sys.path:
            raise
        sys.path.insert(0, str(PROJECT_ROOT))
        try:
            import asyncloop
            return asyncloop
        except ImportError:
            # Leave no half-imported package behind, and report the first failure.
            sys.path.remove(str(PROJECT_ROOT))
            for name in [m for m in sys.modules if m.split(".")[0] == "asyncloop"]:
                del sys.modules[name]
            raise installed_error from None


def _asyncio_factory():
    # On Unix the default loop of asyncio is the selector loop; naming it directly keeps
    # the measurement independent of any event loop policy installed by the environment.
    return asyncio.SelectorEventLoop


def _uvloop_factory():
    import uvloop
    return uvloop.new_event_loop


def _asyncloop_factory():
    return import_asyncloop().new_event_loop


_FACTORY_GETTERS = {
    "asyncio": _asyncio_factory,
    "uvloop": _uvloop_factory,
    "asyncloop": _asyncloop_factory,
}


def loop_factories(names=LOOP_NAMES):
    """Return ``(factories, skipped)``: name -> loop factory, and name -> why it is missing.

    A loop that imports but cannot create and run a loop is skipped too, so that one
    broken loop does not stop the others from being measured.
    """
    factories, skipped = {}, {}
    for name in names:
        if name not in _FACTORY_GETTERS:
            raise ValueError(f"unknown loop {name!r}; choose from {', '.join(LOOP_NAMES)}")
        try:
            factory = _FACTORY_GETTERS[name]()
            loop = factory()
            try:
                loop.run_until_complete(asyncio.sleep(0))
            finally:
                loop.close()
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
        else:
            factories[name] = factory
    return factories, skipped


def print_skipped(skipped) -> None:
    for name, reason in skipped.items():
        print(f"note: {name} skipped ({reason})", file=sys.stderr)


def loop_versions(names) -> dict:
    """Version of each loop implementation, for the JSON output."""
    versions = {}
    for name in names:
        if name == "asyncio":
            versions[name] = platform.python_version()
        elif name == "uvloop":
            import uvloop
            versions[name] = uvloop.__version__
        else:
            versions[name] = getattr(import_asyncloop(), "__version__", "unknown")
    return versions


def parse_names(text: str | None, known) -> list:
    """Split a comma-separated option value, rejecting names that are not in known."""
    if not text:
        return list(known)
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown name(s): {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


# --------------------------------------------------------------------------- timing


@dataclass
class Benchmark:
    name: str
    func: Callable  # func(loop, n) -> seconds taken by the measured part
    n: int  # operations per round in a full run
    quick_n: int  # operations per round with --quick

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip().splitlines()[0]


def benchmark_parser(description: str, bench_names) -> argparse.ArgumentParser:
    """The command line every side-by-side benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer rounds")
    parser.add_argument("--loops", help=f"comma-separated loops (default: {','.join(LOOP_NAMES)})")
    parser.add_argument("--only", help="comma-separated benchmarks: " + ",".join(bench_names))
    parser.add_argument("--rounds", type=int, help="rounds per benchmark (default 5, quick 3)")
    parser.add_argument("--json", metavar="FILE", help="write the raw results to FILE")
    return parser


def parse_benchmark_args(parser: argparse.ArgumentParser, argv, bench_names):
    """Parses the command line of benchmark_parser(), filling the defaults."""
    args = parser.parse_args(argv)
    args.loops = parse_names(args.loops, LOOP_NAMES)
    args.only = parse_names(args.only, bench_names)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    return args


def time_coroutine(loop, coro) -> float:
    """Run coro to completion on loop and return the seconds that took."""
    start = time.perf_counter()
    loop.run_until_complete(coro)
    return time.perf_counter() - start


# A round normally takes well under a second; one that runs this long has hung, which is
# how a loop that loses a callback or a wake-up usually fails.
ROUND_TIMEOUT = 60


def _on_alarm(signum, frame):
    raise BenchmarkError(f"round did not finish within {ROUND_TIMEOUT} s")


def run_once(factory, func, n) -> float:
    """Run one benchmark round on a fresh loop, so that no round inherits another's state."""
    loop = factory()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # If even the alarm cannot interrupt the loop, dump the stacks and end the process
    # rather than hang forever.
    faulthandler.dump_traceback_later(2 * ROUND_TIMEOUT, exit=True)
    signal.alarm(ROUND_TIMEOUT)
    try:
        gc.collect()  # start every round with the same, empty garbage backlog
        return func(loop, n)
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)
        _close_quietly(loop)


def _close_quietly(loop) -> None:
    """Close loop even after a failed round, which may leave it stopped mid-run."""
    try:
        if not loop.is_closed():
            loop.close()
    except Exception as exc:
        print(f"warning: closing the loop failed: {type(exc).__name__}: {exc}",
              file=sys.stderr)


def run_benchmarks(benchmarks, factories, rounds, quick=False, progress=True) -> dict:
    """Time every benchmark on every loop and return the raw results.

    Loops are interleaved inside each round (and their order rotated from round to round)
    so that a burst of load from another process hurts every loop alike instead of
    ruining one loop's numbers; the best round of each loop is the one reported.

    Result: ``{benchmark: {loop: {"n", "times", "best", "ops_per_sec", "error"}}}``.
    """
    names = list(factories)
    results = {}
    for bench in benchmarks:
        n = bench.quick_n if quick else bench.n
        entry = {name: {"n": n, "times": [], "best": None, "ops_per_sec": None, "error": None}
                 for name in names}
        for round_no in range(rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                if entry[name]["error"]:
                    continue  # a loop that failed once is not retried
                try:
                    entry[name]["times"].append(run_once(factories[name], bench.func, n))
                except Exception as exc:
                    entry[name]["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"error: {bench.name} on {name}:", file=sys.stderr)
                    traceback.print_exc()
        for stats in entry.values():
            if stats["times"] and not stats["error"]:
                stats["best"] = min(stats["times"])
                stats["ops_per_sec"] = n / stats["best"]
        results[bench.name] = entry
        if progress:
            done = ", ".join(f"{name} {format_rate(entry[name]['ops_per_sec'])}"
                             for name in names)
            print(f"  {bench.name:<24} {done}", file=sys.stderr, flush=True)
    return results


# --------------------------------------------------------------------------- reports


def format_rate(value) -> str:
    """Operations per second, short: 1.23M, 456.7k, 89.0."""
    if value is None:
        return "error"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f}{suffix}"
    return f"{value:.1f}"


def ratio(numerator, denominator) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def ratio_pairs(names, subject=SUBJECT):
    """The (subject, other) pairs the ratio columns show.

    Without asyncloop (for instance before it builds), the last loop present stands in
    as the subject, so the table still shows how the other loops compare.
    """
    if not names:
        return []
    if subject not in names:
        subject = names[-1]
    return [(subject, other) for other in names if other != subject]


def markdown_table(header, rows) -> str:
    """Render rows (lists of strings) as a markdown table with right-aligned numbers."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)
                            for i, w in enumerate(widths)) + "|"]
    for row in rows:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rate_table(results, names) -> str:
    """Table of ops/sec per loop (higher is better) plus the subject's ratios."""
    pairs = ratio_pairs(names)
    header = (["benchmark"] + [f"{name} ops/s" for name in names]
              + [f"{a}/{b}" for a, b in pairs])
    rows = []
    for bench_name, entry in results.items():
        rates = {name: entry[name]["ops_per_sec"] for name in names}
        rows.append([bench_name] + [format_rate(rates[name]) for name in names]
                    + [ratio(rates[a], rates[b]) for a, b in pairs])
    return markdown_table(header, rows)


def environment() -> dict:
    """What the numbers were measured on, for the JSON output."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path, payload) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"raw results written to {path}", file=sys.stderr)


def start_run(args, benchmarks):
    """The loops and benchmarks one script's run measures, announced on stderr:
    ``(factories, names, skipped, selected)``, or None when no loop is available."""
    factories, skipped = loop_factories(args.loops)
    print_skipped(skipped)
    if not factories:
        print("no event loop available to measure", file=sys.stderr)
        return None
    names = list(factories)
    selected = [b for b in benchmarks if b.name in args.only]
    print(f"measuring {', '.join(names)}: {len(selected)} benchmarks x {args.rounds} rounds",
          file=sys.stderr)
    return factories, names, skipped, selected


def finish_run(args, names, skipped, selected, results, **extra):
    """Writes the JSON report when asked (``extra`` joins its fields) and returns the
    script's exit status: 1 when any benchmark failed its checks."""
    if args.json:
        write_json(args.json, {
            "environment": environment(),
            "loops": loop_versions(names),
            "skipped": skipped,
            "rounds": args.rounds,
            "quick": args.quick,
            "benchmarks": {b.name: b.doc for b in selected},
            "results": results,
            **extra,
        })
    failed = any(stats["error"] for entry in results.values() for stats in entry.values())
    return 1 if failed else 0


def rate_script_main(argv, description: str, benchmarks, unit: str) -> int:
    """The whole main() of a script whose report is one rate_table(): parse the command
    line, run, print the table of ``unit`` per second, write the JSON when asked."""
    names_known = [b.name for b in benchmarks]
    args = parse_benchmark_args(benchmark_parser(description, names_known), argv, names_known)
    plan = start_run(args, benchmarks)
    if plan is None:
        return 1
    factories, names, skipped, selected = plan
    results = run_benchmarks(selected, factories, args.rounds, quick=args.quick)
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of "
          f"{args.rounds} rounds, {unit} per second (higher is better)\n")
    print(rate_table(results, names))
    return finish_run(args, names, skipped, selected, results)


class WriteFlowProtocol(asyncio.Protocol):
    """A writer's protocol that honours pause_writing(): ``await proto.writable()`` after
    each write returns at once unless the transport has paused it."""

    def __init__(self):
        self.resumed = None

    def pause_writing(self):
        self.resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        self.resumed.set_result(None)
        self.resumed = None

    async def writable(self):
        if self.resumed is not None:
            await self.resumed
