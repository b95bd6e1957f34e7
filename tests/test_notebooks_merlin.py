"""The notebooks of examples/ on Merlin Models' API (05: moving from Merlin or
TFRS; 07: Merlin's retrieval model, call for call) run top to bottom on CPU,
as a user would run them; a file of their own so that `--dist loadfile` can
run them beside tests/test_notebooks.py."""

import pytest

from helpers import EXAMPLES, NOTEBOOKS_OF, run_notebook

pytestmark = pytest.mark.slow

PATHS = [EXAMPLES / name for name in NOTEBOOKS_OF["merlin"]]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_and_is_committed_without_outputs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)
