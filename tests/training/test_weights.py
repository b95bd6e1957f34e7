"""fit(..., sample_weight=COLUMN): a continuous column of the table weighs each row's loss, as Keras's
sample weights do; a column that cannot be a weight is named before training."""

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.cli import main
from schemaretrieval.training import fit, set_seed


@pytest.fixture(scope="module")
def rows(schema):
    return sr.data.synthetic(schema, 600, seed=3)


@pytest.fixture(scope="module")
def first_loss(schema):
    """The loss of one epoch of one batch (so the loss before any update), from the same initial weights:
    one model, whose variables and optimizer state are put back before each fit (the fits of one kind of
    input, weighted or not, then reuse one traced step)."""
    set_seed(0, deterministic=False)
    model = sr.TwoTowerModel(schema)
    model.compile()
    model.build()
    model.optimizer.build(model.trainable_variables)
    variables = [*model.variables, *model.optimizer.variables]
    start = [np.array(v) for v in variables]

    def loss(rows, **kwargs):
        for v, value in zip(variables, start):
            v.assign(value)
        return fit(model, rows, epochs=1, batch_size=len(rows), shuffle=False, verbose=0, **kwargs)["loss"][0]

    return loss


def test_a_weight_multiplies_its_rows_loss(rows, first_loss):
    plain = first_loss(rows)
    assert first_loss(rows.assign(rating=2.0), sample_weight="rating") == pytest.approx(2 * plain, rel=1e-6)
    # a weight of 0 leaves its row out (the halves below); weights that are all 0 are refused (next test)
    # the batch's loss is the weighted sum over its rows divided by its rows: the losses of two
    # complementary halves add up to the whole's
    half = (np.arange(len(rows)) < len(rows) // 3).astype("float32")
    first = first_loss(rows.assign(rating=half), sample_weight="rating")
    rest = first_loss(rows.assign(rating=1.0 - half), sample_weight="rating")
    assert 0.0 < first < plain and 0.0 < rest < plain
    assert first + rest == pytest.approx(plain, rel=1e-5)


def test_a_weight_column_weighs_a_compiled_pairwise_loss_row_by_row(schema, rows):
    def loss(frame, **kwargs):
        set_seed(0, deterministic=False)
        model = sr.TwoTowerModel(schema)
        model.compile(loss="bpr")
        return fit(model, frame, epochs=1, batch_size=len(frame), shuffle=False, verbose=0, **kwargs)["loss"][0]

    few = rows.head(200)  # each row with 199 in-batch negatives: a [rows] weight column weighs each row's pairs
    assert loss(few.assign(rating=2.0), sample_weight="rating") == pytest.approx(2 * loss(few), rel=1e-6)


def test_evaluate_on_a_table_weighs_by_a_column_as_fit_does(schema, rows):
    model = sr.TwoTowerModel(schema)
    model.compile()
    plain = model.evaluate(rows, batch_size=100, return_dict=True, verbose=0)["loss"]
    doubled = model.evaluate(rows.assign(rating=2.0), batch_size=100, sample_weight="rating", return_dict=True,
                             verbose=0)["loss"]
    assert doubled == pytest.approx(2 * plain, rel=1e-5)  # Keras's "sample_weights should not be passed" before
    with pytest.raises(ValueError, match=r"evaluate: sample_weight= 'ratings' \(did you mean 'rating'\?\)"):
        model.evaluate(rows, sample_weight="ratings", verbose=0)


def test_a_column_that_cannot_weigh_is_named(schema, rows):
    model = sr.TwoTowerModel(schema)
    model.compile()
    with pytest.raises(ValueError, match=r"sample_weight= 'ratng' \(did you mean 'rating'\?\) is no column of the "
                                         r"schema; its continuous columns: 'user_age', 'item_price', 'rating'"):
        fit(model, rows, epochs=1, sample_weight="ratng", verbose=0)
    with pytest.raises(ValueError, match="sample_weight= 'item_id' is categorical; a weight is a continuous column"):
        fit(model, rows, epochs=1, sample_weight="item_id", verbose=0)
    with pytest.raises(TypeError, match="sample_weight= names a column of the table, got ndarray"):
        model.fit(rows, epochs=1, sample_weight=np.ones(len(rows)), verbose=0)
    negative = rows.assign(rating=np.where(np.arange(len(rows)) == 7, -1.0, 1.0))
    with pytest.raises(ValueError, match=r"<DataFrame>: column 'rating' \(the sample weight\): expected weights >= 0, "
                                         r"found -1.0 at row 7 \(1 row\)"):
        fit(model, negative, epochs=1, sample_weight="rating", verbose=0)
    # was: a loss of 0.0 every step, and a model that learned nothing
    with pytest.raises(ValueError, match=r"<DataFrame>: column 'rating' \(the sample weight\): every weight is 0; "
                                         r"expected some > 0"):
        fit(model, rows.assign(rating=0.0), epochs=1, sample_weight="rating", verbose=0)


def test_a_streamed_negative_weight_stops_training_with_the_column_named(schema, rows, tmp_path):
    path = tmp_path / "rows.parquet"
    rows.assign(rating=np.where(np.arange(len(rows)) == 7, -1.0, 1.0).astype("float32")).to_parquet(path)
    model = sr.TwoTowerModel(schema)
    model.compile()
    with pytest.raises(ValueError, match=r"rows.parquet: column 'rating' \(the sample weight\): expected weights >= 0, "
                                         r"found a negative one while training"):
        fit(model, path, epochs=1, batch_size=100, streaming=True, sample_weight="rating", verbose=0)


def test_weights_that_make_the_loss_nan_end_training_with_an_error(schema, rows, tmp_path):
    model = sr.TwoTowerModel(schema)
    model.compile()
    fit(model, rows.assign(rating=1.0), epochs=1, batch_size=100, checkpoint_dir=tmp_path, sample_weight="rating",
        verbose=0)
    # was: loss nan from then on, and a model of NaN weights returned and checkpointed without a word
    with pytest.raises(ValueError, match=r"fit: the loss is nan after epoch 2 of 3: training diverged and the "
                                         r"model's weights are no longer usable; lower the learning rate \(0.001\) "
                                         r"or the sample weights \(column 'rating', up to 1e\+30;"):
        fit(model, rows.assign(rating=1e30), epochs=3, batch_size=100, checkpoint_dir=tmp_path,
            sample_weight="rating", verbose=0)
    # the check runs before the epoch's checkpoint: the latest is still the finite first epoch's
    assert sr.training.Checkpointer(tmp_path).latest()["epoch"] == 1


def test_a_checkpoint_resumes_only_with_its_own_weights(schema, rows, tmp_path):
    model = sr.TwoTowerModel(schema)
    model.compile()
    fit(model, rows, epochs=1, batch_size=200, checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        fit(model, rows, epochs=2, batch_size=200, checkpoint_dir=tmp_path, sample_weight="rating", verbose=0)


def test_the_cli_weighs_by_a_column_and_names_a_wrong_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "500", "--sample-weight", "ratng",
              "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "sample_weight= 'ratng' (did you mean 'rating'?) is no column of the schema" in capsys.readouterr().err
    common = ["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "2000", "--epochs", "1",
              "--batch-size", "256", "--no-export"]
    main([*common, "--out", str(tmp_path / "plain")])
    main([*common, "--sample-weight", "rating", "--out", str(tmp_path / "weighed")])
    plain = pd.read_csv(tmp_path / "plain" / "training.csv")["loss"].iloc[0]
    weighed = pd.read_csv(tmp_path / "weighed" / "training.csv")["loss"].iloc[0]
    # ratings in [0, 1]: the weighted loss is below the unweighted one
    assert 0.0 < weighed < plain
