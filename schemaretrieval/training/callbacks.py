"""The callbacks of a training run: full-catalog metrics per epoch, early stopping, and the
bookkeeping that lets one run be many one-epoch ``model.fit`` calls.

* `TopKCallback`: ``val_recall@k`` (and other ranking metrics) at each epoch's end.
* `EarlyStopping`: stops on a validation split cut from the training data.
* `EpochWeights` / `RestoreEpochWeights`: an optimizer that ends ``fit`` on a
  moving average of the weights must not restart each epoch from it.
* `ResumedLoss`: a resumed epoch logs the mean loss of all its steps.
* `FiniteLoss`: an epoch whose loss is NaN or inf ends the run with an error.
* `OneEpoch`: ends each one-epoch ``model.fit`` so that Keras numbers the epoch.
* `EpochProgress`: with Keras's one line per epoch, how far a long epoch is.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import pandas as pd

from schemaretrieval.arguments import flag, integer, number
from schemaretrieval.data.exclusions import Exclusions
from schemaretrieval.data.read import as_frame
from schemaretrieval.data.splits import random_split
from schemaretrieval.evaluation.metrics import check_ks, metrics_from_ranks
from schemaretrieval.progress import Progress

__all__ = ["TopKCallback", "EarlyStopping", "EpochWeights", "RestoreEpochWeights", "ResumedLoss", "FiniteLoss",
           "OneEpoch", "EpochProgress", "RANKING_METRICS", "EARLY_STOPPING_PREFIX"]


class TopKCallback(keras.callbacks.Callback):
    """Full-catalog metrics on validation data at each epoch's end, put into
    the epoch's logs as `val_recall@k` (so TensorBoard and CSVLogger placed
    after it record them). Also adds the learning rate as `learning_rate`.

    Args:
        data: validation interactions (DataFrame or path).
        candidates: the catalog, a `sr.data.Catalog` (or a table with one row per item).
        ks: cut-offs.
        metrics: which of evaluate_topk's metrics to log.
        exclude: an `sr.data.Exclusions`, or interactions, whose items are left
            out of the same user's ranking (`evaluate_topk(exclude=)`), e.g. the
            training rows.
        prefix: put before each metric's name in the logs.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 2000, seed=0)
    >>> train, valid = sr.data.random_split(data, 0.1, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> topk = TopKCallback(valid, sr.data.Catalog.from_interactions(data, schema), ks=[10], exclude=train)
    >>> history = model.fit(train, epochs=2, callbacks=[topk], verbose=0)
    >>> [0.0 <= value <= 1.0 for value in history.history["val_recall@10"]]
    [True, True]
    """

    def __init__(self, data, candidates=None, ks: Sequence[int] = (10, 100), metrics: Sequence[str] = ("recall",),
                 exclude=None, prefix: str = "val_"):
        super().__init__()
        self.data = data
        self.candidates = candidates
        self.ks = list(check_ks(ks, "TopKCallback: ks"))
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


# The names evaluate_topk reports, "recall" of "recall@10", ...
RANKING_METRICS = tuple(dict.fromkeys(key.split("@")[0] for key in metrics_from_ranks([0.0], ks=(1,))))
EARLY_STOPPING_PREFIX = "early_stopping_"


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping of `fit` on a validation split cut from its training data.

    `fit(model, data, epochs=E, early_stopping=EarlyStopping(...))` moves a
    random `validation_fraction` of `data`'s rows (per interaction, as
    `sr.data.random_split` with `seed`) to a validation split and trains on the
    rest. After each epoch it ranks the whole catalog for the split's rows,
    with each user's remaining training items excluded (``exclude_seen``), and
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
        ...                           catalog=sr.data.Catalog.from_interactions(data, schema))
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
        validation_fraction = number(validation_fraction, "EarlyStopping", "validation_fraction", above=0, below=1)
        metric, _, k = str(monitor).partition("@")
        if metric not in RANKING_METRICS or not k.isdigit() or int(k) < 1:
            raise ValueError(
                f"EarlyStopping: monitor must be '<metric>@<k>' with metric one of {', '.join(RANKING_METRICS)} "
                f"and k >= 1 (e.g. 'recall@10'), got {monitor!r}"
            )
        patience = integer(patience, "EarlyStopping", "patience", minimum=0)
        min_delta = number(min_delta, "EarlyStopping", "min_delta", at_least=0)
        exclude_seen = flag(exclude_seen, "EarlyStopping", "exclude_seen")
        restore_best_weights = flag(restore_best_weights, "EarlyStopping", "restore_best_weights")
        seed = integer(seed, "EarlyStopping", "seed", minimum=0)
        verbose = integer(verbose, "EarlyStopping", "verbose", minimum=0)
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
        frame = as_frame(data, "EarlyStopping.split").reset_index(drop=True)
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

    def callbacks(self, validation, train, candidates, model) -> list[keras.callbacks.Callback]:
        """The monitor's `TopKCallback`, then this (the training rows' exclusions built once)."""
        exclude = (Exclusions.from_interactions(train, model.query_id_column, model.candidate_id_column)
                   if self.exclude_seen else None)
        return [TopKCallback(validation, candidates, [self.k], [self.metric], exclude=exclude,
                             prefix=EARLY_STOPPING_PREFIX), self]

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


class EpochWeights(keras.callbacks.Callback):
    """For an optimizer that keeps a moving average of the weights (Keras's
    `use_ema`), whose `fit` ends by writing the average into them: keeps
    the weights each epoch ends on, so that `restore` puts them back and
    the next epoch trains on from them. With `show_average`, it also writes
    the average in at each epoch's end, for the callbacks after it (the
    logs, early stopping) to see what `fit` would end on there.

    >>> EpochWeights(show_average=True).show_average
    True
    """

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


class RestoreEpochWeights(keras.callbacks.Callback):
    """At each epoch's end, the weights `EpochWeights` kept back in place
    (for a checkpoint, which must resume from them).

    >>> RestoreEpochWeights(EpochWeights()).training_weights.show_average
    False
    """

    def __init__(self, training_weights: EpochWeights):
        super().__init__()
        self.training_weights = training_weights

    def on_epoch_end(self, epoch, logs=None):
        self.training_weights.restore()


class ResumedLoss(keras.callbacks.Callback):
    """At the end of a resumed epoch, ``logs["loss"]`` becomes the mean over all of the
    epoch's rows, as Keras's mean of an uninterrupted epoch (weighted by each batch's
    rows): ``loss_before = (sum, rows)`` of the steps run before the resume, with
    Keras's mean of the ``rows_after`` rows of this call. Place it before the loggers.

    >>> callback = ResumedLoss((6.0, 3), rows_after=1)
    >>> logs = {"loss": 2.0}  # the one row after the resume
    >>> callback.on_epoch_end(0, logs)
    >>> logs["loss"]  # (6 + 2) / 4
    2.0
    """

    def __init__(self, loss_before, rows_after: int):
        super().__init__()
        self.loss_before = loss_before
        self.rows_after = int(rows_after)

    def on_epoch_end(self, epoch, logs=None):
        total, rows = self.loss_before
        if logs is not None and "loss" in logs and rows:
            logs["loss"] = (total + float(logs["loss"]) * self.rows_after) / (rows + self.rows_after)


class FiniteLoss(keras.callbacks.Callback):
    """Raises at the end of an epoch whose mean loss is NaN or inf: one such step leaves
    NaN in the weights, and every later epoch, checkpoint and ranking would carry it.
    The message says to lower the learning rate (the model's, when it has one);
    ``hint()``, asked only then, adds what else to lower (" or the sample weights ...").
    Place it before any checkpoint, which then keeps the last finite epoch.

    >>> FiniteLoss(epochs=4).on_epoch_end(1, {"loss": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: fit: the loss is nan after epoch 2 of 4: training diverged and the model's weights are no longer usable; lower the learning rate
    """

    def __init__(self, epochs: int, hint: Callable[[], str] | None = None):
        super().__init__()
        self.epochs, self.hint = int(epochs), hint

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if np.isfinite(loss):
            return
        rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        rate = "" if rate is None else f" ({float(keras.ops.convert_to_numpy(rate)):g})"
        raise ValueError(f"fit: the loss is {loss} after epoch {epoch + 1} of {self.epochs}: training diverged "
                         f"and the model's weights are no longer usable; lower the learning rate{rate}"
                         f"{self.hint() if self.hint else ''}")


class OneEpoch(keras.callbacks.Callback):
    """Ends a ``model.fit(epochs=E, initial_epoch=e)`` after epoch ``e``: the progress
    line reads "Epoch e+1/E" while each epoch has its own data order.

    >>> OneEpoch().stop_after
    True
    """

    stop_after = True

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class EpochProgress(keras.callbacks.Callback):
    """With Keras's one line per epoch (``verbose=2``, the output not a terminal), which
    says nothing until the epoch ends: a `schemaretrieval.progress.Progress` of the
    epoch's steps (a line at each quarter of an epoch that outlasts
    ``progress.LINES_AFTER_S``; a bar when stderr is a terminal). ``first_step``:
    the steps of a resumed epoch already run.

    >>> progress = EpochProgress(epochs=12, steps=313, first_step=87)
    >>> progress.on_epoch_begin(2)
    >>> progress.progress.what, progress.progress.done, progress.progress.total
    ('epoch 3/12', 87, 313)
    >>> progress.on_train_batch_end(15)  # Keras's batch 15 of this call: 16 steps (steps_per_execution)
    >>> progress.progress.done
    103
    >>> progress.on_epoch_end(2)
    """

    def __init__(self, epochs: int, steps: int, first_step: int = 0):
        super().__init__()
        self.epochs, self.steps, self.first_step = int(epochs), int(steps), int(first_step)
        self.progress = None

    def on_epoch_begin(self, epoch, logs=None):
        self.progress = Progress(f"epoch {epoch + 1}/{self.epochs}", self.steps, unit="steps",
                                 initial=self.first_step, summary=False)

    def on_train_batch_end(self, batch, logs=None):
        # called after each `steps_per_execution` steps, `batch` the last of them
        if self.progress is not None:
            self.progress.update(self.first_step + batch + 1 - self.progress.done)

    def on_epoch_end(self, epoch, logs=None):
        if self.progress is not None:
            self.progress.close()
