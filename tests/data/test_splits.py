"""Time and leave-last-N-out splits."""

import numpy as np
import pandas as pd
import pytest

from schemaretrieval.data import leave_last_n_out, time_split


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame({"user_id": rng.integers(0, 20, n), "item_id": rng.integers(0, 50, n),
                         "timestamp": rng.integers(0, 100, n)})


def test_time_split_by_cutoff_and_fraction(frame):
    train, test = time_split(frame, cutoff=60)
    assert (train["timestamp"] < 60).all() and (test["timestamp"] >= 60).all()
    assert len(train) + len(test) == len(frame)
    train, test = time_split(frame, test_fraction=0.2)
    assert train["timestamp"].max() < test["timestamp"].min()
    assert len(test) >= 60 and len(test) - 60 < (frame["timestamp"] == test["timestamp"].min()).sum()
    with pytest.raises(ValueError, match="exactly one"):
        time_split(frame)
    with pytest.raises(ValueError, match="no column 'ts'"):
        time_split(frame, "ts", cutoff=1)


def test_leave_last_n_out(frame):
    train, test = leave_last_n_out(frame, 2, seed=3)
    assert len(train) + len(test) == len(frame)
    counts = frame["user_id"].value_counts()
    expected = np.minimum(2, counts - 1)[counts > 1].sort_index()
    pd.testing.assert_series_equal(test["user_id"].value_counts().sort_index(), expected)
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    assert (last_train.loc[first_test.index] <= first_test).all()
    again = leave_last_n_out(frame, 2, seed=3)
    pd.testing.assert_frame_equal(again[1], test)  # reproducible


def test_leave_last_n_out_ties_and_small_users():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [1, 2, 3, 4], "timestamp": [5, 5, 5, 1]})
    picks = {tuple(leave_last_n_out(frame, 1, seed=s)[1]["item_id"]) for s in range(20)}
    assert picks == {(1,), (2,), (3,)}   # ties broken by the seed; user 2 keeps its only row
    train, test = leave_last_n_out(frame, 1, time_column=None, seed=0)
    assert len(test) == 1 and 4 in set(train["item_id"])


def test_splits_name_missing_users_and_times_that_do_not_compare():
    frame = pd.DataFrame({"user_id": [1, 1, np.nan, np.nan, 2, 2], "timestamp": [1, 2, 3, 4, 5, 6]})
    # was: both rows of the missing user put to train, the test part without a word
    with pytest.raises(ValueError, match=r"leave_last_n_out: 2 missing user ids in column 'user_id' \(None/NaN\), "
                                         r"first at position 2"):
        leave_last_n_out(frame, 1)
    # was: KeyError: None
    with pytest.raises(ValueError, match=r"leave_last_n_out: no column None; the data has \['user_id', 'timestamp'\]"):
        leave_last_n_out(frame.dropna(), 1, user_column=None)
    # was: TypeError: Invalid comparison between dtype=int64 and str; then '<' not supported
    with pytest.raises(ValueError, match=r"time_split: cutoff '3' \(str\) does not compare with column 'timestamp' "
                                         r"\(int64\)"):
        time_split(frame, cutoff="3")
    with pytest.raises(ValueError, match=r"time_split: column 'timestamp' mixes times of types \['int', 'str'\]"):
        time_split(frame.assign(timestamp=[1, "2", 3, 4, 5, 6]), test_fraction=0.5)
