"""Every notebook in examples/ runs top to bottom on CPU, as a user would run it:
here, all but those of helpers.NOTEBOOKS_OF, which tests/test_notebooks_<api>.py run."""

import pytest

from helpers import NOTEBOOKS, NOTEBOOKS_OF, run_notebook

pytestmark = pytest.mark.slow

OWN = [path for path in NOTEBOOKS if not any(path.name in names for names in NOTEBOOKS_OF.values())]


def test_examples_has_the_notebooks_the_docs_promise():
    names = {path.name for path in NOTEBOOKS}
    assert "02-train-from-a-yaml-schema.ipynb" in names, names
    assert {"01-etl-with-nvtabular.ipynb", "04-export-and-serve.ipynb"} <= names, names
    assert "06-tfrs-basic-retrieval.ipynb" in names, names
    assert "07-merlin-retrieval-model.ipynb" in names, names
    # each notebook run elsewhere exists, and a test file of that name runs it
    for api, run_there in NOTEBOOKS_OF.items():
        assert set(run_there) <= names, run_there
        assert (NOTEBOOKS[0].parents[1] / "tests" / f"test_notebooks_{api}.py").is_file(), api


@pytest.mark.parametrize("path", OWN, ids=[p.stem for p in OWN])
def test_notebook_runs_and_is_committed_without_outputs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)
