#!/usr/bin/env bash
# Sets up what asyncloop needs on this machine and runs one job:
#   scripts/dev.sh demo        the demo: asyncio code on asyncloop and on the default loop
#   scripts/dev.sh test        the whole test suite on every supported Python found
#   scripts/dev.sh bench       the benchmarks (asyncio vs uvloop vs asyncloop)
#   scripts/dev.sh sanitize    the test suite against an AddressSanitizer build
#   scripts/dev.sh soak        servers under mixed load for a while [--minutes N]
#   scripts/dev.sh differential  generated programs on asyncio vs asyncloop [--programs N] [--seed S]
#   scripts/dev.sh ecosystem [SUITE ...] [--quick]   third-party test suites on three loops
# Installs what is missing: libuv1-dev (apt), a virtual environment per
# Python version under .venv-X.Y with the test tools, the extension built in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# find_python, SUPPORTED_PYTHONS
. "$ROOT/scripts/pythons.sh"
VERSIONS=${ASYNCLOOP_PYTHONS:-$SUPPORTED_PYTHONS}

log() { printf '\n== %s\n' "$*" >&2; }

ensure_system_packages() {
    local missing=()
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v cc >/dev/null || missing+=(gcc)
    if ! pkg-config --exists libuv 2>/dev/null; then missing+=(libuv1-dev); fi
    command -v readelf >/dev/null || missing+=(binutils)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# Creates .venv-X.Y with the test tools and builds the extension in place;
# prints the interpreter. Returns 1 when Python X.Y is not installed, 3 when
# the build fails.
setup_venv() {
    local v=$1 py venv="$ROOT/.venv-$1"
    py=$(find_python "$v")
    [ -n "$py" ] || return 1
    if [ ! -x "$venv/bin/python" ]; then
        log "creating $venv with $py"
        "$py" -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c 'import pytest, pytest_timeout, uvloop, setuptools
import pytest_asyncio, anyio, uvicorn, uvicorn_worker, gunicorn, aiohttp, fastapi' \
            2>/dev/null; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            'setuptools>=61' wheel pytest pytest-timeout uvloop \
            pytest-asyncio anyio 'uvicorn[standard]' uvicorn-worker gunicorn aiohttp fastapi
    fi
    log "building asyncloop for Python $v"
    local build_log="$venv/build.log"
    if ! (cd "$ROOT" && "$venv/bin/python" -W ignore setup.py -q build_ext --inplace) \
            >"$build_log" 2>&1; then
        cat "$build_log" >&2
        return 3
    fi
    # The C code must compile without warnings.
    if grep -q 'warning:' "$build_log"; then
        grep -A3 'warning:' "$build_log" >&2
        log "compiler warnings: see above"
        return 3
    fi
    echo "$venv/bin/python"
}

# The first supported Python found, set up.
first_python() {
    local v rc
    for v in $VERSIONS; do
        setup_venv "$v" && return 0
        rc=$?
        [ $rc -eq 1 ] || exit 1
    done
    log "none of Python $VERSIONS is installed"
    exit 1
}

cmd=${1:-}
shift || true
case "$cmd" in
demo)
    ensure_system_packages
    py=$(first_python)
    exec "$py" demo/demo.py "$@"
    ;;
test)
    ensure_system_packages
    status=0 ran=0
    for v in $VERSIONS; do
        py=$(setup_venv "$v") || {
            rc=$?
            [ $rc -eq 1 ] || { log "build failed on Python $v"; exit 1; }
            log "Python $v not found: skipped"
            continue
        }
        ran=$((ran + 1))
        log "tests on Python $v"
        "$py" -m pytest "$@" || status=1
    done
    if [ "$ran" -eq 0 ]; then
        log "no Python interpreter found: no test ran"
        exit 1
    fi
    exit $status
    ;;
bench)
    ensure_system_packages
    py=$(first_python)
    # For bench/net_echo.py: its chart, and the TLS load client (linked with
    # OpenSSL; without libssl-dev that mode is skipped).
    "$py" -c 'import matplotlib' 2>/dev/null ||
        "$py" -m pip install -q --disable-pip-version-check matplotlib
    if ! pkg-config --exists openssl 2>/dev/null && [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev ||
            log "libssl-dev not installed: the TLS echo benchmark is skipped"
    fi
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk || log "wrk not installed (apt-get install wrk): bench/http.py cannot run"
    exec "$py" bench/run.py "$@"
    ;;
sanitize)
    ensure_system_packages
    py=$(first_python)
    PYTHON=$py exec "$ROOT/scripts/sanitize.sh" "$@"
    ;;
soak)
    ensure_system_packages
    py=$(first_python)
    exec "$py" scripts/soak.py "$@"
    ;;
differential)
    ensure_system_packages
    py=$(first_python)
    exec "$py" tests/differential/differential.py "$@"
    ;;
ecosystem)
    # uvicorn, aiohttp, anyio, websockets, httpx and asyncpg's own suites on
    # asyncio, uvloop and asyncloop; see tests/ecosystem/README.md.
    ensure_system_packages
    py=$(first_python)
    exec "$py" tests/ecosystem/run.py "$@"
    ;;
*)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
