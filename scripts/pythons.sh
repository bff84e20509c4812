# Sourced by scripts/dev.sh, scripts/wheel.sh and scripts/check_wheel.sh:
# the supported interpreters, and where to find each. Expects ROOT to be the
# repository root.

SUPPORTED_PYTHONS="3.11 3.12 3.13"

# The interpreter for version X.Y: .venv-X.Y's when scripts/dev.sh made it,
# else pyenv's, else pythonX.Y on PATH; nothing when there is none.
find_python() {
    local v=$1 p
    if [ -x "$ROOT/.venv-$v/bin/python" ]; then
        echo "$ROOT/.venv-$v/bin/python"; return
    fi
    if command -v pyenv >/dev/null; then
        for p in "$(pyenv root)"/versions/"$v".*/bin/python3; do
            [ -x "$p" ] && { echo "$p"; return; }
        done
    fi
    command -v "python$v" 2>/dev/null || true
}

# Prints one interpreter a line for each supported Python found.
supported_pythons() {
    local v py
    for v in $SUPPORTED_PYTHONS; do
        py=$(find_python "$v")
        if [ -n "$py" ]; then echo "$py"; else echo "== Python $v not found" >&2; fi
    done
}
