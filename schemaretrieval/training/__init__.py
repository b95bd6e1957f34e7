"""Training: the one fit path, its checkpoints and callbacks, and the measured optimizer.

* ``fit``: `fit` (streams, resumes, stops early, logs) and `set_seed`.
* ``checkpoints``: `Checkpointer`, `CheckpointCallback`.
* ``callbacks``: `TopKCallback`, `EarlyStopping` and the epoch bookkeeping.
* ``defaults``: the batch size and the epochs rule when none are given.
* ``executions``: `whole_calls`, a given step count run exactly under multi-step calls.
* ``optimizers``: `LazyAdam`, `AveragedAdam`, `default_optimizer`.
* ``svd_start``: `start_item_ids`, the item-id table from the rows' SVD.
* ``plots``: the loss and recall@k per epoch of a run, as a PNG.
* ``weights``: sample weights from a column of the table (``fit(..., sample_weight=)``).
"""

from schemaretrieval.training.callbacks import EarlyStopping, TopKCallback
from schemaretrieval.training.checkpoints import CheckpointCallback, Checkpointer
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, default_epochs
from schemaretrieval.training.fit import fit, set_seed
from schemaretrieval.training.optimizers import AveragedAdam, LazyAdam, default_optimizer
from schemaretrieval.training.svd_start import start_item_ids

__all__ = [
    "EarlyStopping",
    "TopKCallback",
    "CheckpointCallback",
    "Checkpointer",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "default_epochs",
    "fit",
    "set_seed",
    "AveragedAdam",
    "LazyAdam",
    "default_optimizer",
    "start_item_ids",
]
