# shellcheck shell=bash disable=SC2034
# Shared helpers for install.sh and run.sh (sourced, not executed).

CONFORMANCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFORMANCE_HOME=${CONFORMANCE_HOME:-$HOME/.cache/elo-conformance}
CONFORMANCE_PY27=${CONFORMANCE_PY27:-$HOME/.pyenv/versions/2.7.18/bin/python}

die() {
    echo "conformance: error: $*" >&2
    exit 2
}

# A Python >= 3.10 (kosoku needs it; check.py is happy with any 3.x). Does not
# rely on pyenv's shims being on PATH: pyenv's own builds are looked up by path.
find_py3() {
    if [[ -n ${CONFORMANCE_PY3:-} ]]; then
        echo "$CONFORMANCE_PY3"
        return 0
    fi
    local v p
    for v in 3.11 3.12 3.13 3.10; do
        for p in "$HOME"/.pyenv/versions/"$v".*/bin/python; do
            if [[ -x $p ]]; then
                echo "$p"
                return 0
            fi
        done
    done
    for p in python3.11 python3.12 python3.13 python3.10 python3; do
        p=$(command -v "$p" 2>/dev/null) || continue
        if "$p" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
