"""Generated programs of loop calls observe the same on asyncloop as on
the default loop (see differential.py; more programs with
`scripts/dev.sh differential --programs N`).

ASYNCLOOP_DIFF_PROGRAMS sets how many programs the test runs (default 150,
60 under AddressSanitizer, which is several times slower).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differential  # noqa: E402

UNDER_ASAN = 'asan' in os.environ.get('LD_PRELOAD', '')
PROGRAMS = int(os.environ.get('ASYNCLOOP_DIFF_PROGRAMS',
                              60 if UNDER_ASAN else 150))
CHUNK = 50
FIRST_SEED = 1


@pytest.mark.timeout(600 if UNDER_ASAN else 240)
@pytest.mark.parametrize('start', range(FIRST_SEED, FIRST_SEED + PROGRAMS,
                                        CHUNK))
def test_programs_observe_the_same(start):
    stop = min(start + CHUNK, FIRST_SEED + PROGRAMS)
    programs = [differential.program_dict(s) for s in range(start, stop)]
    outcome = differential.check(programs, jobs=2)
    failing = {pid: diffs for pid, (diffs, _) in outcome.items() if diffs}
    report = '\n'.join(differential.describe(pid, failing[pid])
                       for pid in sorted(failing))
    assert not failing, (
        f'{len(failing)} of {len(programs)} programs differ (see one with '
        f'differential.py --show SEED / --minimize SEED):\n{report}')
