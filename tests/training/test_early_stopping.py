"""Early stopping on a validation split cut from the training data
(schemaretrieval.training.EarlyStopping through fit)."""

import json
import types

import keras
import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import training

from helpers import SYNTHETIC_YAML as SCHEMA, Stop, StopAt, small_model

ROOT = SCHEMA.parents[1]


@pytest.fixture(scope="module")
def frame(schema):
    return sr.data.synthetic(schema, 1200, seed=0)


def test_the_validation_split_is_cut_from_the_training_data_and_holds_only_warm_rows(schema, frame):
    model = small_model(schema)
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
    return small_model(schema, seed, optimizer, negative_samplers=sr.samplers.InBatchSampler(num_items=3000))


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
    steps = -(-len(training.EarlyStopping(**stop_args).split(frame, small_model(schema))[0]) // 128)

    def fit(model, stop, **kwargs):
        _scripted_monitor(model, VALUES, steps)
        return training.fit(model, frame, epochs=len(VALUES), batch_size=128, seed=1, verbose=0,
                            early_stopping=stop, catalog=_catalog(frame), **kwargs)

    reference = small_model(schema)
    fit(reference, training.EarlyStopping(**stop_args))
    with pytest.raises(Stop):  # mid-epoch 1: the best epoch is trained after the resume
        fit(small_model(schema), training.EarlyStopping(**stop_args), checkpoint_dir=tmp_path, checkpoint_every=3,
            callbacks=[StopAt(steps + 4)])
    assert json.loads((tmp_path / "latest.json").read_text())["state"]["best_epoch"] == 0
    resumed, stop = small_model(schema, seed=99), training.EarlyStopping(**stop_args)
    history = fit(resumed, stop, checkpoint_dir=tmp_path, checkpoint_every=3)
    assert (stop.best_epoch, stop.stopped_epoch, history["best_epoch"]) == (1, 3, 1)
    assert int(resumed.optimizer.iterations) == int(reference.optimizer.iterations) == 4 * steps
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The same command once more: the run stays stopped, with the best weights.
    again = small_model(schema, seed=7)
    assert "loss" not in fit(again, training.EarlyStopping(**stop_args), checkpoint_dir=tmp_path)
    assert int(again.optimizer.iterations) == 4 * steps
    for a, b in zip(reference.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"early_stopping=.*'patience': 2.*this run has early_stopping=.*'patience': 1"):
        fit(small_model(schema), training.EarlyStopping(**{**stop_args, "patience": 1}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"this run has early_stopping=None"):
        training.fit(small_model(schema), frame, epochs=6, batch_size=128, seed=1, verbose=0, checkpoint_dir=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_fraction": 0}, r"validation_fraction must be a finite number > 0 and < 1, got 0"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be a finite number > 0 and < 1, got 1.0"),
    ({"monitor": "loss"}, r"monitor must be '<metric>@<k>' with metric one of recall, ndcg, mrr, precision, map.*'loss'"),
    ({"monitor": "recall@0"}, r"monitor must be .*got 'recall@0'"),
    ({"monitor": "auc@10"}, r"monitor must be .*got 'auc@10'"),
    ({"patience": -1}, r"patience must be an integer >= 0, got -1"),
    ({"min_delta": -0.1}, r"min_delta must be a finite number >= 0, got -0.1"),
    # was: accepted (NaN, inf and True as min_delta; "no" as a flag; 1.5 and -1 as seeds)
    ({"min_delta": float("nan")}, r"min_delta must be a finite number >= 0, got nan"),
    ({"min_delta": True}, r"min_delta must be a finite number >= 0, got True"),
    ({"seed": 1.5}, r"seed must be an integer >= 0, got 1.5"),
    ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ({"verbose": "loud"}, r"verbose must be an integer >= 0, got 'loud'"),
])
def test_bad_early_stopping_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match="EarlyStopping: " + message):
        training.EarlyStopping(**kwargs)


@pytest.mark.parametrize("option", ["exclude_seen", "restore_best_weights"])
def test_early_stopping_flags_are_true_or_false(option):
    with pytest.raises(TypeError, match=f"EarlyStopping: {option} must be True or False, got 'no'"):
        training.EarlyStopping(**{option: "no"})


def test_early_stopping_takes_numpy_numbers():
    # was: validation_fraction=np.float32(0.5) refused as "must be in (0, 1), got 0.5"
    assert training.EarlyStopping(validation_fraction=np.float32(0.5), patience=np.int64(3)).patience == 3


def test_fit_names_a_wrong_early_stopping(schema, frame):
    with pytest.raises(TypeError, match="fit: early_stopping must be a schemaretrieval.training.EarlyStopping.*"
                                        "got EarlyStopping"):
        training.fit(small_model(schema), frame, epochs=1, early_stopping=keras.callbacks.EarlyStopping())


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
