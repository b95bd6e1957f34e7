"""fit's epochs when none is given: the rule of docs/defaults.md, by hand,
and the same count from a DataFrame, a parquet file or folder, and a csv;
the chosen values said at the start of training."""

import math

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import training
from schemaretrieval.training.defaults import (
    DEFAULT_EPOCHS,
    DENSE_ROWS_PER_ITEM,
    EXAMPLE_BUDGET,
    MAX_DEFAULT_EPOCHS,
    default_epochs,
    table_epochs,
)

from helpers import Stop, StopAt, small_model


@pytest.mark.parametrize("rows, items", [(80_000, 1_650), (80_000, 8_500), (74_267, 15_432), (1000, 100),
                                         (100, 100), (10**6, 10), (10**6, 26_744), (5 * 10**6, 26_744),
                                         (19_800_000, 26_744), (10**9, 10**6)])
def test_the_rule_by_hand(rows, items):
    by_hand = round(12 * math.sqrt(48 / (rows / items)))
    budget = 40_000_000 // rows
    assert default_epochs(rows, items) == max(1, min(budget, min(32, max(12, by_hand))))
    assert (DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS, DENSE_ROWS_PER_ITEM, EXAMPLE_BUDGET) == (12, 32, 48.0, 40_000_000)


def test_a_large_table_takes_the_budgets_share_and_at_least_one_epoch():
    assert default_epochs(1_000_000, 26_744) == 14     # 37 rows per item: 12 * sqrt(48 / 37), under the budget
    assert default_epochs(5_000_000, 26_744) == 8      # 40M / 5M
    assert default_epochs(19_800_000, 26_744) == 2     # 40M // 19.8M
    assert default_epochs(100_000_000, 26_744) == 1    # never none


def test_fit_says_the_chosen_values_as_training_starts(capsys):
    frame, schema = sr.data.movielens_like(100, 200, 3000, seed=0)
    model = sr.TwoTowerModel(schema)
    model.compile()
    training.fit(model, frame.iloc[:600], epochs=1, verbose=2)
    given = capsys.readouterr().out.splitlines()[0]
    assert given == "fit: 600 rows, 1 epochs, batches of 128, learning rate 0.001"
    # few items, so that the rule's epochs are its floor of 12 (two batches each)
    dense = frame[frame["item_id"].isin(frame["item_id"].value_counts().index[:4])].iloc[:256]
    items = dense["item_id"].nunique()
    assert default_epochs(256, items) == 12
    # the line is said before the first step: one step is enough to see it
    with pytest.raises(Stop):
        model.fit(dense, verbose=2, callbacks=[StopAt(1)])
    chosen = capsys.readouterr().out.splitlines()[0]
    assert chosen == (f"fit: 256 rows over {items} items, 12 epochs (the default, docs/defaults.md), "
                      "batches of 128, learning rate 0.001")



def test_movielens_100k_keeps_12_and_a_sparser_catalog_gets_more():
    assert default_epochs(80_000, 1_650) == 12        # 48 rows per item
    assert default_epochs(80_000, 80_000 // 12) == 24  # 12 rows per item: 12 * sqrt(4)
    assert default_epochs(80_000, 80_000) == 32        # capped


@pytest.mark.parametrize("rows, items", [(0, 5), (5, 0), (-1, 3)])
def test_empty_counts_are_refused(rows, items):
    with pytest.raises(ValueError, match=f"rows={rows}, items={items}"):
        default_epochs(rows, items)


def test_a_path_counts_as_its_frame(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 50, 3000), "item_id": rng.integers(0, 400, 3000)})
    expected = default_epochs(3000, frame["item_id"].nunique())
    assert table_epochs(frame, "item_id") == expected
    folder = tmp_path / "train"
    folder.mkdir()
    frame.iloc[:1000].to_parquet(folder / "part.0.parquet")
    frame.iloc[1000:].to_parquet(folder / "part.1.parquet")
    assert table_epochs(folder, "item_id") == expected
    frame.to_csv(tmp_path / "train.csv", index=False)
    assert table_epochs(str(tmp_path / "train.csv"), "item_id") == expected


@pytest.fixture(scope="module")
def frame(schema):
    return sr.data.synthetic(schema, 1200, seed=0)


def test_both_fits_take_the_measured_epochs_and_batch_size_when_none_is_given(schema, frame):
    # batches of 128: 128 + 128 + 44; 300 rows over 8 items, 37.5 rows per item
    rows = frame.iloc[:300].assign(item_id=lambda f: f["item_id"] % 8)
    # the epochs follow the rows per item (docs/defaults.md): 12 * sqrt(48 / 37.5)
    # rounds to 14, neither the floor nor the cap, so a fit that fell back to
    # either constant would run another count
    epochs = table_epochs(rows, "item_id")
    assert rows["item_id"].nunique() == 8
    assert epochs == 14 and epochs not in (DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS)
    for fit in (lambda model: model.fit(rows, verbose=0).history, lambda model: training.fit(model, rows, verbose=0)):
        model = small_model(schema)
        history = fit(model)
        assert len(history["loss"]) == epochs
        assert int(model.optimizer.iterations) == epochs * 3


def test_a_csv_in_memory_is_counted_from_what_fit_read_not_read_again(schema, frame, tmp_path, monkeypatch, capsys):
    rows = frame.iloc[:300]
    path = tmp_path / "train.csv"
    rows.to_csv(path, index=False)
    monkeypatch.setattr(sr.training.defaults, "read_table",
                        lambda *args, **kwargs: pytest.fail("the csv was read a second time to count it"))
    # the count is said before the first step: one step is enough to see it
    with pytest.raises(Stop):
        training.fit(small_model(schema), path, verbose=1, callbacks=[StopAt(1)])
    items, epochs = rows["item_id"].nunique(), table_epochs(rows, "item_id")
    assert f"fit: 300 rows over {items} items, {epochs} epochs (the default" in capsys.readouterr().out
