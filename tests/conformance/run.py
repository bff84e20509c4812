"""Run CPython's asyncio test suites with a chosen event loop wired in.

    python tests/conformance/run.py --loop asyncloop
    python tests/conformance/run.py --loop asyncio --suites test_tasks
    python tests/conformance/run.py --loop uvloop --json out.json

Each suite runs in its own interpreter (worker.py) so that a crash or a hang
is reported against the suite and the test that caused it; the suite then
resumes after that test.  The exit status is 0 only if no test failed
unexpectedly, no worker crashed, and at least one test ran on the loop.
"""

import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import expected_failures
import report
import suites

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
# A suite that keeps crashing is abandoned after this many restarts.
MAX_RESTARTS = 25


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default="asyncloop",
                        help="asyncloop (default), asyncio or uvloop")
    parser.add_argument("--suites", default=",".join(suites.DEFAULT),
                        help="comma-separated suite names, or 'all' "
                             "(see --list)")
    parser.add_argument("--list", action="store_true",
                        help="list the suites and exit")
    parser.add_argument("--json", metavar="FILE",
                        help="also write every result to FILE")
    # Above the 30 s that the suites' own waits allow (support.SHORT_TIMEOUT),
    # so those report a clean failure first; a real hang costs 40 s.
    parser.add_argument("--timeout", type=float, default=40.0,
                        help="seconds a single test may take (default 40)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="suites run in parallel (default: CPU count)")
    parser.add_argument("-k", "--match", action="append", default=[],
                        metavar="PATTERN",
                        help="only run test ids matching this fnmatch "
                             "pattern, e.g. '*.test_sleep*' (repeatable)")
    parser.add_argument("--logs", metavar="DIR",
                        help="keep each worker's output in DIR")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print full tracebacks of failures")
    args = parser.parse_args(argv)
    args.suites = _suite_names(parser, args.suites)
    return args


def _suite_names(parser, text):
    if text == "all":
        return list(suites.SUITES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if suites.get(name) is None]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")
    return names


class SuiteRun:
    """Runs one suite in worker processes until it is done or given up."""

    def __init__(self, name, args, workdir):
        self.name = name
        self.args = args
        self.results_path = os.path.join(workdir, f"{name}.jsonl")
        self.exclude_path = os.path.join(workdir, f"{name}.exclude")
        self.log_path = os.path.join(workdir, f"{name}.log")
        # Tests create scratch files in the current directory (as under
        # regrtest): give them one of their own, outside the source tree.
        self.cwd = os.path.join(workdir, f"{name}.cwd")
        self.tests = {}      # test id -> end record, in the order they ended
        self.problems = []   # suite-level trouble: {"detail", "traceback"}
        self.loop_version = None
        self.seconds = 0.0
        self._offset = 0     # how much of the results file was read

    def run(self):
        started = time.monotonic()
        for path in (self.results_path, self.log_path):
            if os.path.exists(path):  # left over in a reused --logs dir
                os.remove(path)
        os.makedirs(self.cwd, exist_ok=True)
        for _ in range(MAX_RESTARTS + 1):
            log_start = self._log_size()
            returncode = self._start_worker()
            if not self._read_attempt(returncode, log_start):
                break
        else:
            self._problem(f"gave up after {MAX_RESTARTS} restarts; "
                          "later tests not run")
        self.seconds = time.monotonic() - started
        return self

    def _start_worker(self):
        with open(self.exclude_path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.tests))
        command = [sys.executable, WORKER, "--loop", self.args.loop,
                   "--suite", self.name, "--results", self.results_path,
                   "--exclude", self.exclude_path,
                   "--timeout", str(self.args.timeout)]
        for pattern in self.args.match:
            command += ["--match", pattern]
        with open(self.log_path, "ab") as log:
            return subprocess.run(command, cwd=self.cwd,
                                  stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT).returncode

    def _read_attempt(self, returncode, log_start):
        """Take in one worker's records; True if the suite must resume."""
        running, done, ended = None, False, 0
        for record in self._new_records():
            event = record.pop("event")
            if event == "ready":
                self.loop_version = record["loop_version"]
            elif event == "start":
                running = record["id"]
            elif event == "end":
                self.tests[record["id"]] = record
                running, ended = None, ended + 1
            elif event == "done":
                done = True
            elif event == "setup_error":
                self._problem(f"could not set up: {record['detail']}",
                              record["traceback"])
                return False
        crash = self._describe_exit(returncode, log_start)
        if done:
            if returncode != 0:
                self._problem(f"after the last test: {crash}",
                              self._log_tail(log_start))
            return False
        if running is None:
            # In a class or module fixture: resuming skips the classes that
            # are done, so it helps only if this attempt got anywhere.
            self._problem(f"outside any test: {crash}",
                          self._log_tail(log_start))
            return ended > 0
        self.tests[running] = {
            "id": running, "outcome": "error", "crash": True,
            "on_loop": False, "detail": crash,
            "traceback": self._log_tail(log_start)}
        return True

    def _problem(self, detail, traceback=""):
        self.problems.append({"detail": detail, "traceback": traceback})

    def _new_records(self):
        if not os.path.exists(self.results_path):
            return
        with open(self.results_path, encoding="utf-8") as f:
            f.seek(self._offset)
            text = f.read()
        # Only whole lines: a crash may cut the last record short.
        complete = text[:text.rfind("\n") + 1]
        self._offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            yield json.loads(line)

    def _describe_exit(self, returncode, log_start):
        log = self._log_tail(log_start, lines=None)
        if _WATCHDOG.search(log):
            what = f"timed out after {self.args.timeout:g}s (hang)"
        elif returncode < 0:
            what = f"worker killed by {signal.Signals(-returncode).name}"
        else:
            what = f"worker exited with status {returncode}"
        where = crash_location(log)
        return f"{what} [{where}]" if where else what

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def _log_tail(self, start, lines=40):
        with open(self.log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
        if lines is None:
            return text
        return "\n".join(text.splitlines()[-lines:])


# What faulthandler.dump_traceback_later() prints when a test overruns.
_WATCHDOG = re.compile(r"^Timeout \(\d+:\d\d:\d\d", re.M)
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)', re.M)


