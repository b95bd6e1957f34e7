"""The one training path: resumable, reproducible, logged (schemaretrieval.training, `train`)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import schemaretrieval as sr
from schemaretrieval import training
from schemaretrieval.cli import main
from schemaretrieval.data import Batches, read
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.training.defaults import DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS, table_epochs
from schemaretrieval.training.checkpoints import state_variables

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "synthetic.yaml"
# Small enough for CI, long enough (75 steps an epoch) to be killed mid-epoch.
TRAIN = ["train", "--schema", str(SCHEMA), "--synthetic", "3000", "--epochs", "2", "--batch-size", "32",
         "--seed", "3", "--ks", "10", "--checkpoint-every", "5", "--no-export"]
STEPS = 75


def _cli(out, checkpoints):
    return [sys.executable, "-m", "schemaretrieval", *TRAIN, "--out", str(out), "--checkpoint-dir", str(checkpoints)]


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
    assert (f"resuming from {runs['root'] / 'b-ckpt'} at epoch 1 of 2, step {at_kill['step']} of {STEPS}"
            in runs["resumed"])
    a = sr.load_model(runs["root"] / "a" / "model.keras")
    b = sr.load_model(runs["root"] / "b" / "model.keras")
    assert len(a.variables) == len(b.variables)
    # Tolerance 1e-6 absolute; on CPU with op determinism the runs agree bit for bit.
    # A .keras file does not keep the dropout's seed generator (each load draws
    # a new one); the checkpoint does, and the weights show that it resumed.
    for x, y in zip(a.variables, b.variables):
        if "seed_generator" not in x.path:
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


def _model(schema, seed=0, optimizer=None, **kwargs):
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2))
    return model


def _averaged_model(schema, seed=0):
    """`_model` with an optimizer that ends fit on its moving average."""
    return _model(schema, seed, optimizer=sr.AveragedAdam(1e-2, ema_momentum=0.9))


def test_the_data_order_is_a_function_of_seed_and_epoch(schema, frame):
    batches = Batches(frame, schema, 100, shuffle=True, seed=5)

    def ids(ds):
        return np.concatenate([b["item_id"].numpy() for b in ds])

    first = ids(batches.epoch(1))
    assert sorted(first) == sorted(frame["item_id"])
    np.testing.assert_array_equal(first, ids(Batches(frame, schema, 100, shuffle=True, seed=5).epoch(1)))
    assert not np.array_equal(first, ids(batches.epoch(2)))
    np.testing.assert_array_equal(first[300:], ids(batches.epoch(1, skip=3)))
    # Why not dataset(): its epochs are the iterations of one dataset object,
    # so a new process restarts at epoch 0.
    ds = batches.dataset()
    epoch0, epoch1 = ids(ds), ids(ds)
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(epoch0, ids(Batches(frame, schema, 100, shuffle=True, seed=5).dataset()))


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
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0, csv_path=tmp_path / "reference.csv")
    interrupted = _model(schema)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=ckpt,
                     checkpoint_every=4, callbacks=[_StopAt(15)], csv_path=tmp_path / "resumed.csv")
    info = json.loads((ckpt / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == (1, 2, 12)  # 10 steps an epoch
    resumed = _model(schema, seed=99)  # another initialisation: the checkpoint overrides it
    training.fit(resumed, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=ckpt, checkpoint_every=4,
                 csv_path=tmp_path / "resumed.csv")
    assert int(resumed.optimizer.iterations) == 20
    for x, y in zip(state_variables(reference), state_variables(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)
    assert len(list(ckpt.glob("ckpt-*.npz"))) == 2  # the last two are kept
    # epoch 2 resumed after its 2nd step: its logged loss is the mean of all 10 steps, as uninterrupted
    want = [float(row["loss"]) for row in csv.DictReader(open(tmp_path / "reference.csv"))]
    got = [float(row["loss"]) for row in csv.DictReader(open(tmp_path / "resumed.csv"))]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_checkpoint_of_another_run_is_refused(schema, frame, tmp_path):
    training.fit(_model(schema), frame, epochs=1, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size=128.*batch_size=64"):
        training.fit(_model(schema), frame, epochs=2, batch_size=64, seed=1, verbose=0, checkpoint_dir=tmp_path)


def _user_dataset(schema, frame, column, value, row=3):
    # Copies: to_arrays may hand back the frame's own memory.
    arrays = {name: values.copy() for name, values in to_arrays(frame, schema).items()}
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


@pytest.mark.parametrize("kwargs", [{}, {"negative_samplers": "uniform"}, {"user_history": True}],
                         ids=["defaults", "catalog-sampler", "user-history"])
def test_a_bad_csv_is_named_by_its_file_and_row_whatever_reads_it_first(schema, frame, tmp_path, kwargs):
    # The catalog sampler and the history read the same rows as the batches;
    # the error must still name the file and its row, not the catalog's.
    bad = frame.copy()
    bad["item_id"] = bad["item_id"].astype("float64")
    bad.loc[3, "item_id"] = np.nan
    path = tmp_path / "train.csv"
    bad.to_csv(path, index=False)
    message = rf"^{str(path)}: column 'item_id': expected integer ids, found missing / NaN values \(1 row, first at row 3\)"

    def model():
        made = _model(schema, **kwargs)
        if kwargs.get("user_history"):
            made.set_history(frame)
        return made

    catalog = sr.data.Catalog.from_interactions(frame, schema)
    with pytest.raises(ValueError, match=message):
        model().fit(path, batch_size=64, epochs=1, verbose=0, catalog=catalog)
    with pytest.raises(ValueError, match=message):
        training.fit(model(), path, epochs=1, batch_size=64, verbose=0, catalog=catalog)


@pytest.mark.parametrize("sampler", [None, "uniform"], ids=["defaults", "catalog-sampler"])
def test_fit_on_a_csv_reads_it_once(schema, frame, tmp_path, monkeypatch, sampler):
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    reads = []
    read_table = read.read_table
    monkeypatch.setattr(read, "read_table", lambda p: reads.append(p) or read_table(p))
    model = _model(schema, negative_samplers=sampler)
    model.fit(path, batch_size=256, epochs=2, verbose=0, catalog=sr.data.Catalog.from_interactions(frame, schema))
    assert reads == [path]
    if sampler:
        assert model.output_layer.negative_samplers[0].has_catalog()


def test_drop_bad_rows_counts_them_per_column(schema, frame):
    bad = frame.copy()
    bad.loc[[1, 2], "user_age"] = [np.nan, np.inf]
    bad.loc[2, "item_id"] = 5000  # the same row: counted once, for its first column
    bad.loc[3, "item_id"] = 5000
    bad.at[4, "item_tags"] = [1, 500]
    bad.at[5, "item_tags"] = None  # to_arrays wants an empty list, not a missing one
    kept, counts = sr.data.drop_bad_rows(bad, schema)
    assert counts == {"user_age": 2, "item_id": 1, "item_tags": 2}
    assert len(kept) == len(bad) - 5
    to_arrays(kept, schema)  # what is left passes


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


# ---------------------------------------------------------------------------
# Early stopping on a validation split cut from the training data
# ---------------------------------------------------------------------------

def test_the_validation_split_is_cut_from_the_training_data_and_holds_only_warm_rows(schema, frame):
    model = _model(schema)
    stop = training.EarlyStopping(validation_fraction=0.1, seed=4)
    train, held_out = stop.split(frame, model)
    assert len(train) + len(held_out) == len(frame)
    together = pd.concat([train, held_out]).drop(columns=["item_tags"])
    columns = list(together.columns)
    pd.testing.assert_frame_equal(together.sort_values(columns).reset_index(drop=True),
                                  frame.drop(columns=["item_tags"]).sort_values(columns).reset_index(drop=True))
    assert held_out["user_id"].isin(train["user_id"]).all() and held_out["item_id"].isin(train["item_id"]).all()
    # The rows random_split picks, less the cold ones, which went back to training.
    picked = sr.data.random_split(pd.DataFrame({"row": range(len(frame))}), 0.1, seed=4)[1]["row"]
    rest = frame.drop(index=picked)
    cold = ~frame.loc[picked, "user_id"].isin(rest["user_id"]) | ~frame.loc[picked, "item_id"].isin(rest["item_id"])
    assert 0 < cold.sum() < len(picked)  # both kinds occur here
    assert len(held_out) == len(picked) - cold.sum()
    pd.testing.assert_frame_equal(held_out, frame.loc[picked[~cold.to_numpy()]].reset_index(drop=True))
    again, other = stop.split(frame, model)[1], training.EarlyStopping(seed=5).split(frame, model)[1]
    pd.testing.assert_frame_equal(held_out, again)
    assert not held_out["user_id"].equals(other["user_id"])


def _scripted_monitor(model, values, steps):
    """Makes the model's recall@k the value scripted for the epoch that just
    ended (from the optimizer's step count, so it survives a resume); records
    what each evaluation was given."""
    calls = []

    def evaluate_topk(data, catalog=None, ks=(10,), exclude=None, **kwargs):
        calls.append({"data": data, "exclude": exclude})
        return {f"recall@{k}": values[int(model.optimizer.iterations) // steps - 1] for k in ks}

    model.evaluate_topk = evaluate_topk
    return calls


class _WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


def _in_batch_model(schema, seed=0, optimizer=None):
    # In-batch negatives draw nothing at random (so the validation data's
    # val_loss pass cannot shift a seed generator) and their streaming
    # frequency estimate is sampler state among the weights.
    return _model(schema, seed, optimizer, negative_samplers=sr.samplers.InBatchSampler(num_items=3000))


def _catalog(frame):
    return sr.data.Catalog.from_interactions(frame, sr.load_schema(SCHEMA))


VALUES = [0.1, 0.3, 0.2, 0.3, 0.5, 0.6]  # best at epoch 1, then two epochs without a rise (0.3 is no rise)


@pytest.mark.parametrize("patience, epochs_run, best_epoch", [(0, 3, 1), (2, 4, 1), (3, 6, 5)])
def test_it_stops_after_patience_epochs_without_improvement_and_restores_the_best_weights(
        schema, frame, capsys, patience, epochs_run, best_epoch):
    model = _in_batch_model(schema)
    stop = training.EarlyStopping(0.1, "recall@10", patience=patience, seed=2)
    train, held_out = stop.split(frame, model)
    calls = _scripted_monitor(model, VALUES, steps=-(-len(train) // 128))
    record = _WeightsPerEpoch()
    history = training.fit(model, frame, epochs=len(VALUES), batch_size=128, seed=1, verbose=0,
                           early_stopping=stop, callbacks=[record], catalog=_catalog(frame))
    assert history["early_stopping_recall@10"] == VALUES[:epochs_run]
    assert len(history["loss"]) == epochs_run and history["best_epoch"] == stop.best_epoch == best_epoch
    assert stop.stopped_epoch == (epochs_run - 1 if epochs_run < len(VALUES) else 0)
    # Ranked: the split, each user's training rows excluded.
    seen = train.groupby("user_id")["item_id"].apply(lambda items: sorted(set(items)))
    for call in calls:
        pd.testing.assert_frame_equal(call["data"], held_out)
        assert [items.tolist() for items in call["exclude"].items_of(seen.index)] == seen.tolist()
    for restored, best in zip(model.get_weights(), record.weights[best_epoch]):
        np.testing.assert_array_equal(restored, best)
    if best_epoch != epochs_run - 1:
        last = record.weights[epochs_run - 1]
        assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), last))
        # The sampler's state is among the weights put back.
        sampler = [i for i, v in enumerate(model.weights) if v.path.endswith("/last_seen")]
        assert sampler and not np.array_equal(record.weights[best_epoch][sampler[0]], last[sampler[0]])
    lines = [line for line in capsys.readouterr().out.splitlines() if "validation split recall@10" in line]
    assert len(lines) == epochs_run and lines[0].startswith("epoch 1: validation split recall@10 0.1000")
    assert lines[-1].endswith("stopping") == (epochs_run < len(VALUES))


class _WeightsAndAverages(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.averages = {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()
        self.averages[epoch] = [np.asarray(a) for a in self.model.optimizer._model_variables_moving_average]


def test_with_an_average_of_the_weights_the_epoch_end_and_early_stopping_see_the_average(schema, frame):
    # What fit would end on at that epoch is what is logged, judged and kept.
    model = _in_batch_model(schema, optimizer=sr.AveragedAdam(1e-2, ema_momentum=0.9))
    stop = training.EarlyStopping(0.1, "recall@10", patience=0, seed=2)
    train, _ = stop.split(frame, model)
    _scripted_monitor(model, VALUES, steps=-(-len(train) // 128))
    record = _WeightsAndAverages()
    history = training.fit(model, frame, epochs=len(VALUES), batch_size=128, seed=1, verbose=0,
                           early_stopping=stop, callbacks=[record], catalog=_catalog(frame))
    assert (len(history["loss"]), history["best_epoch"]) == (3, 1)
    trainable = [i for i, w in enumerate(model.weights) if w.trainable]
    for epoch in range(3):
        for i, average in zip(trainable, record.averages[epoch]):
            np.testing.assert_array_equal(record.weights[epoch][i], average)
    for restored, best in zip(model.get_weights(), record.weights[1]):
        np.testing.assert_array_equal(restored, best)


@pytest.mark.parametrize("stop_at, position", [(11, (1, 0, 10)), (15, (1, 2, 12))],
                         ids=["from-an-epoch-end", "from-a-step"])
def test_with_an_average_of_the_weights_a_resumed_fit_ends_like_an_uninterrupted_one(
        schema, frame, tmp_path, stop_at, position):
    # The epoch-end checkpoint holds the weights trained on, not the average
    # that the epoch's callbacks were shown.
    reference = _averaged_model(schema)
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0)
    interrupted = _averaged_model(schema)
    with pytest.raises(_Stop):
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path,
                     checkpoint_every=4, callbacks=[_StopAt(stop_at)])
    info = json.loads((tmp_path / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == position
    resumed = _averaged_model(schema, seed=99)
    training.fit(resumed, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=4)
    for x, y in zip(state_variables(reference), state_variables(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)


def test_the_stop_never_depends_on_validation_data(schema, frame):
    test = sr.data.synthetic(schema, 300, seed=9)
    catalog = sr.data.Catalog.from_interactions(pd.concat([frame, test]), schema)  # one catalog for both runs

    def run(validation_data):
        model = _in_batch_model(schema)
        stop = training.EarlyStopping(0.1, "recall@10", patience=1, seed=2, verbose=0)
        history = training.fit(model, frame, epochs=5, batch_size=128, seed=1, verbose=0, early_stopping=stop,
                               validation_data=validation_data, catalog=catalog, ks=[10])
        return model, history

    plain, plain_history = run(None)
    poisoned = test.iloc[[0] * len(test)].reset_index(drop=True)  # one row over and over
    model, history = run(poisoned)
    assert "val_recall@10" in history  # looked at for the logs only
    assert history["early_stopping_recall@10"] == plain_history["early_stopping_recall@10"]
    assert history["best_epoch"] == plain_history["best_epoch"]
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    values = plain_history["early_stopping_recall@10"]
    best = plain_history["best_epoch"]
    assert values[best] == max(values) and values.index(max(values)) == best
    assert len(values) == 5 or len(values) == best + 2  # patience 1: one epoch without a rise ends it


def test_early_stopping_resumes_from_a_checkpoint_to_the_same_stop(schema, frame, tmp_path):
    stop_args = dict(validation_fraction=0.1, patience=2, seed=2, verbose=0)
    steps = -(-len(training.EarlyStopping(**stop_args).split(frame, _model(schema))[0]) // 128)

    def fit(model, stop, **kwargs):
        _scripted_monitor(model, VALUES, steps)
        return training.fit(model, frame, epochs=len(VALUES), batch_size=128, seed=1, verbose=0,
                            early_stopping=stop, catalog=_catalog(frame), **kwargs)

    reference = _model(schema)
    fit(reference, training.EarlyStopping(**stop_args))
    with pytest.raises(_Stop):  # mid-epoch 1: the best epoch is trained after the resume
        fit(_model(schema), training.EarlyStopping(**stop_args), checkpoint_dir=tmp_path, checkpoint_every=3,
            callbacks=[_StopAt(steps + 4)])
    assert json.loads((tmp_path / "latest.json").read_text())["state"]["best_epoch"] == 0
    resumed, stop = _model(schema, seed=99), training.EarlyStopping(**stop_args)
    history = fit(resumed, stop, checkpoint_dir=tmp_path, checkpoint_every=3)
    assert (stop.best_epoch, stop.stopped_epoch, history["best_epoch"]) == (1, 3, 1)
    assert int(resumed.optimizer.iterations) == int(reference.optimizer.iterations) == 4 * steps
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The same command once more: the run stays stopped, with the best weights.
    again = _model(schema, seed=7)
    assert "loss" not in fit(again, training.EarlyStopping(**stop_args), checkpoint_dir=tmp_path)
    assert int(again.optimizer.iterations) == 4 * steps
    for a, b in zip(reference.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"early_stopping=.*'patience': 2.*this run has early_stopping=.*'patience': 1"):
        fit(_model(schema), training.EarlyStopping(**{**stop_args, "patience": 1}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"this run has early_stopping=None"):
        training.fit(_model(schema), frame, epochs=6, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_fraction": 0}, r"validation_fraction must be in \(0, 1\), got 0"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\), got 1.0"),
    ({"monitor": "loss"}, r"monitor must be '<metric>@<k>' with metric one of recall, ndcg, mrr, precision, map.*'loss'"),
    ({"monitor": "recall@0"}, r"monitor must be .*got 'recall@0'"),
    ({"monitor": "auc@10"}, r"monitor must be .*got 'auc@10'"),
    ({"patience": -1}, r"patience must be an integer >= 0, got -1"),
    ({"min_delta": -0.1}, r"min_delta must be >= 0, got -0.1"),
])
def test_bad_early_stopping_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match="EarlyStopping: " + message):
        training.EarlyStopping(**kwargs)


def test_fit_names_a_wrong_early_stopping(schema, frame):
    with pytest.raises(TypeError, match="fit: early_stopping must be a schemaretrieval.training.EarlyStopping.*"
                                        "got EarlyStopping"):
        training.fit(_model(schema), frame, epochs=1, early_stopping=keras.callbacks.EarlyStopping())


def test_the_early_stopping_docstring_example_runs(monkeypatch):
    import doctest

    monkeypatch.chdir(ROOT)  # the example loads schemas/synthetic.yaml
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(training.EarlyStopping, "EarlyStopping", globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_exclude_seen_without_a_user_id_column_is_named(frame):
    no_users = types.SimpleNamespace(query_id_column=None, candidate_id_column="item_id")
    with pytest.raises(ValueError, match="EarlyStopping: exclude_seen=True needs a column tagged user_id"):
        training.EarlyStopping().split(frame, no_users)
    train, held_out = training.EarlyStopping(exclude_seen=False).split(frame, no_users)
    assert len(train) + len(held_out) == len(frame) and held_out["item_id"].isin(train["item_id"]).all()


def test_both_fits_take_the_measured_epochs_and_batch_size_when_none_is_given(schema, frame):
    rows = frame.iloc[:300]  # batches of 128: 128 + 128 + 44
    # the epochs follow the rows per item (docs/defaults.md): 300 rows over
    # this many items are far sparser than MovieLens-100K, so the most
    epochs = table_epochs(rows, "item_id")
    assert epochs == MAX_DEFAULT_EPOCHS == 32 and DEFAULT_EPOCHS == 12
    for fit in (lambda model: model.fit(rows, verbose=0).history, lambda model: training.fit(model, rows, verbose=0)):
        model = _model(schema)
        history = fit(model)
        assert len(history["loss"]) == epochs
        assert int(model.optimizer.iterations) == epochs * 3


@pytest.mark.parametrize("loss_scaled", [False, True], ids=["averaged-adam", "inside-a-loss-scale-optimizer"])
def test_a_moving_average_of_the_weights_ends_training_fit_as_it_ends_one_model_fit(schema, frame, loss_scaled):
    # fit runs one model.fit per epoch, and Keras ends each on the optimizer's
    # moving average; the next epoch must train on from the epoch's own weights.
    # Under mixed_float16 Keras wraps the optimizer, and the wrapper itself
    # says use_ema=False. The lazy average (sparse updates) is brought up to
    # date at each epoch's end rather than once: the same to float rounding
    # (1.5e-8 at most here).
    def averaged():
        if not loss_scaled:
            return _averaged_model(schema)
        return _model(schema, optimizer=keras.optimizers.LossScaleOptimizer(sr.AveragedAdam(1e-2, ema_momentum=0.9)))

    one = averaged()  # one Keras fit over three epochs of the same batches
    one.fit(Batches(frame, schema, 128).dataset(), epochs=3, verbose=0)
    per_epoch = averaged()
    training.fit(per_epoch, frame, epochs=3, batch_size=128, shuffle=False, verbose=0)
    assert int(per_epoch.optimizer.iterations) == 30
    averages = getattr(per_epoch.optimizer, "inner_optimizer", per_epoch.optimizer)._model_variables_moving_average
    for x, y, average in zip(one.trainable_variables, per_epoch.trainable_variables, averages):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-7, err_msg=x.path)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(average), err_msg=x.path)


def test_a_resume_that_finds_every_epoch_done_still_ends_on_the_moving_average(schema, frame, tmp_path):
    done = _averaged_model(schema)
    training.fit(done, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)
    again = _averaged_model(schema)
    assert training.fit(again, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path) == {}
    for x, y in zip(done.trainable_variables, again.trainable_variables):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)


def test_fit_on_a_model_never_compiled_says_to_compile_it(schema, frame):
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    with pytest.raises(ValueError, match=r"fit: compile the model first \(model.compile\(\) takes the measured"):
        training.fit(model, frame, epochs=1, verbose=0)
