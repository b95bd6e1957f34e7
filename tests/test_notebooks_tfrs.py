"""The notebook of examples/ on TFRS's API (06: TFRS's basic-retrieval
tutorial, call for call, on schemaretrieval.tfrs) runs top to bottom on CPU,
as a user would run it; a file of its own so that `--dist loadfile` can run
it beside tests/test_notebooks.py."""

import pytest

from helpers import EXAMPLES, NOTEBOOKS_OF, run_notebook

pytestmark = pytest.mark.slow

PATHS = [EXAMPLES / name for name in NOTEBOOKS_OF["tfrs"]]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_and_is_committed_without_outputs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)