def crash_location(log):
    """file:line in test_asyncio where the main thread was, from faulthandler.

    faulthandler prints one block per thread, innermost frame first; the main
    thread's block is the one that runs worker.py.
    """
    blocks = re.split(r"^(?:Current thread|Thread) 0x", log, flags=re.M)
    for block in reversed(blocks):
        frames = list(_FRAME.finditer(block))
        if not any(m["file"].endswith("worker.py") for m in frames):
            continue
        for m in frames:
            if f"{os.sep}test_asyncio{os.sep}" in m["file"]:
                return f"{os.path.basename(m['file'])}:{m['line']}"
    return ""


def run_all(args, workdir):
    """Run the suites, `args.jobs` at a time; returns them in listed order."""
    runs = [SuiteRun(name, args, workdir) for name in args.suites]
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        # Long suites first, so the short ones fill the gaps at the end.
        ordered = sorted(runs, key=lambda r: -suites.get(r.name).cost)
        futures = [pool.submit(r.run) for r in ordered]
        for future in concurrent.futures.as_completed(futures):
            report.progress(future.result())
    return runs


def list_suites():
    for name, suite in suites.SUITES.items():
        mark = "*" if name in suites.DEFAULT else " "
        print(f"{mark} {name:<22} {suite.note}".rstrip())
    print("(* run by default)")


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        list_suites()
        return 0
    entries = expected_failures.for_run(args.loop, sys.version_info)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        workdir = args.logs or tmp
        os.makedirs(workdir, exist_ok=True)
        runs = run_all(args, workdir)
    summary = report.summarize(runs, entries)
    summary.seconds = time.monotonic() - started
    report.print_summary(summary, args.loop, verbose=args.verbose)
    if args.json:
        report.write_json(summary, args.loop, args.json)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
