"""Outcomes from JUnit XML reports, the per-suite tables and the comparison.

A run of a suite on one loop is a dict:
    {"loop", "outcomes": {test id: outcome}, "wall": seconds,
     "loops": the loopswap report, "status": "ok" | "wall limit" | ...}
where outcome is one of passed, failed, error, skipped.
"""

import xml.etree.ElementTree as ET

OUTCOMES = ('passed', 'failed', 'error', 'skipped')
BAD = ('failed', 'error')


def parse_junit(path):
    """{test id: (outcome, message)} of a pytest --junitxml file."""
    results = {}
    root = ET.parse(path).getroot()
    for case in root.iter('testcase'):
        test_id = f'{case.get("classname", "")}::{case.get("name", "")}'
        outcome, message = 'passed', ''
        # A failing test whose teardown errors too carries both elements:
        # the failure is what counts.
        for tag, name in (('failure', 'failed'), ('error', 'error'),
                          ('skipped', 'skipped')):
            element = case.find(tag)
            if element is not None:
                outcome = name
                text = element.get('message') or ''
                message = ' '.join(text.split())[:300]
                break
        results[test_id] = (outcome, message)
    return results


def counts(run):
    tally = dict.fromkeys(OUTCOMES, 0)
    for outcome, _ in run['outcomes'].values():
        tally[outcome] += 1
    return tally


def regressions(reference, other):
    """Tests that pass on `reference` and fail or error on `other`."""
    return sorted(test for test, (outcome, _) in other['outcomes'].items()
                  if outcome in BAD
                  and reference['outcomes'].get(test, ('',))[0] == 'passed')


def _loops_cell(run):
    loops = run.get('loops') or {}
    expected = loops.get('expected_type')
    created = loops.get('created', {})
    tests_on = loops.get('tests_on', {})
    mine = created.get(expected, 0)
    other = sum(n for name, n in created.items() if name != expected)
    return f'{mine} / {other} ({tests_on.get(expected, 0)} tests)'


def suite_table(name, runs):
    """A markdown table of one suite's runs, one row per loop."""
    lines = [
        f'### {name}',
        '',
        '| loop | passed | failed | errors | skipped | wall s | '
        'loops of it / other (tests on it) | status |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for run in runs:
        c = counts(run)
        lines.append(
            f'| {run["loop"]} | {c["passed"]} | {c["failed"]} | '
            f'{c["error"]} | {c["skipped"]} | {run["wall"]:.0f} | '
            f'{_loops_cell(run)} | {run["status"]} |')
    return '\n'.join(lines)


def comparison(name, runs):
    """Markdown lists of the tests passing on asyncio and failing elsewhere."""
    by_loop = {run['loop']: run for run in runs}
    reference = by_loop.get('asyncio')
    if reference is None:
        return ''
    on_uvloop = set(regressions(reference, by_loop['uvloop'])
                    if 'uvloop' in by_loop else ())
    lines = []
    if 'asyncloop' in by_loop:
        bad = regressions(reference, by_loop['asyncloop'])
        lines.append(f'Passing on asyncio, failing on asyncloop '
                     f'({len(bad)}):')
        for test in bad:
            outcome, message = by_loop['asyncloop']['outcomes'][test]
            also = ' (fails on uvloop too)' if test in on_uvloop else ''
            lines.append(f'- `{test}` {outcome}{also}: {message[:160]}')
    only_uvloop = sorted(on_uvloop - set(
        regressions(reference, by_loop['asyncloop'])
        if 'asyncloop' in by_loop else ()))
    lines.append(f'\nPassing on asyncio, failing on uvloop only '
                 f'({len(only_uvloop)}):')
    for test in only_uvloop:
        outcome, message = by_loop['uvloop']['outcomes'][test]
        lines.append(f'- `{test}` {outcome}: {message[:160]}')
    return '\n'.join(lines)


def deselections(name, suite, runs):
    """The deselected tests with their reason (the same on every loop)."""
    lists = [sorted((run.get('loops') or {}).get('deselected', {}).items())
             for run in runs]
    same = all(entry == lists[0] for entry in lists)
    lines = [f'Deselected ({len(lists[0]) if lists else 0}, '
             f'{"identical" if same else "DIFFERENT"} on every loop):']
    reasons = {}
    for _, reason in (lists[0] if lists else ()):
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        lines.append(f'- {n}: {reason}')
    for path, reason in suite.ignore:
        lines.append(f'- module `{path}` not collected: {reason}')
    return '\n'.join(lines)


def foreign_loops(runs):
    """The tests that made a loop of another kind than the one under test."""
    lines = []
    for run in runs:
        tests = (run.get('loops') or {}).get('foreign_loop_tests', {})
        if tests:
            lines.append(f'Tests making a loop other than {run["loop"]}\'s '
                         f'on the {run["loop"]} run ({len(tests)}):')
            lines += [f'- `{test}`: {", ".join(names)}'
                      for test, names in sorted(tests.items())]
    return '\n'.join(lines)


def markdown(results, suites):
    parts = ['# Ecosystem suites on asyncio, uvloop and asyncloop', '']
    for name, runs in results.items():
        parts += [suite_table(name, runs), '',
                  deselections(name, suites[name], runs), '',
                  foreign_loops(runs), '',
                  comparison(name, runs), '']
    return '\n'.join(parts)
