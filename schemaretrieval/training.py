"""Training that survives being killed, repeats itself and reports as it goes.

`fit(model, train, ...)` is `model.fit` one epoch at a time over a data order
that is a function of `(seed, epoch)` alone, so a run can stop anywhere and
resume where it stopped:

* **checkpoints** (`checkpoint_dir`, `checkpoint_every`): every N steps and
  at each epoch's end, the model's variables (towers, sampler state such as
  the frequency estimate or the cross-batch bank, seed generators), the
  optimizer's (step count, moments) and the data position (epoch, step
  within it) are written atomically; a later `fit` with the same arguments
  restores the newest one and skips the batches of the epoch already seen.
* **reproducibility** (`set_seed`): one seed fixes the initialisation, the
  shuffling and the samplers' draws; with op determinism a CPU run repeats
  bit for bit.
* **logging** (`log_dir`, `csv_path`, `TopKCallback`): TensorBoard and a CSV
  row per epoch, with full-catalog recall@k on validation data.
* **bad rows** (`drop_bad_rows`): rows with non-finite values or ids outside
  the schema's domain are counted and left out instead of ending the run.
* **early stopping** (`EarlyStopping`): a validation split cut from the
  training data decides when to stop and which epoch's weights to keep;
  `validation_data` (the test data) never does.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from schemaretrieval import evaluation
from schemaretrieval.data import tables
from schemaretrieval.data.splits import random_split
from schemaretrieval.models import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS

__all__ = [
    "set_seed",
    "epoch_dataset",
    "Checkpointer",
    "CheckpointCallback",
    "TopKCallback",
    "EarlyStopping",
    "drop_bad_rows",
    "fit",
]

LATEST = "latest.json"


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras from one integer and, with
    `deterministic`, turns on TensorFlow's op determinism (ops without a
    deterministic kernel then raise instead of varying).

    Example: the same seed, the same initial weights and draws.
    (`deterministic=True`, the default, would leave op determinism on for
    the rest of the process: TensorFlow has no way to turn it off.)

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


# --------------------------------------------------------------------------
# Data order: a function of (seed, epoch)
# --------------------------------------------------------------------------

def epoch_order(num_rows: int, seed: int, epoch: int) -> tf.Tensor:
    """The permutation of the rows in `epoch`: stateless, so the same
    `(seed, epoch)` gives the same order in any process."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(num_rows, dtype=tf.int64), seed=tf.constant([int(seed), int(epoch)], tf.int64)
    )


