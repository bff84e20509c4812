"""Counting, judging and printing the results of a conformance run."""

import dataclasses
import json
import platform
import sys

import expected_failures

COLUMNS = ("run", "on-loop", "passed", "failed", "errors", "skipped", "xfail")


@dataclasses.dataclass
class Row:
    suite: str
    counts: dict
    seconds: float = 0.0


@dataclasses.dataclass
class Summary:
    rows: list
    failures: list        # (kind, suite, id, detail, traceback)
    unexpected_passes: list  # (suite, id, reason)
    tests: dict           # suite -> list of judged records
    loop_version: str = "?"
    seconds: float = 0.0

    @property
    def total(self):
        return {c: sum(row.counts[c] for row in self.rows) for c in COLUMNS}

    @property
    def ok(self):
        total = self.total
        executed = total["run"] - total["skipped"]
        return (not self.failures and executed > 0 and total["on-loop"] > 0)


def judge(record, entries):
    """The verdict for one test: (verdict, reason) after the expected list.

    Verdicts: pass, fail, error, skip, xfail (expected failure, listed here
    or marked upstream), xpass (passed although expected to fail).
    """
    outcome = record["outcome"]
    reason = expected_failures.reason_for(record["id"], entries)
    # A crash or hang is never excused: it takes the interpreter with it.
    if outcome in ("fail", "error") and reason and not record.get("crash"):
        return "xfail", reason
    if outcome == "pass" and reason:
        return "xpass", reason
    if outcome == "xpass":
        return "xpass", record["detail"]
    return outcome, reason


def summarize(runs, entries):
    summary = Summary(rows=[], failures=[], unexpected_passes=[], tests={})
    for run in runs:
        summary.rows.append(_summarize_suite(run, entries, summary))
        summary.loop_version = run.loop_version or summary.loop_version
    return summary


def _summarize_suite(run, entries, summary):
    counts = dict.fromkeys(COLUMNS, 0)
    judged = []
    for record in run.tests.values():
        verdict, reason = judge(record, entries)
        judged.append(dict(record, verdict=verdict, reason=reason))
        if not record.get("standalone"):  # class/module fixtures aren't tests
            counts["run"] += 1
            counts["on-loop"] += bool(record.get("on_loop"))
        counts[_COLUMN_OF[verdict]] += 1
        if verdict in ("fail", "error"):
            kind = "CRASH" if record.get("crash") else verdict.upper()
            summary.failures.append((kind, run.name, record["id"],
                                     record["detail"], record["traceback"]))
        elif verdict == "xpass":
            summary.unexpected_passes.append((run.name, record["id"], reason))
    for problem in run.problems:
        counts["errors"] += 1
        summary.failures.append(("CRASH", run.name, "(suite)",
                                 problem["detail"], problem["traceback"]))
    summary.tests[run.name] = judged
    return Row(run.name, counts, run.seconds)


_COLUMN_OF = {"pass": "passed", "xpass": "passed", "fail": "failed",
              "error": "errors", "skip": "skipped", "xfail": "xfail"}


def progress(run):
    """One line as each suite finishes, so long runs show signs of life."""
    bad = sum(r["outcome"] in ("fail", "error") for r in run.tests.values())
    extra = f", {len(run.problems)} worker problem(s)" if run.problems else ""
    print(f"  {run.name:<22} {len(run.tests):4d} tests, {bad:3d} not passing"
          f"{extra}  ({run.seconds:.1f}s)", flush=True)


def print_summary(summary, loop, verbose=False, out=sys.stdout):
    def say(text=""):
        print(text, file=out)

    say()
    say(f"Conformance of {loop} {summary.loop_version} on "
        f"{platform.python_implementation()} {platform.python_version()}"
        f" ({len(summary.rows)} suites, {summary.seconds:.0f}s)")
    say()
    for line in format_table(summary):
        say(line)
    if summary.failures:
        say()
        say(f"Failures ({len(summary.failures)}):")
        for kind, suite, test_id, detail, tb in summary.failures:
            say(f"  {kind:<5} {test_id if test_id != '(suite)' else suite}")
            say(f"        {detail}")
            if verbose and tb:
                say("        " + tb.rstrip().replace("\n", "\n        "))
    if summary.unexpected_passes:
        say()
        say(f"Expected to fail but passed ({len(summary.unexpected_passes)}):")
        for suite, test_id, reason in summary.unexpected_passes:
            say(f"  {test_id}  -- {reason}")
    say()
    say(_verdict_line(summary))


def format_table(summary):
    width = max([len("suite"), len("total")]
                + [len(row.suite) for row in summary.rows])
    header = f"{'suite':<{width}} " + " ".join(f"{c:>7}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for row in summary.rows:
        lines.append(_table_line(row.suite, row.counts, width))
    lines.append("-" * len(header))
    lines.append(_table_line("total", summary.total, width))
    return lines


def _table_line(name, counts, width):
    return f"{name:<{width}} " + " ".join(f"{counts[c]:>7}" for c in COLUMNS)


def _verdict_line(summary):
    if summary.ok:
        return "OK"
    total = summary.total
    if summary.failures:
        return f"FAILED: {len(summary.failures)} unexpected failure(s)"
    if total["run"] == total["skipped"]:
        return "FAILED: no test ran"
    return "FAILED: no test ran on the chosen loop"


def write_json(summary, loop, path):
    data = {
        "loop": loop,
        "loop_version": summary.loop_version,
        "python": platform.python_version(),
        "ok": summary.ok,
        "seconds": round(summary.seconds, 1),
        "totals": summary.total,
        "suites": [{"name": row.suite, "counts": row.counts,
                    "seconds": round(row.seconds, 1),
                    "tests": summary.tests[row.suite]}
                   for row in summary.rows],
        "failures": [dict(zip(("kind", "suite", "id", "detail", "traceback"),
                              failure)) for failure in summary.failures],
        "unexpected_passes": [dict(zip(("suite", "id", "reason"), p))
                              for p in summary.unexpected_passes],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
