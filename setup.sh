#!/usr/bin/env bash
# Creates (or reuses) .venv with the pinned stack from constraints.txt and the
# package installed editable. Re-runs the install only when pyproject.toml or
# constraints.txt changed since the last successful setup.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup.sh: needs Python 3.11 (merlin 23.8 and TF 2.21 pins); found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || { echo "setup.sh: 'python3.11 -m venv' failed; on Debian: apt-get install python3.11-venv" >&2; exit 1; }
fi
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
    # pip 26.2+ refuses merlin-dataloader's direct-URL extra dependency.
    .venv/bin/python -m pip install -q -c constraints.txt "pip<26.2"
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
    echo "$stamp" > .venv/.setup-stamp
fi
