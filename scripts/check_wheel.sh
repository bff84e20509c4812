#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh virtual environment and checks
# that the installed module does not need the system's libuv: either libuv
# is linked in (no libuv among the module's NEEDED entries), or the wheel
# carries its own copy, which the module finds first.
#   scripts/check_wheel.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv-3.11/bin/python}
scripts/wheel.sh "$py" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check wheelhouse/*.whl
cd "$tmp"
module=$("$tmp/venv/bin/python" -c 'import asyncloop._loop as m; print(m.__file__)')
needed=$(readelf -d "$module" | grep NEEDED || true)
echo "$needed"
if echo "$needed" | grep -q 'libuv'; then
    resolved=$(ldd "$module" | grep libuv)
    echo "libuv resolves to: $resolved"
    case "$resolved" in
        *asyncloop.libs/*) ;;
        *) echo "FAIL: the installed module uses a libuv outside the wheel"; exit 1 ;;
    esac
fi
"$tmp/venv/bin/python" -c '
import asyncio, asyncloop
async def main():
    await asyncio.sleep(0.01)
    return asyncloop.libuv_version()
print("wheel OK, libuv", asyncloop.run(main()))
'
