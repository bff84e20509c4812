#!/usr/bin/env bash
# Checks what a user gets from `pip install asyncloop-uv`, wheel and sdist.
#
# Wheels (scripts/wheel.sh, one per Python): each is tagged manylinux for its
# Python, carries LICENSE and one extension module, installs into a fresh
# virtual environment and runs there without the system's libuv: either
# libuv is linked in (no libuv among the module's NEEDED entries), or the
# wheel carries its own copy, which the module finds first.
#
# The sdist: it lists the whole test suite (tests/conftest.py among it),
# the C sources, LICENSE and CHANGELOG.md; `pip install` of the .tar.gz
# builds and installs in a fresh environment; and tests from the unpacked
# sdist pass against that installed package.
#   scripts/check_wheel.sh [python ...]    (default: those of scripts/wheel.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/build/wheel-tools
PIP_OPTS=(-q --disable-pip-version-check)
# A few quick test files that need nothing beyond pytest, none of them
# timing-sensitive: the API and real UDP sockets on loopback.
SDIST_TESTS=(tests/test_api.py tests/test_udp.py)

# shellcheck source=scripts/pythons.sh
. scripts/pythons.sh

fail() { echo "FAIL: $*" >&2; exit 1; }

pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || mapfile -t pythons < <(supported_pythons 2>/dev/null)
[ ${#pythons[@]} -gt 0 ] || fail "no Python found"
version=$("${pythons[0]}" -c '
import ast, sys
tree = ast.parse(open("asyncloop/_version.py").read())
print(next(node.value.value for node in tree.body
           if isinstance(node, ast.Assign)
           and node.targets[0].id == "__version__"))')
echo "asyncloop-uv $version"

scripts/wheel.sh "${pythons[@]}" >/dev/null
tmp=$(mktemp -d)
# Building the sdist leaves asyncloop_uv.egg-info in the tree (see wheel.sh).
trap 'rm -rf "$tmp" "$ROOT"/*.egg-info' EXIT

# Run in the environment $1: asyncloop is the installed one, of this
# version, under the distribution's name, and runs a coroutine.
check_installed() {
    local venv=$1
    (cd "$tmp" && "$venv/bin/python" - "$version" "$venv" <<'EOF'
import asyncio, importlib.metadata, os, sys
import asyncloop
version, venv = sys.argv[1:]
assert asyncloop.__file__.startswith(os.path.realpath(venv)) or \
    asyncloop.__file__.startswith(venv), asyncloop.__file__
assert asyncloop.__version__ == version, asyncloop.__version__
assert importlib.metadata.version('asyncloop-uv') == version


async def main():
    await asyncio.sleep(0.01)
    return asyncloop.libuv_version()
print(f'asyncloop {asyncloop.__version__} runs, libuv', asyncloop.run(main()))
EOF
    )
}

# The installed module does not use a libuv from outside environment $1.
check_libuv_inside() {
    local venv=$1 module needed resolved
    module=$(cd "$tmp" && "$venv/bin/python" -c \
        'import asyncloop._loop as m; print(m.__file__)')
    needed=$(readelf -d "$module" | grep NEEDED || true)
    echo "$needed"
    if echo "$needed" | grep -q 'libuv'; then
        resolved=$(ldd "$module" | grep libuv)
        echo "libuv resolves to: $resolved"
        case "$resolved" in
            *"$venv"/*) ;;
            *) fail "the installed module uses a libuv outside the wheel" ;;
        esac
    fi
}

check_wheel() {
    local py=$1 tag wheel listing venv
    tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    wheel=$(ls wheelhouse/asyncloop_uv-"$version"-"$tag"-"$tag"-*.whl 2>/dev/null || true)
    [ -n "$wheel" ] || fail "no $tag wheel in wheelhouse/: $(ls wheelhouse)"
    echo "== $wheel"
    case "$wheel" in
        *manylinux*_x86_64.whl) ;;
        *) fail "$wheel is not tagged manylinux" ;;
    esac
    listing=$(unzip -Z1 "$wheel")
    echo "$listing" | grep -q "dist-info/.*LICENSE$" || fail "no LICENSE in $wheel"
    [ "$(echo "$listing" | grep -c '^asyncloop/_loop\..*\.so$')" -eq 1 ] ||
        fail "$wheel should hold exactly one extension module"
    venv=$tmp/venv-$tag
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install "${PIP_OPTS[@]}" "$wheel"
    check_libuv_inside "$venv"
    check_installed "$venv"
}

# What the sdist must carry for its tests to run: every tracked file of
# these folders (when this is a git checkout) and the files named here.
check_sdist_listing() {
    local sdist=$1 top listing f
    top=$(basename "$sdist" .tar.gz)
    listing=$(tar tzf "$sdist" | sed "s|^$top/||")
    for f in tests/conftest.py tests/conformance/run.py tests/scripts/ctrl_c.py \
            src/asyncloop.h src/loop.c LICENSE CHANGELOG.md README.md \
            setup.py pyproject.toml MANIFEST.in asyncloop/_version.py; do
        echo "$listing" | grep -qx "$f" || fail "the sdist lacks $f"
    done
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        for f in $(git ls-files tests bench demo scripts src); do
            echo "$listing" | grep -qx "$f" || fail "the sdist lacks $f"
        done
    fi
    echo "$listing" | grep -q '\.so$' && fail "the sdist holds a built module"
    echo "the sdist lists $(echo "$listing" | grep -c '^tests/') files of tests/"
}

check_sdist() {
    local py=$1 sdist venv src
    echo "== sdist"
    if ! "$TOOLS/bin/python" -m build --sdist --outdir "$tmp/sdist" . \
            >"$tmp/sdist.log" 2>&1; then
        cat "$tmp/sdist.log" >&2
        fail "the sdist does not build"
    fi
    sdist=$(ls "$tmp"/sdist/*.tar.gz)
    echo "$sdist"
    check_sdist_listing "$sdist"
    venv=$tmp/venv-sdist
    "$py" -m venv "$venv"
    # Built from the .tar.gz, as pip does where no wheel fits.
    "$venv/bin/python" -m pip install "${PIP_OPTS[@]}" "$sdist" pytest pytest-timeout
    check_installed "$venv"
    # The unpacked sdist's tests against the installed package: its own
    # asyncloop/ is removed so that nothing imports the unbuilt sources.
    # Plugins are not loaded by entry point (the package's pytest11 entry
    # point names a module that may not be there); pytest-timeout is named.
    tar xzf "$sdist" -C "$tmp"
    src=$tmp/$(basename "$sdist" .tar.gz)
    rm -rf "$src/asyncloop"
    (cd "$src" && PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$venv/bin/python" -m pytest \
        -p pytest_timeout -p no:cacheprovider -q "${SDIST_TESTS[@]}")
}

for py in "${pythons[@]}"; do
    check_wheel "$py"
done
check_sdist "${pythons[0]}"
echo "wheels and sdist OK (${SECONDS}s)"
