"""The one training path: `fit`, which ``model.fit`` on a table and the CLI's ``train`` both run.

`fit(model, data, ...)` trains on a table (a DataFrame or a parquet / csv
path) one epoch at a time, each epoch's batches a function of
``(seed, epoch)`` alone (`sr.data.Batches`: in memory, or streamed from
parquet too large for it), so a run can stop anywhere and resume where it
stopped:

* **checkpoints** (``checkpoint_dir``, ``checkpoint_every``): every N steps
  and at each epoch's end (`checkpoints.Checkpointer`); a later `fit` with
  the same arguments restores the newest one, skips the batches of the epoch
  already seen, and logs that epoch's loss over all its steps.
* **reproducibility** (`set_seed`): one seed fixes the initialisation, the
  shuffling and the samplers' draws; with op determinism a CPU run repeats
  bit for bit.
* **logging** (``log_dir``, ``csv_path``, ``validation_data``): TensorBoard
  and a CSV row per epoch, with full-catalog recall@k on validation data;
  one line per epoch when the output is not a terminal.
* **early stopping** (`callbacks.EarlyStopping`): a validation split cut
  from the training data decides when to stop and which epoch's weights to
  keep; ``validation_data`` (the test data) never does.
* **the item-id start**: a model first built here whose ``item_id_start``
  is "svd" starts its item-id table from the SVD of the rows it trains on
  (`svd_start.start_item_ids`).
* **explicit inputs**: the catalog (``catalog=``, what catalog samplers draw
  from and ``validation_data`` is ranked against) and the users' history
  (``model.set_history``) are given, never taken from ``data`` behind the
  caller's back.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf

from schemaretrieval.arguments import flag, integer
from schemaretrieval.data.batches import Batches, stream_errors_raised
from schemaretrieval.data.catalog import Catalog
from schemaretrieval.data.read import read_frame
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.evaluation.metrics import check_ks
from schemaretrieval.training.across_epochs import AcrossEpochs
from schemaretrieval.training.callbacks import (
    EarlyStopping,
    EpochProgress,
    EpochWeights,
    FiniteLoss,
    OneEpoch,
    RestoreEpochWeights,
    ResumedLoss,
    TopKCallback,
)
from schemaretrieval.training.checkpoints import CheckpointCallback, Checkpointer
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE, default_epochs, table_shape
from schemaretrieval.training.svd_start import start_item_ids
from schemaretrieval.training.weights import check_weight_column, check_weights, negative_weights_named, weighted

__all__ = ["set_seed", "fit"]


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras from one integer and, with
    ``deterministic``, turns on TensorFlow's op determinism (ops without a
    deterministic kernel then raise instead of varying).

    Example: the same seed, the same initial weights and draws.
    (``deterministic=True``, the default, would leave op determinism on for
    the rest of the process: TensorFlow has no way to turn it off.)

    >>> import numpy as np
    >>> def first_weights():
    ...     layer = keras.layers.Dense(2)
    ...     layer.build((None, 3))
    ...     return layer.kernel.numpy()
    >>> set_seed(7, deterministic=False)
    >>> weights, draw = first_weights(), np.random.rand()
    >>> set_seed(7, deterministic=False)
    >>> bool((first_weights() == weights).all()), bool(np.random.rand() == draw)
    (True, True)
    """
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _trim_csv(path: Path, epochs_done: int):
    """Keeps the rows of the epochs a resumed run does not repeat."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _weights_hint(batches, sample_weight) -> str:
    """`FiniteLoss`'s addition when rows are weighed: a weight multiplies its row's gradient too."""
    if sample_weight is None:
        return ""
    largest = "" if batches.streamed else f", up to {float(batches.arrays[sample_weight].max()):g}"
    return (f" or the sample weights (column {sample_weight!r}{largest}; `transform: [log]` in the schema "
            "reads log(1 + x))")


def _verbose(verbose):
    """Keras's progress bar on a terminal; one line per epoch into a file or pipe."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def fit(
    model,
    data,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    validation_data=None,
    catalog: Catalog | None = None,
    ks: Sequence[int] = (10, 100),
    checkpoint_dir=None,
    checkpoint_every: int | None = None,
    log_dir=None,
    csv_path=None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose="auto",
    early_stopping: EarlyStopping | None = None,
    streaming="auto",
    sample_weight: str | None = None,
) -> dict[str, list]:
    """Trains ``model`` (compiled) on a table for ``epochs``, resumably (see the module docstring).

    Args:
        model: a compiled `TwoTowerModelV2`.
        data: training interactions: a DataFrame, or a parquet (file or
            directory) or csv path; parquet larger than memory is streamed.
        epochs: by default `default_epochs` of the rows trained on (12 to 32,
            by how many rows each item has, fewer past 3.3M rows; docs/defaults.md).
        batch_size: by default `DEFAULT_BATCH_SIZE` (128).
        seed: the data order of epoch ``e`` is a function of ``(seed, e)``.
        shuffle: a new order of the rows every epoch.
        validation_data: held-out interactions; when given, every epoch logs
            ``val_loss`` and full-catalog ``val_recall@k`` for ``ks``.
        catalog: a `sr.data.Catalog` of every item: what ``validation_data``
            and early stopping rank, and what samplers that draw from the
            catalog (or take its item counts) are given.
        checkpoint_dir: save and resume here (`checkpoints.Checkpointer`).
        checkpoint_every: also save every N steps (None: epoch ends only); with
            the model's ``steps_per_execution`` S, after the S steps that reach each multiple.
        log_dir: TensorBoard logs. csv_path: a CSV row of metrics per epoch.
        callbacks: more Keras callbacks.
        verbose: Keras's; "auto" is a progress bar on a terminal and one line
            per epoch otherwise (2), with lines within an epoch that lasts long
            (`callbacks.EpochProgress`).
        early_stopping: an `EarlyStopping`: train on ``data`` less a
            validation split cut from it, stop when the split's metric stops
            improving (``epochs`` is then the maximum) and keep the best
            epoch's weights. It ranks ``catalog``.
        streaming: True, False or "auto" (see `sr.data.batches.streams`).
        sample_weight: a continuous column of the schema whose value weighs
            each row's loss, as Keras's sample weights do
            (`sr.training.weights`); None: every row weighs 1.

    Returns:
        The history of the epochs run in this call, {metric: [per epoch]};
        with early stopping also ``early_stopping_<monitor>`` per epoch and
        ``best_epoch`` (an int, 0-based).

    Example: a run with checkpoints; run again with the same arguments, it
    resumes after the epochs done (here: all of them, so nothing is left).

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> checkpoints = tempfile.mkdtemp()
    >>> history = fit(model, data, epochs=1, batch_size=500, checkpoint_dir=checkpoints, verbose=0)
    >>> list(history), len(history["loss"]), Checkpointer(checkpoints).latest()["global_step"]  # 2000 rows / 500
    (['loss'], 1, 4)
    >>> fit(model, data, epochs=1, batch_size=500, checkpoint_dir=checkpoints, verbose=0)
    {}
    """
    # A model first built here is a first training: what item_id_start asks is done to it.
    if not isinstance(model, keras.Model) or not hasattr(model, "schema"):
        raise TypeError(f"fit: model must be a schemaretrieval model (TwoTowerModel, ...), got {model!r}")
    fresh = not model.built
    if epochs is not None:
        epochs = integer(epochs, "fit", "epochs")
    batch_size = integer(DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "fit", "batch_size")
    if checkpoint_every is not None:
        checkpoint_every = integer(checkpoint_every, "fit", "checkpoint_every")
    seed = integer(seed, "fit", "seed", minimum=0)
    shuffle = flag(shuffle, "fit", "shuffle")
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"fit: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    ks = check_ks(ks, "fit: ks")
    if isinstance(callbacks, keras.callbacks.Callback):
        raise TypeError(f"fit: callbacks must be a list of callbacks, got one {type(callbacks).__name__}; "
                        f"give [{type(callbacks).__name__}(...)]")
    callbacks = list(callbacks or ())  # None, as Keras's fit takes it
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"fit: callbacks must be keras.callbacks.Callback instances, got {callback!r}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"fit: early_stopping must be a schemaretrieval.training.EarlyStopping or None, got "
                        f"{type(early_stopping).__name__}")
    if catalog is not None and not isinstance(catalog, Catalog):
        raise TypeError(f"fit: catalog= expects a sr.data.Catalog, got {type(catalog).__name__}")
    for name, folder in (("checkpoint_dir", checkpoint_dir), ("log_dir", log_dir)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            # else the error comes after an epoch's training, naming neither option
            raise ValueError(f"fit: {name}={os.fspath(folder)!r} is a file; expected a directory (made if missing)")
    if csv_path is not None and Path(csv_path).is_dir():
        raise ValueError(f"fit: csv_path={os.fspath(csv_path)!r} is a directory; expected a file")
    if sample_weight is not None:
        sample_weight = check_weight_column(model.schema, sample_weight)
    if getattr(model, "optimizer", None) is None:
        raise ValueError("fit: compile the model first (model.compile() takes the measured optimizer)")
    if (validation_data is not None or early_stopping is not None) and catalog is None:
        catalog = model.default_catalog("fit: validation_data= and early_stopping= rank a catalog")
    if catalog is not None:
        model.set_catalog(catalog)
    model.check_ready_to_train()

    if early_stopping is not None:
        # The split is cut from the rows in memory: early stopping reads the table whole.
        frame, source = read_frame(data, "fit")
        train, held_out = early_stopping.split(frame, model)
        to_arrays(held_out, model.schema, source=f"{source} (early stopping's validation split)")
        batches = Batches(train, model.schema, batch_size, shuffle=shuffle, seed=seed, source=source)
    else:
        train = data
        batches = Batches(data, model.schema, batch_size, shuffle=shuffle, seed=seed, streaming=streaming)
    if sample_weight is not None and not batches.streamed:
        check_weights(batches.arrays[sample_weight], sample_weight, batches.source)
    chosen = f"{batches.num_rows:,} rows, {epochs} epochs"
    if epochs is None:
        # a table in memory is counted from what Batches read, not read again
        rows, items = table_shape(train if batches.streamed else batches.arrays, model.candidate_id_column)
        epochs = default_epochs(rows, items)
        chosen = f"{rows:,} rows over {items:,} items, {epochs} epochs (the default, docs/defaults.md)"
    verbose = _verbose(verbose)
    start = getattr(model, "item_id_start", None) if fresh else None
    if verbose:
        rate = getattr(model.optimizer, "learning_rate", None)
        rate = f", learning rate {float(keras.ops.convert_to_numpy(rate)):g}" if rate is not None else ""
        print(f"fit: {chosen}, batches of {batch_size}{rate}")
        if start == "svd":
            print("fit: the item-id table starts from the SVD of these rows (item_id_start='svd')" if not
                  batches.streamed else "fit: the item-id table keeps its initialiser: item_id_start='svd' reads "
                  "the rows in memory, and these are streamed")
    if batches.streamed:
        start = None
    validation = None
    if validation_data is not None:
        validation = Batches(validation_data, model.schema, batch_size, source="validation_data").dataset()

    # Under a tf.distribute strategy (the model built in its scope), the
    # weights and the optimizer's slots are created in the same scope.
    with model.distribute_strategy.scope():
        if not model.built:
            model.build()
        if start == "svd":  # before a checkpoint's weights, which replace it on a resume
            start_item_ids(model, batches.arrays, source=batches.source)
        model.optimizer.build(model.trainable_variables)

    # early_stopping first: other early stopping also means other rows, and
    # restore names the first key that differs.
    meta = {"early_stopping": early_stopping.config() if early_stopping is not None else None,
            "batch_size": int(batch_size), "seed": int(seed), "rows": int(batches.num_rows), "shuffle": bool(shuffle),
            "sample_weight": sample_weight,
            # the columns, in order: equal shapes of other columns (a renamed feature) are another model
            "columns": list(model.schema.column_names) if getattr(model, "schema", None) is not None else None}
    checkpointer = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    epoch, step, loss_before = 0, 0, (0.0, 0)
    if early_stopping is not None:
        early_stopping.start(model)
    if checkpointer is not None:
        info = checkpointer.restore(model, meta)
        if info is not None:
            epoch, step = info["epoch"], info["step"]
            if step >= max(batches.steps, 1):
                raise ValueError(f"checkpoint {checkpoint_dir}: step {step} is past the epoch's {batches.steps} steps "
                                 "of this run; it is not a checkpoint of this data")
            loss_before = tuple(info.get("loss") or (0.0, 0))
            if early_stopping is not None and info["state"] is not None:
                early_stopping.set_state(info["state"])
            if verbose and epoch < epochs:
                print(f"resuming from {checkpoint_dir} at epoch {epoch + 1} of {epochs}, "
                      f"step {step} of {batches.steps}")
            elif verbose:
                print(f"{checkpoint_dir} holds a finished run ({epoch} epochs, epochs={epochs} asked): nothing left "
                      "to train, the model is the checkpoint's; raise the epochs to train on from it, or give another "
                      "checkpoint directory to start over")
    if csv_path is not None:
        csv_path = Path(csv_path)
        if epoch == 0 and step == 0:
            csv_path.unlink(missing_ok=True)
        else:
            _trim_csv(csv_path, epoch)

    # An optimizer with use_ema ends every model.fit on the moving average;
    # one model.fit per epoch must not restart each epoch from it. The
    # epoch-end callbacks see the average, the checkpoint the weights.
    # Keras's LossScaleOptimizer (mixed_float16) says use_ema=False itself
    # and passes finalize_variable_values on to the optimizer it wraps.
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    averaged = bool(getattr(inner, "use_ema", False))
    training_weights = EpochWeights(show_average=True)
    finite = FiniteLoss(epochs, lambda: _weights_hint(batches, sample_weight))
    history: dict[str, list] = {}
    users = AcrossEpochs(callbacks)  # one training for the user's callbacks, not one per epoch
    while (epoch < epochs and not (early_stopping is not None and early_stopping.stopped_epoch)
           and not users.stopped):
        cbs = [ResumedLoss(loss_before, batches.rows(step, batches.steps))] if step else []
        cbs.append(finite)
        if averaged:
            cbs.append(training_weights)
        if validation_data is not None:
            cbs.append(TopKCallback(validation_data, catalog, ks))
        if early_stopping is not None:
            # before the checkpoint, which saves the epoch's verdict with it
            cbs.extend(early_stopping.callbacks(held_out, train, catalog, model))
        cbs.append(users)
        if log_dir is not None:
            cbs.append(keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir)))
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            cbs.append(keras.callbacks.CSVLogger(os.fspath(csv_path), append=True))
        if averaged:
            cbs.append(RestoreEpochWeights(training_weights))
        if checkpointer is not None:
            cbs.append(CheckpointCallback(checkpointer, epoch, step, batches.steps, checkpoint_every, meta,
                                          early_stopping.state if early_stopping is not None else None,
                                          loss_before, rows=batches.rows))
        if verbose == 2:
            cbs.append(EpochProgress(epochs, batches.steps, step))
        cbs.append(OneEpoch())
        data_of_epoch = batches.epoch(epoch, skip=step)
        if sample_weight is not None:
            # rows in memory were checked above, once
            data_of_epoch = weighted(data_of_epoch, sample_weight, check=batches.streamed)
        with stream_errors_raised(), negative_weights_named(sample_weight, batches.source):
            result = model.fit(data_of_epoch, epochs=epochs, initial_epoch=epoch,
                               validation_data=validation, callbacks=cbs, verbose=verbose)
        if averaged:
            training_weights.restore()
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        epoch, step, loss_before = epoch + 1, 0, (0.0, 0)
    # Training goes on from the weights each epoch ended on and, as one
    # model.fit, ends on their moving average (also after a resume that
    # found every epoch done; before any step the average is still zeros).
    if averaged and int(model.optimizer.iterations.numpy()) > 0:
        with model.distribute_strategy.scope():
            model.optimizer.finalize_variable_values(model.trainable_variables)
    if early_stopping is not None:
        early_stopping.finish()  # the best epoch's weights back
    users.end({key: values[-1] for key, values in history.items() if values})
    if early_stopping is not None:
        history["best_epoch"] = int(early_stopping.best_epoch)
    return history

