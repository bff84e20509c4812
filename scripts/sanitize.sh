#!/usr/bin/env bash
# Runs the test suite against a build of the extension with AddressSanitizer
# and UndefinedBehaviorSanitizer. Any invalid memory access or undefined
# behaviour aborts the run with a report. Leak detection is off: the
# interpreter itself does not free everything at exit; growth of memory
# with the work is checked by the tests instead. Then a short soak
# (scripts/soak.py) on the same build.
#   scripts/sanitize.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:?run it as: scripts/dev.sh sanitize}
base=build/sanitize
rm -rf "$base"
ASYNCLOOP_SANITIZE=1 "$py" setup.py -q build --build-base "$base" >/dev/null
lib=$(ls -d "$base"/lib.*)
export LD_PRELOAD
LD_PRELOAD=$(gcc -print-file-name=libasan.so)
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:quarantine_size_mb=16
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The conformance suites run in their own subprocesses and are covered by
# the regular run; here the focus is asyncloop's own tests. Tests that
# measure memory are left out: the sanitizer changes how memory is reused.
"$py" -m pytest -o pythonpath="$lib" -p no:cacheprovider \
    --ignore=tests/conformance -k "not memory" "$@"
# A short soak on the sanitizer build: a crash or a report aborts it, and
# it checks descriptors (memory is not judged under the sanitizer).
PYTHONPATH="$lib" "$py" scripts/soak.py --seconds 20
