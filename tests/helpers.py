"""Small builders the test modules share."""

from pathlib import Path

import keras
from merlin.schema import ColumnSchema, Tags

from schemaretrieval import TwoTowerModel
from schemaretrieval.schema import load_schema

SYNTHETIC_YAML = Path(__file__).resolve().parents[1] / "schemas" / "synthetic.yaml"


def column(name, tags, dtype, **properties):
    """A merlin ColumnSchema; a `list` tag makes it a ragged list column."""
    is_list = Tags.LIST in tags
    return ColumnSchema(name, tags=tags, dtype=dtype, is_list=is_list, is_ragged=is_list, properties=properties)


def synthetic_schema():
    """The bundled schemas/synthetic.yaml."""
    return load_schema(SYNTHETIC_YAML)


def module_examples_pass(module, at_least=1):
    """Runs the docstring examples of `module`; True when at least
    `at_least` ran and none failed (failures are printed)."""
    import doctest

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    return result.attempted >= at_least and result.failed == 0


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# The notebooks that run TFRS's and Merlin Models' APIs, each run by its own
# test file (tests/test_notebooks_<api>.py): `--dist loadfile` hands a worker
# a whole file, and together they were two thirds of the notebooks' time.
NOTEBOOKS_OF = {
    "tfrs": ["06-tfrs-basic-retrieval.ipynb"],
    "merlin": ["05-moving-from-merlin-or-tfrs.ipynb", "07-merlin-retrieval-model.ipynb"],
}


def run_notebook(path, tmp_path, monkeypatch):
    """Runs the notebook top to bottom on CPU, as a user would, and checks
    that it is committed without outputs and that no cell ends in an error."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    stale = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
    assert not stale, f"{path.name}: clear the outputs of cells {stale} before committing"
    # The notebook runs in a scratch directory, reading the repository's
    # files through SCHEMARETRIEVAL_ROOT.
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    monkeypatch.setenv("SCHEMARETRIEVAL_ROOT", str(EXAMPLES.parent))
    client.execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def small_model(schema, seed=0, optimizer=None, steps_per_execution=1, **kwargs):
    """A two-tower model of 8-unit towers, compiled (Adam 1e-2 unless
    `optimizer`), its initial weights fixed by `seed`. One step a call of the
    compiled step unless `steps_per_execution`: callbacks see every step (the
    tests of checkpoints stop a fit at a given step)."""
    keras.utils.set_random_seed(seed)
    model = TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), steps_per_execution=steps_per_execution)
    return model


class Stop(Exception):
    """What StopAt raises: a fit interrupted at a known step."""


class StopAt(keras.callbacks.Callback):
    """Raises Stop at the end of the fit's `steps`-th call of the training step
    (its `steps`-th step under steps_per_execution=1)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            raise Stop
