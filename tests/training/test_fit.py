"""The one training path in process (schemaretrieval.training.fit): the data
order, checkpoints and an exact resume, bad input, the moving average of the
weights. The `train` command's runs are in test_fit_cli.py, early stopping in
test_early_stopping.py."""

import csv
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import schemaretrieval as sr
from schemaretrieval import training
from schemaretrieval.cli import main
from schemaretrieval.data import Batches, read
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.training.checkpoints import state_variables

from helpers import SYNTHETIC_YAML as SCHEMA, Stop, StopAt, small_model


@pytest.fixture(scope="module")
def frame(schema):
    return sr.data.synthetic(schema, 1200, seed=0)


def _averaged_model(schema, seed=0):
    """`small_model` with an optimizer that ends fit on its moving average."""
    return small_model(schema, seed, optimizer=sr.AveragedAdam(1e-2, ema_momentum=0.9))


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


def test_fit_resumes_from_a_step_checkpoint_exactly(schema, frame, tmp_path):
    reference = small_model(schema)
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0, csv_path=tmp_path / "reference.csv")
    interrupted = small_model(schema)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Stop):
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=ckpt,
                     checkpoint_every=4, callbacks=[StopAt(15)], csv_path=tmp_path / "resumed.csv")
    info = json.loads((ckpt / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == (1, 2, 12)  # 10 steps an epoch
    resumed = small_model(schema, seed=99)  # another initialisation: the checkpoint overrides it
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


def test_steps_run_16_to_a_call_by_default_and_resume_from_a_checkpoint_exactly(schema, frame, tmp_path):
    model = sr.TwoTowerModel(schema)
    model.compile()
    assert model.steps_per_execution == 16
    # the same steps as one to a call; 10 steps an epoch run as calls of 4, 4 and 2
    one = small_model(schema)
    training.fit(one, frame, epochs=2, batch_size=128, seed=1, verbose=0)
    reference = small_model(schema, steps_per_execution=4)
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0)
    for x, y in zip(state_variables(one), state_variables(reference)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6, err_msg=x.path)
    # checkpoint_every=3 saves after the calls that reach 3, 6, 12, ...: global steps 4, 8, 14
    interrupted = small_model(schema, steps_per_execution=4)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Stop):  # after the 5th call: epoch 2's steps 5-8, before its checkpoint
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=ckpt,
                     checkpoint_every=3, callbacks=[StopAt(5)])
    info = json.loads((ckpt / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == (1, 4, 14)
    resumed = small_model(schema, seed=99, steps_per_execution=4)
    training.fit(resumed, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=ckpt, checkpoint_every=3)
    assert int(resumed.optimizer.iterations) == 20
    for x, y in zip(state_variables(reference), state_variables(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)


def test_a_checkpoint_of_another_run_is_refused(schema, frame, one_epoch_checkpoint, tmp_path):
    shutil.copytree(one_epoch_checkpoint, tmp_path, dirs_exist_ok=True)
    with pytest.raises(ValueError, match="batch_size=128.*batch_size=64"):
        training.fit(small_model(schema), frame, epochs=2, batch_size=64, seed=1, verbose=0, checkpoint_dir=tmp_path)


def test_a_checkpoint_or_log_dir_that_is_a_file_is_refused_before_training(schema, frame, tmp_path):
    # was: an epoch trained, then FileExistsError (or TensorFlow's FailedPreconditionError) naming no option
    (tmp_path / "afile").write_text("")
    model = small_model(schema)
    for option in ("checkpoint_dir", "log_dir"):
        with pytest.raises(ValueError, match=rf"fit: {option}='.*afile' is a file; expected a directory"):
            training.fit(model, frame, epochs=1, verbose=0, **{option: tmp_path / "afile"})
    with pytest.raises(ValueError, match=r"fit: csv_path='.*' is a directory; expected a file"):
        training.fit(model, frame, epochs=1, verbose=0, csv_path=tmp_path)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_a_checkpoint_of_other_columns_of_the_same_shapes_is_refused(schema, frame, one_epoch_checkpoint, tmp_path):
    # was: resumed, user_country's table loaded into user_city's (matched by shapes alone)
    shutil.copytree(one_epoch_checkpoint, tmp_path, dirs_exist_ok=True)
    renamed = sr.schema.schema_from_dict({"columns": {
        ("user_city" if name == "user_country" else name): value
        for name, value in sr.schema.schema_to_dict(schema)["columns"].items()}})
    with pytest.raises(ValueError, match=r"it was written with columns=\[.*'user_country'.*\], this run has "
                                         r"columns=\[.*'user_city'"):
        training.fit(small_model(renamed), frame.rename(columns={"user_country": "user_city"}), epochs=2,
                     batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)


@pytest.fixture(scope="module")
def one_epoch_checkpoint(schema, frame, tmp_path_factory):
    """A checkpoint directory after one epoch (batch_size=128, seed=1), copied by
    each test that damages it or resumes it with other arguments."""
    directory = tmp_path_factory.mktemp("one-epoch")
    training.fit(small_model(schema), frame, epochs=1, batch_size=128, seed=1, verbose=0, checkpoint_dir=directory,
                 checkpoint_every=4)
    return directory


@pytest.mark.parametrize("edit, message", [
    # was: JSONDecodeError naming no file, KeyError 'shapes', a silent 5 epochs, {} trained nothing
    (lambda ckpt: (ckpt / "latest.json").write_text("{bad"), r"latest.json: not readable"),
    (lambda ckpt: _edit_latest(ckpt, shapes=None), r"latest.json: field 'shapes' must be a list, got None"),
    (lambda ckpt: _edit_latest(ckpt, epoch=-3), r"latest.json: field 'epoch' must be an integer >= 0, got -3"),
    (lambda ckpt: _edit_latest(ckpt, step=1000000), r"step 1000000 is past the epoch's 10 steps of this run"),
    # was: BadZipFile, "Cannot load file containing pickled data"; NaN weights loaded, then recall 0.0
    (lambda ckpt: _npz(ckpt).write_bytes(_npz(ckpt).read_bytes()[:100]), r"ckpt-.*npz: not a readable checkpoint"),
    (lambda ckpt: _poison(ckpt), r"ckpt-.*npz: weight .*dense.*kernel holds NaN or inf"),
])
def test_a_damaged_checkpoint_is_named_not_loaded(schema, frame, one_epoch_checkpoint, tmp_path, edit, message):
    shutil.copytree(one_epoch_checkpoint, tmp_path, dirs_exist_ok=True)
    edit(tmp_path)
    with pytest.raises(ValueError, match=message):
        training.fit(small_model(schema), frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)


def _edit_latest(ckpt, **fields):
    info = json.loads((ckpt / "latest.json").read_text())
    (ckpt / "latest.json").write_text(json.dumps({**info, **fields}))


def _npz(ckpt):
    return ckpt / json.loads((ckpt / "latest.json").read_text())["file"]


def _poison(ckpt):
    with np.load(_npz(ckpt)) as saved:
        arrays = {name: saved[name] for name in saved.files}
    info = json.loads((ckpt / "latest.json").read_text())
    # a tower's kernel (a trained weight), not the optimizer's state
    name = f"v{next(i for i, path in enumerate(info['paths']) if path.endswith('dense_0/kernel'))}"
    arrays[name] = np.full_like(arrays[name], np.nan)
    with open(_npz(ckpt), "wb") as handle:
        np.savez(handle, **arrays)


def _user_dataset(schema, frame, column, value, row=3):
    # Copies: to_arrays may hand back the frame's own memory.
    arrays = {name: values.copy() for name, values in to_arrays(frame, schema).items()}
    if arrays[column].ndim == 2:
        arrays[column][row, 0] = value
    else:
        arrays[column][row] = value
    return tf.data.Dataset.from_tensor_slices(arrays).batch(64)


def test_a_bad_batch_of_a_users_dataset_fails_naming_column_and_step_before_any_update(schema, frame):
    model = small_model(schema)
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
        small_model(schema).fit(bad, batch_size=64, epochs=1, verbose=0)
    bad = frame.copy()
    bad.loc[9, "item_id"] = 3000
    with pytest.raises(ValueError, match=r"column 'item_id'.*3000 at row 9 is outside"):
        training.fit(small_model(schema), bad, epochs=1, batch_size=64, verbose=0)


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
        made = small_model(schema, **kwargs)
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
    model = small_model(schema, negative_samplers=sampler)
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


@pytest.fixture(scope="module")
def averaged_reference(schema, frame):
    """The state of an uninterrupted fit with the moving average: what each
    resumed fit below must end on (one fit for both)."""
    reference = _averaged_model(schema)
    training.fit(reference, frame, epochs=2, batch_size=128, seed=1, verbose=0)
    return [np.array(x) for x in state_variables(reference)]


@pytest.mark.parametrize("stop_at, position", [(11, (1, 0, 10)), (15, (1, 2, 12))],
                         ids=["from-an-epoch-end", "from-a-step"])
def test_with_an_average_of_the_weights_a_resumed_fit_ends_like_an_uninterrupted_one(
        schema, frame, averaged_reference, tmp_path, stop_at, position):
    # The epoch-end checkpoint holds the weights trained on, not the average
    # that the epoch's callbacks were shown.
    interrupted = _averaged_model(schema)
    with pytest.raises(Stop):
        training.fit(interrupted, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path,
                     checkpoint_every=4, callbacks=[StopAt(stop_at)])
    info = json.loads((tmp_path / "latest.json").read_text())
    assert (info["epoch"], info["step"], info["global_step"]) == position
    resumed = _averaged_model(schema, seed=99)
    training.fit(resumed, frame, epochs=2, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=4)
    for x, y in zip(averaged_reference, state_variables(resumed)):
        np.testing.assert_array_equal(x, np.asarray(y), err_msg=y.path)


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
        return small_model(schema, optimizer=keras.optimizers.LossScaleOptimizer(sr.AveragedAdam(1e-2, ema_momentum=0.9)))

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
