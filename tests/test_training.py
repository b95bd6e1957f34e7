"""Resumable, reproducible, logged training (schemaretrieval.training, `train`)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import schemaretrieval as sr
from schemaretrieval import training
from schemaretrieval.cli import main
from schemaretrieval.data import tables

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "synthetic.yaml"
# Small enough for CI, long enough (75 steps an epoch) to be killed mid-epoch.
TRAIN = ["train", "--schema", str(SCHEMA), "--synthetic", "3000", "--epochs", "2", "--batch-size", "32",
         "--seed", "3", "--ks", "10", "--checkpoint-every", "5", "--no-export"]
STEPS = 75


def _cli(out, checkpoints):
    return [sys.executable, "-m", "schemaretrieval.cli", *TRAIN, "--out", str(out), "--checkpoint-dir", str(checkpoints)]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and a run SIGKILLed after its first mid-epoch
    checkpoint then restarted with the same command (both started at once)."""
    root = tmp_path_factory.mktemp("runs")
    reference = subprocess.Popen(_cli(root / "a", root / "a-ckpt"), env=_env(), cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = subprocess.Popen(_cli(root / "b", root / "b-ckpt"), env=_env(), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = root / "b-ckpt" / "latest.json"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] > 0:
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = json.loads(latest.read_text())
    resumed = subprocess.run(_cli(root / "b", root / "b-ckpt"), env=_env(), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    reference_out = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, reference_out[-3000:]
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return {"root": root, "killed": killed.returncode, "at_kill": at_kill, "resumed": resumed.stdout}


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_one(runs):
    assert runs["killed"] == -signal.SIGKILL
    at_kill = runs["at_kill"]
    assert 0 < at_kill["step"] < STEPS and at_kill["epoch"] == 0, at_kill  # killed mid-epoch
    assert f"resuming from {runs['root'] / 'b-ckpt'}: epoch 1, step {at_kill['step']}" in runs["resumed"]
    a = sr.load_model(runs["root"] / "a" / "model.keras")
    b = sr.load_model(runs["root"] / "b" / "model.keras")
    assert len(a.variables) == len(b.variables)
    # Tolerance 1e-6 absolute; on CPU with op determinism the runs agree bit for bit.
    for x, y in zip(a.variables, b.variables):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-6, err_msg=x.path)
    # The sampler's streaming frequency estimate resumed too (it is a weight).
    assert any("in_batch_sampler" in v.path for v in a.variables)


def test_one_seed_two_cli_runs_give_identical_metrics(runs):
    # The resumed run is a second process from the same seed: split, shuffles,
    # initialisation and the sampler's estimate all repeat.
    a = (runs["root"] / "a" / "metrics.json").read_text()
    assert a == (runs["root"] / "b" / "metrics.json").read_text()
    assert json.loads(a)["two-tower"]["recall@10"] > 0


def test_the_run_writes_tensorboard_logs_and_a_csv_row_per_epoch_with_recall(runs):
    for run in ("a", "b"):
        out = runs["root"] / run
        with open(out / "training.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["epoch"] for r in rows] == ["0", "1"]  # the resumed run neither loses nor repeats a row
        assert {"loss", "val_loss", "val_recall@10", "learning_rate"} <= set(rows[0])
        assert 0 <= float(rows[-1]["val_recall@10"]) <= 1
        assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
        assert list((out / "logs" / "validation").glob("events.out.tfevents.*"))
    a = list(csv.DictReader(open(runs["root"] / "a" / "training.csv")))
    b = list(csv.DictReader(open(runs["root"] / "b" / "training.csv")))
    assert a[1]["val_recall@10"] == b[1]["val_recall@10"]


def test_tensorboard_has_recall_and_learning_rate(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs["root"] / "a" / "logs" / "validation")).Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert "epoch_recall@10" in tags, tags
    train_events = EventAccumulator(str(runs["root"] / "a" / "logs" / "train")).Reload()
    train_tags = set(train_events.Tags()["tensors"]) | set(train_events.Tags()["scalars"])
    assert {"epoch_loss", "epoch_learning_rate"} <= train_tags, train_tags


# ---------------------------------------------------------------------------
# In process: the data order, checkpoints of the library, bad input
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema():
    return sr.load_schema(SCHEMA)


@pytest.fixture(scope="module")
def frame(schema):
    return sr.data.synthetic(schema, 1200, seed=0)


def _model(schema, seed=0):
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def test_the_data_order_is_a_function_of_seed_and_epoch(schema, frame):
    arrays = tables.to_arrays(frame, schema)

    def ids(ds):
        return np.concatenate([b["item_id"].numpy() for b in ds])

    first = ids(training.epoch_dataset(arrays, 100, seed=5, epoch=1))
    assert sorted(first) == sorted(arrays["item_id"])
    np.testing.assert_array_equal(first, ids(training.epoch_dataset(arrays, 100, seed=5, epoch=1)))
    assert not np.array_equal(first, ids(training.epoch_dataset(arrays, 100, seed=5, epoch=2)))
    np.testing.assert_array_equal(first[300:], ids(training.epoch_dataset(arrays, 100, seed=5, epoch=1, skip=3)))
    # Why not to_tf_dataset(shuffle=True, seed=): its epochs are the
    # iterations of one dataset object, so a new process restarts at epoch 0.
    ds = tables.to_tf_dataset(frame, schema, 100, shuffle=True, seed=5)
    epoch0, epoch1 = ids(ds), ids(ds)
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(epoch0, ids(tables.to_tf_dataset(frame, schema, 100, shuffle=True, seed=5)))


class _Stop(Exception):
    pass


class _StopAt(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            raise _Stop


def test_fit_resumes_from_a_step_checkpoint_exactly(schema, frame, tmp_path):
    reference = _model(schema)
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0)
    interrupted = _model(schema)
    with pytest.raises(_Stop):
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path,
                     checkpoint_every=4, callbacks=[_StopAt(15)])
    info = json.loads((tmp_path / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == (1, 2, 12)  # 10 steps an epoch
    resumed = _model(schema, seed=99)  # another initialisation: the checkpoint overrides it
    training.fit(resumed, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=4)
    assert int(resumed.optimizer.iterations) == 20
    for x, y in zip(training._state_variables(reference), training._state_variables(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)
    assert len(list(tmp_path.glob("ckpt-*.npz"))) == 2  # the last two are kept


def test_a_checkpoint_of_another_run_is_refused(schema, frame, tmp_path):
    training.fit(_model(schema), frame, epochs=1, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size=128.*batch_size=64"):
        training.fit(_model(schema), frame, epochs=2, batch_size=64, seed=1, verbose=0, checkpoint_dir=tmp_path)


def _user_dataset(schema, frame, column, value, row=3):
    # Copies: to_arrays may hand back the frame's own memory.
    arrays = {name: values.copy() for name, values in tables.to_arrays(frame, schema).items()}
    if arrays[column].ndim == 2:
        arrays[column][row, 0] = value
    else:
        arrays[column][row] = value
    return tf.data.Dataset.from_tensor_slices(arrays).batch(64)


def test_a_bad_batch_of_a_users_dataset_fails_naming_column_and_step_before_any_update(schema, frame):
    model = _model(schema)
    model.build()
    before = [np.array(v) for v in model.variables]
    for column, value, message in [
        ("item_id", 3000, r"column item_id: ids outside the schema domain \[0, 2999\]"),
        ("user_id", -2, r"column user_id: ids outside"),
        ("item_tags", 100, r"column item_tags: ids outside the schema domain \[0, 99\]"),
        ("user_age", np.nan, r"column user_age: NaN or inf"),
        ("item_price", np.inf, r"column item_price: NaN or inf"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message + r".*\[step:\] \[1\]"):
            model.fit(_user_dataset(schema, frame, column, value), epochs=1, verbose=0)
        assert int(model.optimizer.iterations) == 0
        for v, old in zip(model.variables, before):
            np.testing.assert_array_equal(np.asarray(v), old, err_msg=v.path)  # sampler state included
    empty = _user_dataset(schema, frame, "item_id", 0).take(1).map(lambda b: {k: v[:0] for k, v in b.items()})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"empty batch \(zero rows"):
        model.fit(empty, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 0


def test_a_table_with_bad_values_fails_through_fit_naming_the_column(schema, frame):
    bad = frame.copy()
    bad.loc[7, "user_age"] = np.nan
    with pytest.raises(ValueError, match=r"column 'user_age'.*NaN or inf.*first at row 7"):
        _model(schema).fit(bad, batch_size=64, epochs=1, verbose=0)
    bad = frame.copy()
    bad.loc[9, "item_id"] = 3000
    with pytest.raises(ValueError, match=r"column 'item_id'.*3000 at row 9 is outside"):
        training.fit(_model(schema), bad, epochs=1, batch_size=64, verbose=0)


def test_drop_bad_rows_counts_them_per_column(schema, frame):
    bad = frame.copy()
    bad.loc[[1, 2], "user_age"] = [np.nan, np.inf]
    bad.loc[2, "item_id"] = 5000  # the same row: counted once, for its first column
    bad.loc[3, "item_id"] = 5000
    bad.at[4, "item_tags"] = [1, 500]
    kept, counts = training.drop_bad_rows(bad, schema)
    assert counts == {"user_age": 2, "item_id": 1, "item_tags": 1}
    assert len(kept) == len(bad) - 4
    tables.to_arrays(kept, schema)  # what is left passes


def test_cli_bad_parquet_ends_naming_the_column_or_skips_with_a_count(schema, tmp_path, capsys):
    data = sr.data.synthetic(schema, 1500, seed=0)
    data.loc[11, "item_price"] = np.nan
    data.loc[12, "user_id"] = 10**6
    path = tmp_path / "bad.parquet"
    data.to_parquet(path)
    args = ["train", "--schema", str(SCHEMA), "--data", str(path), "--epochs", "1", "--batch-size", "256",
            "--ks", "10", "--no-export", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "column 'user_id'" in capsys.readouterr().err
    main(args + ["--on-bad-rows", "skip"])
    printed = capsys.readouterr().out
    assert "skipped" in printed
    skipped = json.loads((tmp_path / "out" / "skipped_rows.json").read_text())
    assert sum(skipped["train"].values()) + sum(skipped["test"].values()) == 2
    # A schema that disagrees with the parquet (a column it lacks) is named.
    data.drop(columns=["item_price"]).to_parquet(path)
    with pytest.raises(SystemExit):
        main(args + ["--on-bad-rows", "skip"])
    assert "item_price" in capsys.readouterr().err
