"""CPython's own asyncio test suites, run on asyncloop, as part of pytest.

The runner (run.py) does the work in subprocesses; this test only runs it
with the interpreter pytest runs on and fails if it reports any unexpected
failure, error, crash or hang.  The runner's summary is the failure message.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(os.path.dirname(HERE))
RUNNER = os.path.join(HERE, "run.py")
# The whole default run takes well under this; hangs are cut per test.
RUN_TIMEOUT = 900


def _import_error():
    """Why asyncloop cannot be imported from the project root, or ''."""
    probe = subprocess.run([sys.executable, "-c", "import asyncloop"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True)
    return probe.stderr.strip() if probe.returncode else ""


# Longer than the project-wide per-test timeout: this one test runs ~1300.
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_cpython_asyncio_suites_pass_on_asyncloop(tmp_path):
    error = _import_error()
    if error:  # the project must always be importable: not a skip
        pytest.fail(f"asyncloop is not importable:\n{error}")
    results = tmp_path / "conformance.json"
    command = [sys.executable, RUNNER, "--loop", "asyncloop",
               "--json", str(results)]
    run = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=RUN_TIMEOUT)
    summary = run.stdout[run.stdout.find("Conformance of"):] or run.stdout
    assert results.exists(), f"runner failed:\n{run.stdout}\n{run.stderr}"
    data = json.loads(results.read_text())
    assert data["ok"] and run.returncode == 0, summary
