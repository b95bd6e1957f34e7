#!/usr/bin/env bash
# Creates (or reuses) .venv with the pinned stack of constraints.txt and the
# package installed editable. `bash setup.sh --gpu` adds the RAPIDS 24.12 GPU
# set (cudf, dask-cudf, cupy). Re-runs the install only when pyproject.toml,
# constraints.txt or the choice of extras changed since the last setup.
set -euo pipefail
cd "$(dirname "$0")"
extras=dev
case "${1:-}" in
    "") ;;
    --gpu) extras=dev,gpu ;;
    *) echo "setup.sh: unknown option '$1' (expected nothing or --gpu)" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup.sh: needs Python 3.11 (merlin 23.8 and TF 2.21 pins); found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || { echo "setup.sh: 'python3.11 -m venv' failed; on Debian: apt-get install python3.11-venv" >&2; exit 1; }
fi
stamp=$( (cat pyproject.toml constraints.txt; echo "$extras") | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
    # pip 26.2+ refuses merlin-dataloader's direct-URL extra dependency.
    .venv/bin/python -m pip install -q -c constraints.txt "pip<26.2"
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
    # merlin 23.8 declares pandas<1.6, which this stack replaces with 2.2.3:
    # installed without its declared dependencies, which pyproject.toml lists.
    .venv/bin/python -m pip install -q -c constraints.txt --no-deps merlin-core merlin-dataloader nvtabular
    echo "$stamp" > .venv/.setup-stamp
fi
# dask's settings for merlin 23.8 (etc/dask/schemaretrieval.yaml): a wheel puts
# them in <environment>/etc/dask/, an editable install does not.
mkdir -p .venv/etc/dask && cp etc/dask/schemaretrieval.yaml .venv/etc/dask/
