"""Checkpoints of a training run: written atomically, restored exactly, kept across a kill.

`Checkpointer` writes the model's variables (towers, sampler state such as
the frequency estimate or the cross-batch bank, seed generators), the
optimizer's (step count, moments) and the data position (epoch, step within
it) in one ``.npz``; `CheckpointCallback` saves every N steps and at each
epoch's end. `schemaretrieval.training.fit` restores the newest checkpoint
and goes on from the batch after the last one saved.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras
import numpy as np

__all__ = ["LATEST", "Checkpointer", "CheckpointCallback", "state_variables"]

#: The file naming a directory's newest checkpoint.
LATEST = "latest.json"


def state_variables(model) -> list:
    """Every variable a resumed run needs, in a fixed order: the model's
    (trainable, non-trainable, seed generators) then the optimizer's.

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> model.optimizer.build(model.trainable_variables)
    >>> len(state_variables(model)) > len(model.variables)
    True
    """
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
    `save(..., loss=(sum, rows))` keeps the loss of the epoch's steps so
    far (summed over their rows), `info["loss"]`, so that a resumed epoch logs
    the mean of all of them.

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
        """The newest checkpoint's info from `latest.json` (None when there is none); a file
        that is not what `save` writes is a ValueError naming it and the field."""
        path = self.directory / LATEST
        if not path.exists():
            return None
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"checkpoint {path}: not readable ({err}); delete the directory to start over") from None
        expected = {"file": str, "epoch": int, "step": int, "global_step": int, "shapes": list, "meta": dict}
        for key, kind in expected.items():
            value = info.get(key) if isinstance(info, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
                raise ValueError(f"checkpoint {path}: field {key!r} must be "
                                 f"{'an integer >= 0' if kind is int else 'a ' + kind.__name__}, got {value!r}; "
                                 "it is not a file this library wrote")
        return info

    def save(self, model, epoch: int, step: int, global_step: int, meta: dict | None = None,
             state: tuple[dict, list] | None = None, loss: tuple[float, int] = (0.0, 0)) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        variables = state_variables(model)
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
            # The epoch's loss so far (sum over rows, rows), so that a resumed epoch logs its whole mean.
            "loss": [float(loss[0]), int(loss[1])],
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
        variables = state_variables(model)
        # Paths carry the layers' auto-numbered names, which differ between
        # models built in one process: the shapes identify the variables.
        if [[int(d) for d in v.shape] for v in variables] != info["shapes"]:
            raise ValueError(
                f"checkpoint {self.directory}: its variables do not match this model's "
                f"({len(info['paths'])} saved, {len(variables)} here); it belongs to another model"
            )
        file = self.directory / info["file"]
        try:
            with np.load(file) as saved:
                values = [saved[f"v{i}"] for i in range(len(variables))]
                arrays = [saved[f"s{i}"] for i in range(info.get("state_arrays", 0))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # truncated, not an npz, or missing arrays
            raise ValueError(f"checkpoint {file}: not a readable checkpoint ({err}); delete the directory to "
                             "start over") from None
        weights = {id(v) for v in model.trainable_variables}  # the optimizer's state may hold -inf by design
        for v, value in zip(variables, values):
            if tuple(value.shape) != tuple(v.shape):
                raise ValueError(f"checkpoint {file}: variable {v.path} has shape {value.shape}, expected {v.shape}")
            if id(v) in weights and not np.isfinite(value).all():  # training from it would only give NaN
                raise ValueError(f"checkpoint {file}: weight {v.path} holds NaN or inf; the run it saved had "
                                 "diverged: start over with another --checkpoint-dir")
        for v, value in zip(variables, values):
            v.assign(value)
        info["state"] = (info["state"], arrays) if info.get("state") is not None else None
        return info


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every` steps (when given; with ``steps_per_execution`` S, at the
    end of the S steps that reach each multiple) and at the end of each epoch,
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
                 state=None, loss_before=(0.0, 0), rows=None):
        super().__init__()
        self.checkpointer = checkpointer
        self.epoch = epoch
        self.first_step = first_step
        self.steps_per_epoch = steps_per_epoch
        self.every = every
        self.meta = meta
        self.state = state or (lambda: None)
        # (sum of the losses over rows, rows) of this epoch's steps before this call: a resumed
        # epoch's. `rows(first, last)`: the rows of steps first..last-1 (default: one per step).
        self.loss_before = loss_before
        self.rows = rows or (lambda first, last: last - first)
        self.last_step = first_step

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        global_step = self.epoch * self.steps_per_epoch + step
        # Keras calls this after each `steps_per_execution` steps: a save is due when those
        # steps reached a multiple of `every` (Keras's ModelCheckpoint(save_freq=) does the same)
        ran = step - self.last_step
        self.last_step = step
        if self.every and global_step // self.every > (global_step - ran) // self.every and \
                step < self.steps_per_epoch:
            # Keras's logs hold the mean loss of this call's rows so far, weighted by batch rows.
            total, rows = self.loss_before
            done = self.rows(self.first_step, step)
            loss = (total + float((logs or {}).get("loss", 0.0)) * done, rows + done)
            self.checkpointer.save(self.model, self.epoch, step, global_step, self.meta, self.state(), loss)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointer.save(self.model, epoch + 1, 0, (epoch + 1) * self.steps_per_epoch, self.meta, self.state())
