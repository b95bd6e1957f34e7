"""Train/test splits of an interactions table, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemaretrieval.arguments import integer, number
from schemaretrieval.data.read import require_present


def _check_parts(where: str, data: pd.DataFrame, test: np.ndarray, how: str):
    """Both parts non-empty: an empty one is a split no caller meant."""
    for part, size in (("train", int((~test).sum())), ("test", int(test.sum()))):
        if size == 0:
            raise ValueError(f"{where}: the {part} part is empty ({len(data)} rows, {how}); "
                             "expected rows in both parts")


def _require_frame(where: str, data) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{where}: data must be a pandas DataFrame (sr.data.read_table(path) reads a file), "
                        f"got {type(data).__name__}")


def random_split(data: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each row goes to the test part with probability `test_fraction`
    (exactly round(n * test_fraction) rows), the rest to train.

    >>> import pandas as pd
    >>> train, test = random_split(pd.DataFrame({"x": range(10)}), 0.2, seed=1)
    >>> len(train), len(test)
    (8, 2)
    """
    _require_frame("random_split", data)
    test_fraction = number(test_fraction, "random_split", "test_fraction", above=0, below=1)
    order = np.random.default_rng(integer(seed, "random_split", "seed", minimum=0)).permutation(len(data))
    cut = len(data) - int(round(len(data) * test_fraction))
    test = np.zeros(len(data), dtype=bool)
    test[order[cut:]] = True
    _check_parts("random_split", data, test, f"test_fraction {test_fraction}")
    return data[~test].reset_index(drop=True), data[test].reset_index(drop=True)


def time_split(data: pd.DataFrame, time_column: str = "timestamp", *, cutoff=None,
               test_fraction: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A global cut in time: rows with ``time_column < cutoff`` train, the rest test.

    Give ``cutoff`` (a value of the column) or ``test_fraction``: the cutoff is
    then the time at which that fraction of the rows (rounded) lies at or after
    it; rows with the same time are never split apart, so the test part may be
    a little larger. Rows keep their order. No randomness.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"timestamp": [5, 1, 4, 2, 3]})
    >>> train, test = time_split(frame, test_fraction=0.4)
    >>> list(train["timestamp"]), list(test["timestamp"])
    ([1, 2, 3], [5, 4])
    """
    _require_frame("time_split", data)
    if time_column not in data.columns:
        raise ValueError(f"time_split: no column {time_column!r}; the data has {list(data.columns)}")
    if (cutoff is None) == (test_fraction is None):
        raise ValueError("time_split: give exactly one of cutoff= and test_fraction=")
    times = data[time_column]
    _require_times("time_split", times)
    if cutoff is None:
        test_fraction = number(test_fraction, "time_split", "test_fraction", above=0, below=1)
        if not len(data):
            raise ValueError("time_split: data has no rows")
        n_test = max(1, int(round(len(data) * test_fraction)))
        cutoff = np.sort(times.to_numpy(), kind="stable")[len(data) - n_test]
        how = f"test_fraction {test_fraction}"
    else:
        if pd.isna(cutoff):
            raise ValueError(f"time_split: cutoff must be a time, got {cutoff!r}")
        how = f"cutoff {cutoff!r}"
    try:
        test = (times >= cutoff).to_numpy()
    except TypeError:
        raise ValueError(f"time_split: cutoff {cutoff!r} ({type(cutoff).__name__}) does not compare with column "
                         f"{time_column!r} ({times.dtype}); give a cutoff of the column's kind") from None
    _check_parts("time_split", data, test, how)
    return data[~test].reset_index(drop=True), data[test].reset_index(drop=True)


def _require_times(where: str, times: pd.Series) -> None:
    """No missing time: a NaN sorts after every time, so its row would be taken for the latest;
    and times of one kind (numbers, datetimes, or text alone), which sort."""
    require_present(times, where, f"times in column {times.name!r}")
    if times.dtype == object:
        kinds = times.map(type).unique()
        if len(kinds) > 1:
            raise ValueError(f"{where}: column {times.name!r} mixes times of types "
                             f"{sorted(k.__name__ for k in kinds)}, which do not sort; expected one kind")


def leave_last_n_out(data: pd.DataFrame, n: int = 1, user_column: str = "user_id",
                     time_column: str | None = "timestamp", seed: int = 0,
                     min_train: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last ``n`` interactions (by ``time_column``) are the test part.

    Ties in time are ordered by a random draw from ``seed`` (so the split is
    reproducible); without a ``time_column`` each user's rows are ordered at
    random. Every user keeps at least
    ``min_train`` rows in train: such users give fewer (or no) test rows.
    Rows keep their order within each part.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "timestamp": [3, 1, 2, 5, 4]})
    >>> train, test = leave_last_n_out(frame, 1)
    >>> test.to_dict("list")
    {'user_id': [1, 2], 'timestamp': [3, 5]}
    """
    _require_frame("leave_last_n_out", data)
    n = integer(n, "leave_last_n_out", "n")
    min_train = integer(min_train, "leave_last_n_out", "min_train", minimum=0)
    for column in [user_column] + ([time_column] if time_column is not None else []):  # the user's is required
        if column not in data.columns:
            raise ValueError(f"leave_last_n_out: no column {column!r}; the data has {list(data.columns)}")
    # A missing user would be one more user, its rows put to train or test by a group no one has.
    require_present(data[user_column], "leave_last_n_out", f"user ids in column {user_column!r}")
    noise = np.random.default_rng(integer(seed, "leave_last_n_out", "seed", minimum=0)).random(len(data))
    keys = [noise]
    if time_column is not None:
        _require_times("leave_last_n_out", data[time_column])
        keys.append(data[time_column].to_numpy())
    keys.append(data[user_column].to_numpy())
    order = np.lexsort(keys)  # by user, then time, then the random tie-break
    users = data[user_column].to_numpy()[order]
    size = pd.Series(users).groupby(users, sort=False).transform("size").to_numpy()
    rank_from_end = size - 1 - pd.Series(users).groupby(users, sort=False).cumcount().to_numpy()
    n_test = np.minimum(n, np.maximum(size - min_train, 0))
    test = np.zeros(len(data), dtype=bool)
    test[order] = rank_from_end < n_test
    _check_parts("leave_last_n_out", data, test, f"n {n}, min_train {min_train}")
    return data[~test].reset_index(drop=True), data[test].reset_index(drop=True)
