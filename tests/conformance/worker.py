"""Run one conformance suite in this process; run.py starts one per suite.

Results are streamed to a file as JSON lines, one "start" and one "end"
record per test, flushed as they happen: if the interpreter crashes or a test
hangs and the watchdog kills the process, run.py still knows every result so
far and which test was running.

    python worker.py --loop NAME --suite NAME --results FILE
                     [--exclude FILE] [--timeout SECONDS] [--match PATTERN]
"""

import argparse
import faulthandler
import fnmatch
import json
import os
import sys
import traceback
import unittest

import loops
import suites
import wiring

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TEST_PREFIX = suites.PACKAGE + "."

# Worst outcome wins when a test reports more than one (e.g. subtests); a
# test that passed with some subtests skipped counts as passed.
_RANK = ["skip", "pass", "xpass", "xfail", "fail", "error"]


def short_id(test_id):
    """Test ids without the package prefix, as used everywhere in reports.

    Fixture errors have ids like "setUpClass (test.test_asyncio.x.Class)".
    """
    return test_id.replace(TEST_PREFIX, "")


class Sink:
    """Appends JSON records to the results file, one line each, unbuffered."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")

    def write(self, **record):
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


class StreamingResult(unittest.TestResult):
    """Records one outcome per test, plus whether it ran on the chosen loop."""

    def __init__(self, sink, timeout):
        super().__init__()
        self._sink = sink
        self._timeout = timeout
        self._current = None

    # -- the life of a test ----------------------------------------------

    def startTest(self, test):
        super().startTest(test)
        self._current = {"id": short_id(test.id()), "outcome": None,
                         "detail": "", "traceback": "",
                         "mark": wiring.TRACKER.mark()}
        self._sink.write(event="start", id=self._current["id"])
        self._arm_watchdog()

    def stopTest(self, test):
        current, self._current = self._current, None
        if current is None:
            # A stopTest without its startTest (seen with 3.12's unittest
            # on classes the suites skip): nothing to record.
            super().stopTest(test)
            return
        mark = current.pop("mark")
        current["on_loop"] = wiring.TRACKER.created_since(mark)
        if current["outcome"] is None:  # unittest reported nothing at all
            current["outcome"] = "error"
            current["detail"] = "test reported no outcome"
        self._sink.write(event="end", **current)
        # Class and module tear-down run between tests: keep them watched.
        self._arm_watchdog()
        super().stopTest(test)

    def _arm_watchdog(self):
        faulthandler.dump_traceback_later(self._timeout, exit=True)

    # -- outcomes --------------------------------------------------------

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", detail=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "xfail", err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass", detail="marked @expectedFailure upstream")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "fail" if failed else "error", err,
                         label=subtest._subDescription())

    def _record(self, test, outcome, err=None, detail="", label=""):
        if err is not None:
            detail = describe(err)
            if label:
                detail = f"{label}: {detail}"
        # Skips inside subtests are reported against the subtest.
        test = getattr(test, "test_case", test)
        current = self._current
        if current is None or current["id"] != short_id(test.id()):
            # setUpClass / setUpModule and their tear-downs report errors
            # outside any test; give them a record of their own.
            self._standalone(test, outcome, detail, err)
            return
        if current["outcome"] is None or \
                _RANK.index(outcome) > _RANK.index(current["outcome"]):
            current["outcome"] = outcome
            current["detail"] = detail
        if err is not None:
            current["traceback"] += self._exc_info_to_string(err, test)

    def _standalone(self, test, outcome, detail, err):
        record = {"id": short_id(test.id()), "outcome": outcome,
                  "detail": detail, "on_loop": False, "traceback": "",
                  "standalone": True}
        if err is not None:
            record["traceback"] = "".join(traceback.format_exception(*err))
        self._sink.write(event="start", id=record["id"])
        self._sink.write(event="end", **record)


def describe(err):
    """One line for the summary: the exception and where in the test."""
    etype, value, tb = err
    lines = traceback.format_exception_only(etype, value)
    text = lines[-1].strip().splitlines()[0] if lines else etype.__name__
    where = _test_frame(tb)
    return f"{text} [{where}]" if where else text


def _test_frame(tb):
    """file:line of the innermost frame inside test_asyncio, if any."""
    found = ""
    for frame in traceback.extract_tb(tb):
        if f"{os.sep}test_asyncio{os.sep}" in frame.filename:
            found = f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return found


def select_tests(suite, exclude, match):
    """Flatten, then drop tests already run (see --exclude) or not matched."""
    kept = unittest.TestSuite()
    for test in _flatten(suite):
        test_id = short_id(test.id())
        if test_id in exclude:
            continue
        if match and not any(fnmatch.fnmatchcase(test_id, p) for p in match):
            continue
        kept.addTest(test)
    return kept


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", required=True)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--exclude", help="file with test ids to skip")
    parser.add_argument("--timeout", type=float, default=40.0)
    parser.add_argument("--match", action="append", default=[])
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sink = Sink(args.results)
    faulthandler.enable()  # a crash prints the Python stack to the log
    # Loading can hang too (a loop's import, a module's set-up code).
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    # The project is built in place: make its package importable.
    sys.path.insert(0, PROJECT_ROOT)
    try:
        spec = loops.load(args.loop)
        hooks = wiring.install(spec)
        tests = suites.get(args.suite).load(hooks)
    except BaseException as exc:
        sink.write(event="setup_error", detail=describe(sys.exc_info()),
                   traceback="".join(traceback.format_exception(exc)))
        return 2
    exclude = set()
    if args.exclude:
        with open(args.exclude, encoding="utf-8") as f:
            exclude = set(f.read().splitlines())
    tests = select_tests(tests, exclude, args.match)
    sink.write(event="ready", loop_version=spec.version)
    result = StreamingResult(sink, args.timeout)
    tests.run(result)
    sink.write(event="done")
    # Interpreter shutdown stays under the watchdog armed by stopTest.
    return 0


if __name__ == "__main__":
    sys.exit(main())