def epoch_dataset(arrays, batch_size: int, seed: int, epoch: int, skip: int = 0, shuffle: bool = True):
    """The batches of one epoch from validated arrays (`tables.to_arrays`),
    rows in `epoch_order(seed, epoch)`, the first `skip` batches left out.

    Example: every row once per epoch, the columns of a row kept together,
    and a resumed epoch (`skip`) goes on with the same order.

    >>> arrays = {"user_id": np.arange(10), "item_id": np.arange(10) + 100}
    >>> batches = [{name: t.numpy().tolist() for name, t in batch.items()}
    ...            for batch in epoch_dataset(arrays, batch_size=4, seed=0, epoch=0)]
    >>> [len(batch["user_id"]) for batch in batches]
    [4, 4, 2]
    >>> sorted(sum((batch["user_id"] for batch in batches), [])) == list(range(10))
    True
    >>> all(item - user == 100 for b in batches for user, item in zip(b["user_id"], b["item_id"]))
    True
    >>> resumed = epoch_dataset(arrays, batch_size=4, seed=0, epoch=0, skip=1)
    >>> [batch["user_id"].numpy().tolist() for batch in resumed] == [b["user_id"] for b in batches[1:]]
    True
    """
    tensors = {name: tf.constant(values) for name, values in arrays.items()}
    n = len(next(iter(arrays.values())))
    order = epoch_order(n, seed, epoch) if shuffle else tf.range(n, dtype=tf.int64)
    batches = -(-n // batch_size)

    def take(b):
        index = order[b * batch_size : tf.minimum((b + 1) * batch_size, n)]
        return {name: tf.gather(t, index) for name, t in tensors.items()}

    ds = tf.data.Dataset.range(int(skip), batches).map(take, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------

def _state_variables(model):
    """Every variable a resumed run needs, in a fixed order: the model's
    (trainable, non-trainable, seed generators) then the optimizer's."""
    seen, out = set(), []
    for v in list(model.variables) + list(model.optimizer.variables if model.optimizer is not None else []):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


class Checkpointer:
    """Writes and restores training state in `directory`.

    Each checkpoint is one `.npz` of the variables (written to a temporary
    name and renamed, so a kill mid-write leaves the previous one intact)
    and `latest.json` names the newest with its data position
    `{"epoch", "step", "global_step"}` and the run's `meta` (batch size,
    seed, rows) that must match to resume. The last `keep` are kept.

    `save(..., state=(info, arrays))` keeps more of the run in the same
    checkpoint (fit's early stopping: its JSON-able counters and the best
    epoch's weights); `restore` hands it back as `info["state"]`.

    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> _ = model.layers[0].kernel.assign([[1.0], [2.0]])
    >>> checkpointer = Checkpointer(tempfile.mkdtemp())
    >>> checkpointer.save(model, epoch=1, step=0, global_step=10, meta={"batch_size": 32}).name
    'ckpt-000000010.npz'
    >>> _ = model.layers[0].kernel.assign([[0.0], [0.0]])
    >>> info = checkpointer.restore(model, meta={"batch_size": 32})
    >>> info["epoch"], model.layers[0].kernel.numpy().ravel().tolist()
    (1, [1.0, 2.0])
    >>> checkpointer.restore(model, meta={"batch_size": 64})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: checkpoint ...: it was written with batch_size=32, this run has batch_size=64; ...
    """

    def __init__(self, directory, keep: int = 2):
        self.directory = Path(directory)
        self.keep = int(keep)

    def latest(self) -> dict | None:
        path = self.directory / LATEST
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def save(self, model, epoch: int, step: int, global_step: int, meta: dict | None = None,
             state: tuple[dict, list] | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        variables = _state_variables(model)
        state_info, state_arrays = state if state is not None else (None, [])
        name = f"ckpt-{global_step:09d}.npz"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                **{f"v{i}": np.asarray(keras.ops.convert_to_numpy(v.value)) for i, v in enumerate(variables)},
                **{f"s{i}": np.asarray(a) for i, a in enumerate(state_arrays)},
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / name)
        info = {
            "file": name,
            "epoch": int(epoch),
            "step": int(step),
            "global_step": int(global_step),
            "paths": [v.path for v in variables],
            "shapes": [[int(d) for d in v.shape] for v in variables],
            "meta": meta or {},
            "state": state_info,
            "state_arrays": len(state_arrays),
        }
        tmp = self.directory / f".{LATEST}.tmp"
        tmp.write_text(json.dumps(info, indent=1))
        os.replace(tmp, self.directory / LATEST)
        for old in sorted(self.directory.glob("ckpt-*.npz"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return self.directory / name

    def restore(self, model, meta: dict | None = None) -> dict | None:
        """Loads the newest checkpoint into `model` (built, optimizer built);
        returns its info, or None when there is none. A checkpoint of
        another run (different variables or `meta`) is an error. The `state`
        saved with it is `info["state"]`, `(info, arrays)` or None."""
        info = self.latest()
        if info is None:
            return None
        for key, value in (meta or {}).items():
            if key in info["meta"] and info["meta"][key] != value:
                raise ValueError(
                    f"checkpoint {self.directory}: it was written with {key}={info['meta'][key]!r}, this run has "
                    f"{key}={value!r}; resume with the same arguments or use another --checkpoint-dir"
                )
        variables = _state_variables(model)
        # Paths carry the layers' auto-numbered names, which differ between
        # models built in one process: the shapes identify the variables.
        if [[int(d) for d in v.shape] for v in variables] != info["shapes"]:
            raise ValueError(
                f"checkpoint {self.directory}: its variables do not match this model's "
                f"({len(info['paths'])} saved, {len(variables)} here); it belongs to another model"
            )
        with np.load(self.directory / info["file"]) as saved:
            for i, v in enumerate(variables):
                value = saved[f"v{i}"]
                if tuple(value.shape) != tuple(v.shape):
                    raise ValueError(f"checkpoint {self.directory}: variable {v.path} has shape {value.shape}, expected {v.shape}")
                v.assign(value)
            arrays = [saved[f"s{i}"] for i in range(info.get("state_arrays", 0))]
        info["state"] = (info["state"], arrays) if info.get("state") is not None else None
        return info


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every` steps (when given) and at the end of each epoch,
    with `state()` (when given) as the checkpoint's `state`.

    `epoch` and `first_step` say where the data order starts (a resumed
    epoch starts past its first step); the positions saved count from there.

    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> checkpointer = Checkpointer(tempfile.mkdtemp(), keep=3)
    >>> save = CheckpointCallback(checkpointer, epoch=0, first_step=0, steps_per_epoch=4, every=2)
    >>> x, y = np.ones((32, 2), "float32"), np.ones((32, 1), "float32")
    >>> _ = model.fit(x, y, batch_size=8, epochs=1, callbacks=[save], verbose=0)
    >>> sorted(path.name for path in checkpointer.directory.glob("ckpt-*"))
    ['ckpt-000000002.npz', 'ckpt-000000004.npz']
    >>> {key: checkpointer.latest()[key] for key in ("epoch", "step", "global_step")}
    {'epoch': 1, 'step': 0, 'global_step': 4}
    """

    def __init__(self, checkpointer: Checkpointer, epoch: int, first_step: int, steps_per_epoch: int, every=None, meta=None,
                 state=None):
        super().__init__()
        self.checkpointer = checkpointer
        self.epoch = epoch
        self.first_step = first_step
        self.steps_per_epoch = steps_per_epoch
        self.every = every
        self.meta = meta
        self.state = state or (lambda: None)

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        global_step = self.epoch * self.steps_per_epoch + step
        if self.every and global_step % self.every == 0 and step < self.steps_per_epoch:
            self.checkpointer.save(self.model, self.epoch, step, global_step, self.meta, self.state())

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointer.save(self.model, epoch + 1, 0, (epoch + 1) * self.steps_per_epoch, self.meta, self.state())


# --------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------

class TopKCallback(keras.callbacks.Callback):
    """Full-catalog metrics on validation data at each epoch's end, put into
    the epoch's logs as `val_recall@k` (so TensorBoard and CSVLogger placed
    after it record them). Also adds the learning rate as `learning_rate`.

    Args:
        data: validation interactions (DataFrame or path).
        candidates: the catalog (see `TwoTowerModelV2.catalog`).
        ks: cut-offs.
        metrics: which of evaluate_topk's metrics to log.
        exclude: interactions whose items are left out of the same user's
            ranking (`evaluate_topk(exclude=)`), e.g. the training rows.
        prefix: put before each metric's name in the logs.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 2000, seed=0)
    >>> train, valid = sr.data.random_split(data, 0.1, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> topk = TopKCallback(valid, sr.data.candidate_table(data, schema), ks=[10], exclude=train)
    >>> history = model.fit(train, epochs=2, callbacks=[topk], verbose=0)
    >>> [0.0 <= value <= 1.0 for value in history.history["val_recall@10"]]
    [True, True]
    """

    def __init__(self, data, candidates=None, ks: Sequence[int] = (10, 100), metrics: Sequence[str] = ("recall",),
                 exclude=None, prefix: str = "val_"):
        super().__init__()
        self.data = data
        self.candidates = candidates
        self.ks = list(ks)
        self.metrics = tuple(metrics)
        self.exclude = exclude
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        results = self.model.evaluate_topk(self.data, self.candidates, ks=self.ks, exclude=self.exclude)
        for key, value in results.items():
            if key.split("@")[0] in self.metrics:
                logs[f"{self.prefix}{key}"] = float(value)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


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


# --------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------

# The names evaluate_topk reports, "recall" of "recall@10", ...
RANKING_METRICS = tuple(dict.fromkeys(key.split("@")[0] for key in evaluation.metrics_from_ranks([0.0], ks=(1,))))
EARLY_STOPPING_PREFIX = "early_stopping_"


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping of `fit` on a validation split cut from its training data.

    `fit(model, data, epochs=E, early_stopping=EarlyStopping(...))` moves a
    random `validation_fraction` of `data`'s rows (per interaction, as
    `sr.data.random_split` with `seed`) to a validation split and trains on the
    rest. After each epoch it ranks the whole catalog for the split's rows,
    with each user's remaining training items excluded (`exclude_seen`), and
    logs `monitor` as `early_stopping_<monitor>` (history, CSV, TensorBoard)
    with one printed line. It is Keras's `EarlyStopping` (`mode="max"`), kept
    across fit's one-epoch `model.fit` calls: training ends once the monitor
    has not improved by more than `min_delta` for `patience` epochs, so
    `epochs` is the maximum, and with `restore_best_weights` the best
    epoch's weights come back at the end (every model weight, the samplers'
    state included; the optimizer keeps its last state). `validation_data`,
    the test data, is never looked at.

    Cold rows: a split row whose user or item does not occur in the rest
    would score an embedding that training never updates, so it goes back
    to the training rows; the split holds only users and items the model
    trains on and can be smaller than `validation_fraction` asks (much
    smaller when most users have one or two rows).

    After `fit`: `best_epoch` (0-based, the CSV's `epoch`), `best` (its
    value), `stopped_epoch` (0 when it ran to `epochs`), `wait`. With
    `checkpoint_dir` this state is saved in every checkpoint, so a resumed
    run stops where an uninterrupted one would, and a stopped run stays
    stopped.

    Args:
        validation_fraction: the share of rows cut out, in (0, 1).
        monitor: `"<metric>@<k>"`, metric one of recall, ndcg, mrr,
            precision, map (higher is better).
        patience: epochs without improvement before stopping, >= 0.
        min_delta: the smallest rise that counts as an improvement, >= 0.
        exclude_seen: leave each user's training items out of their
            ranking, as `evaluate_topk(exclude=train)`.
        restore_best_weights: end with the best epoch's weights.
        seed: the split's seed.
        verbose: 0 prints nothing, 1 a line per epoch and Keras's messages.

    Example:
        >>> import keras, schemaretrieval as sr
        >>> schema = sr.load_schema("schemas/synthetic.yaml")
        >>> data = sr.data.synthetic(schema, 1000, seed=0)
        >>> model = sr.TwoTowerModel(schema)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-2))
        >>> stop = sr.training.EarlyStopping(0.1, "recall@10", patience=1, verbose=0)
        >>> history = sr.training.fit(model, data, epochs=20, batch_size=128, verbose=0, early_stopping=stop,
        ...                           candidates=sr.data.candidate_table(data, schema))
        >>> len(history["early_stopping_recall@10"]) <= 20, history["best_epoch"] == stop.best_epoch
        (True, True)
    """

    def __init__(
        self,
        validation_fraction: float = 0.1,
        monitor: str = "recall@10",
        patience: int = 2,
        min_delta: float = 0.0,
        exclude_seen: bool = True,
        restore_best_weights: bool = True,
        seed: int = 0,
        verbose: int = 1,
    ):
        if not isinstance(validation_fraction, (int, float)) or not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"EarlyStopping: validation_fraction must be in (0, 1), got {validation_fraction!r}")
        metric, _, k = str(monitor).partition("@")
        if metric not in RANKING_METRICS or not k.isdigit() or int(k) < 1:
            raise ValueError(
                f"EarlyStopping: monitor must be '<metric>@<k>' with metric one of {', '.join(RANKING_METRICS)} "
                f"and k >= 1 (e.g. 'recall@10'), got {monitor!r}"
            )
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        super().__init__(
            monitor=EARLY_STOPPING_PREFIX + monitor, mode="max", patience=patience, min_delta=min_delta,
            verbose=verbose, restore_best_weights=restore_best_weights,
        )
        self.validation_fraction = float(validation_fraction)
        self.metric, self.k = metric, int(k)
        self.exclude_seen = bool(exclude_seen)
        self.seed = int(seed)
        super().on_train_begin()  # the state before any epoch: best None, wait 0

    def config(self) -> dict:
        """What a checkpoint's run must share to be resumed with this one."""
        return {
            "validation_fraction": self.validation_fraction, "monitor": f"{self.metric}@{self.k}",
            "patience": self.patience, "min_delta": self.min_delta, "exclude_seen": self.exclude_seen,
            "restore_best_weights": self.restore_best_weights, "seed": self.seed,
        }

    def split(self, data, model) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(training rows, validation split) of `data`, rows in their order;
        together they are `data`. Cold rows stay in training (see above)."""
        frame = tables.as_frame(data, "EarlyStopping.split").reset_index(drop=True)
        user, item = model.query_id_column, model.candidate_id_column
        if self.exclude_seen and user is None:
            raise ValueError(
                "EarlyStopping: exclude_seen=True needs a column tagged user_id to know each user's training "
                "items; the schema has none, so pass exclude_seen=False"
            )
        rows = pd.DataFrame({"row": np.arange(len(frame))})
        held = np.zeros(len(frame), dtype=bool)
        held[random_split(rows, self.validation_fraction, self.seed)[1]["row"].to_numpy()] = True
        rest = frame[~held]
        cold = ~frame[item].isin(rest[item]).to_numpy()
        if user is not None:
            cold |= ~frame[user].isin(rest[user]).to_numpy()
        held &= ~cold
        if not held.any():
            raise ValueError(
                f"EarlyStopping: the validation split of {len(frame)} rows is empty (validation_fraction="
                f"{self.validation_fraction}; its rows' users or items occur nowhere else); give more data or "
                "a larger validation_fraction"
            )
        return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)

    def callbacks(self, validation, train, candidates) -> list[keras.callbacks.Callback]:
        """The monitor's `TopKCallback`, then this."""
        return [
            TopKCallback(validation, candidates, [self.k], [self.metric], exclude=train if self.exclude_seen else None,
                         prefix=EARLY_STOPPING_PREFIX),
            self,
        ]

    # fit calls model.fit once per epoch: Keras's per-call reset and
    # restore happen once per run instead (start / finish).
    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def start(self, model):
        """Before a run's first epoch (a resumed run then sets its state)."""
        self.set_model(model)  # a stopped run that is resumed runs no epoch to be given it
        super().on_train_begin()

    def finish(self):
        """After a run's last epoch: the best weights back."""
        super().on_train_end()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        value = (logs or {}).get(self.monitor)
        if self.verbose and value is not None:
            status = "stopping" if self.model.stop_training else f"{self.wait} of {self.patience} epochs without improvement"
            print(f"epoch {epoch + 1}: validation split {self.metric}@{self.k} {value:.4f}, best {self.best:.4f} "
                  f"at epoch {self.best_epoch + 1}; {status}")

    def state(self) -> tuple[dict, list]:
        """(counters, best weights): what a checkpoint keeps of this run."""
        counters = {"best": None if self.best is None else float(self.best), "best_epoch": int(self.best_epoch),
                    "wait": int(self.wait), "stopped_epoch": int(self.stopped_epoch)}
        return counters, [np.asarray(w) for w in (self.best_weights or [])]

    def set_state(self, state: tuple[dict, list]):
        counters, weights = state
        self.best, self.best_epoch = counters["best"], counters["best_epoch"]
        self.wait, self.stopped_epoch = counters["wait"], counters["stopped_epoch"]
        self.best_weights = list(weights) or None


# --------------------------------------------------------------------------
# Bad rows
# --------------------------------------------------------------------------

def drop_bad_rows(frame: pd.DataFrame, schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows `tables.to_arrays` would reject for their values, left out
    and counted: missing / non-finite / non-numeric values, categorical ids
    outside the schema's domain, list elements outside it or lists longer
    than value_count max. Returns (kept rows, {column: rows dropped for it}).
    A missing column is not a bad row and still ends with an error.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 5, seed=0)
    >>> data.loc[1, "user_age"] = float("nan")
    >>> data.loc[3, "item_id"] = 3000  # the schema's domain is 0..2999
    >>> kept, dropped = drop_bad_rows(data, schema)
    >>> len(kept), dropped
    (3, {'user_age': 1, 'item_id': 1})
    >>> len(sr.data.to_arrays(kept, schema)["item_id"])  # what to_arrays would have rejected is gone
    3
    """
    bad = np.zeros(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for col in schema:
        kind = tables._column_kind(col)
        if kind is None or col.name not in frame.columns:
            continue
        values = frame[col.name]
        if tables._is_list_column(col):
            column_bad = np.fromiter((_bad_list(v, col) for v in values), dtype=bool, count=len(values))
        else:
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            column_bad = ~np.isfinite(numeric)
            if kind == tables._CATEGORICAL:
                with np.errstate(invalid="ignore"):
                    column_bad |= numeric != np.floor(numeric)
                    domain = tables._column_domain(col)
                    lo, hi = domain if domain is not None else (0, np.inf)
                    column_bad |= (numeric < lo) | (numeric > hi)
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    column_bad |= ~np.isfinite(numeric.astype("float32"))
        new = column_bad & ~bad
        if new.any():
            counts[col.name] = int(new.sum())
        bad |= column_bad
    return frame.loc[~bad].reset_index(drop=True), counts


def _bad_list(value, col) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False  # an empty list
    try:
        items = np.asarray(value, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        return not isinstance(value, str)  # text lists are parsed (and checked) by to_arrays
    if not np.isfinite(items).all() or (items != np.floor(items)).any():
        return True
    domain = tables._column_domain(col)
    lo, hi = domain if domain is not None else (0, np.inf)
    if ((items < lo) | (items > hi)).any():
        return True
    count = tables._column_value_count(col)
    return count is not None and count[1] is not None and len(items) > count[1]


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------

class _TrainingWeights(keras.callbacks.Callback):
    """For an optimizer that keeps a moving average of the weights (Keras's
    `use_ema`), whose `fit` ends by writing the average into them: keeps
    the weights each epoch ends on, so that `restore` puts them back and
    the next epoch trains on from them. With `show_average`, it also writes
    the average in at each epoch's end, for the callbacks after it (the
    logs, early stopping) to see what `fit` would end on there."""

    def __init__(self, show_average: bool = False):
        super().__init__()
        self.show_average = show_average

    def on_epoch_end(self, epoch, logs=None):
        variables = self.model.trainable_variables
        self.values = [keras.ops.convert_to_numpy(v) for v in variables]
        if self.show_average:
            self.model.optimizer.finalize_variable_values(variables)

    def restore(self):
        for variable, value in zip(self.model.trainable_variables, self.values):
            variable.assign(value)


class _RestoreTrainingWeights(keras.callbacks.Callback):
    """At each epoch's end, the weights `_TrainingWeights` kept back in place
    (for a checkpoint, which must resume from them)."""

    def __init__(self, training_weights: _TrainingWeights):
        super().__init__()
        self.training_weights = training_weights

    def on_epoch_end(self, epoch, logs=None):
        self.training_weights.restore()


def fit(
    model,
    data,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int | None = None,
    seed: int = 0,
    validation_data=None,
    candidates=None,
    ks: Sequence[int] = (10, 100),
    checkpoint_dir=None,
    checkpoint_every: int | None = None,
    log_dir=None,
    csv_path=None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    shuffle: bool = True,
    verbose="auto",
    early_stopping: EarlyStopping | None = None,
) -> dict[str, list]:
    """Trains `model` (compiled) on a table for `epochs`, resumably.

    Args:
        model: a compiled `TwoTowerModelV2`.
        data: training interactions (DataFrame or path).
        epochs, batch_size: as `Model.fit`; by default the measured ones,
            `DEFAULT_EPOCHS` (12) and `DEFAULT_BATCH_SIZE` (128), as
            `TwoTowerModelV2.fit` takes them (docs/quality.md).
        seed: the data order of epoch e is `epoch_order(seed, e)`.
        validation_data: held-out interactions; when given, every epoch logs
            `val_loss` and full-catalog `val_recall@k` for `ks`.
        candidates: the catalog for those metrics (see `model.catalog`).
        checkpoint_dir: save and resume here (see `Checkpointer`).
        checkpoint_every: also save every N steps (None: epoch ends only).
        log_dir: TensorBoard logs.
        csv_path: a CSV row of metrics per epoch.
        callbacks: more Keras callbacks.
        early_stopping: an `EarlyStopping`: train on `data` less a
            validation split cut from it, stop when the split's metric stops
            improving (`epochs` is then the maximum) and keep the best
            epoch's weights. `candidates` is the catalog it ranks.

    Returns:
        The history of the epochs run in this call, {metric: [per epoch]};
        with early stopping also `early_stopping_<monitor>` per epoch and
        `best_epoch` (an int, 0-based).

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
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"fit: checkpoint_every must be >= 1, got {checkpoint_every}")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(
            f"fit: early_stopping must be a schemaretrieval.training.EarlyStopping or None, got "
            f"{type(early_stopping).__name__}"
        )
    frame, source = tables._frame_from(data, "fit")
    seen = frame
    if early_stopping is not None:
        frame, held_out = early_stopping.split(frame, model)
        tables.to_arrays(held_out, model.schema, source=f"{source} (early stopping's validation split)")
        catalog = model.catalog(candidates)  # fails now, not after the first epoch, without one
    # Checked first, so that a bad row is named by its file and row, not as
    # the catalog's; the samplers' catalog and item counts, and the history,
    # come from the rows trained on.
    arrays = tables.to_arrays(frame, model.schema, source=source)
    model._hand_over_catalog(frame)
    model._fill_history(frame)
    rows = len(next(iter(arrays.values())))
    steps = -(-rows // batch_size)
    validation = None
    if validation_data is not None:
        validation = tables.to_tf_dataset(validation_data, model.schema, batch_size)

    if not model.built:
        model.build()
    if getattr(model, "optimizer", None) is None:
        raise ValueError("fit: compile the model first (model.compile() takes the measured optimizer)")
    model.optimizer.build(model.trainable_variables)

    # early_stopping first: other early stopping also means other rows, and
    # restore names the first key that differs.
    meta = {"early_stopping": early_stopping.config() if early_stopping is not None else None,
            "batch_size": int(batch_size), "seed": int(seed), "rows": int(rows), "shuffle": bool(shuffle)}
    checkpointer = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    epoch, step = 0, 0
    if early_stopping is not None:
        early_stopping.start(model)
    if checkpointer is not None:
        info = checkpointer.restore(model, meta)
        if info is not None:
            epoch, step = info["epoch"], info["step"]
            if early_stopping is not None and info["state"] is not None:
                early_stopping.set_state(info["state"])
            if verbose:
                print(f"resuming from {checkpoint_dir}: epoch {epoch + 1}, step {step} of {steps}")
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
    training_weights = _TrainingWeights(show_average=True)
    history: dict[str, list] = {}
    while epoch < epochs and not (early_stopping is not None and early_stopping.stopped_epoch):
        cbs = [training_weights] if averaged else []
        if validation_data is not None:
            cbs.append(TopKCallback(validation_data, candidates, ks))
        if early_stopping is not None:
            # before the checkpoint, which saves the epoch's verdict with it
            cbs.extend(early_stopping.callbacks(held_out, frame, catalog))
        cbs.extend(callbacks)
        if log_dir is not None:
            cbs.append(keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir)))
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            cbs.append(keras.callbacks.CSVLogger(os.fspath(csv_path), append=True))
        if averaged:
            cbs.append(_RestoreTrainingWeights(training_weights))
        if checkpointer is not None:
            cbs.append(CheckpointCallback(checkpointer, epoch, step, steps, checkpoint_every, meta,
                                          early_stopping.state if early_stopping is not None else None))
        dataset = epoch_dataset(arrays, batch_size, seed, epoch, skip=step, shuffle=shuffle)
        result = model.fit(
            dataset, epochs=epoch + 1, initial_epoch=epoch, validation_data=validation, callbacks=cbs, verbose=verbose
        )
        if averaged:
            training_weights.restore()
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        epoch, step = epoch + 1, 0
    # Training goes on from the weights each epoch ended on and, as one
    # model.fit, ends on their moving average (also after a resume that
    # found every epoch done; before any step the average is still zeros).
    if averaged and int(model.optimizer.iterations) > 0:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    # Each epoch's model.fit on a tf.data dataset forgets the table; all of
    # data, the split included, is what evaluate_topk(exclude_seen=True)
    # leaves out of a later ranking.
    model._remember_seen(seen)
    if early_stopping is not None:
        early_stopping.finish()  # the best epoch's weights back
        history["best_epoch"] = int(early_stopping.best_epoch)
    return history
