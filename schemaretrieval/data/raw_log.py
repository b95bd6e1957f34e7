"""A raw interaction log at any size, shaped like MovieLens-20M: ``raw_log()``.

What a team's event log looks like before the ETL: string ids, a genres list
of strings, a Unix timestamp and one continuous user feature with missing
values, at MovieLens-20M's scale by default (138,493 users, 26,744 items).
Item popularity follows a Zipf-Mandelbrot law and user activity a log-normal one, so a
few items and users hold most rows, as in real logs. With ``taste > 0`` users
and items fall into ``clusters`` groups and a user draws items of their own
group ``exp(taste)`` times as often (and an item's first genre is its
group's), so that a model has something to learn beyond popularity; with
``taste=0`` (the default) items are drawn by popularity alone. ``schemas/raw-log.yaml``
is its schema; ``sr.etl.fit_transform`` encodes it. Generation is vectorised:
10M rows take a few seconds, and each row's genres list is shared with every
other row of the same item (no copy per row).

>>> frame = raw_log(1000, num_users=50, num_items=80, seed=0)
>>> list(frame.columns)
['user_id', 'user_score', 'item_id', 'item_genres', 'timestamp']
>>> frame["user_id"].iloc[0].startswith("u"), isinstance(frame["item_genres"].iloc[0], list)
(True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["raw_log", "GENRES"]

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
_START = 789_652_009   # MovieLens-20M's first rating (1995-01-09)
_END = 1_427_784_002   # and its last (2015-03-31)


def raw_log(num_rows: int, num_users: int = 138_493, num_items: int = 26_744, seed: int = 0,
            missing_score: float = 0.05, taste: float = 0.0, clusters: int = 19) -> pd.DataFrame:
    """``num_rows`` interactions in time order (see the module docstring).

    Columns: ``user_id`` ("u<n>"), ``user_score`` (float, ``missing_score``
    of the users NaN), ``item_id`` ("m<n>"), ``item_genres`` (1-4 genre
    names), ``timestamp`` (int64 seconds). A (user, item) pair may repeat.
    ``taste`` and ``clusters``: the user-item signal of the module docstring.

    >>> log = raw_log(500, num_users=20, num_items=30, seed=1)
    >>> len(log), bool(log["timestamp"].is_monotonic_increasing), log["user_id"].nunique() <= 20
    (500, True, True)
    >>> tasteful = raw_log(20_000, num_users=50, num_items=200, seed=0, taste=3.0, clusters=5)
    >>> share = tasteful.groupby("user_id")["item_genres"].agg(lambda g: g.str[0].value_counts(normalize=True).iloc[0])
    >>> bool(share.mean() > 0.6)   # most of a user's items share their group's genre (1 / 5 without taste)
    True
    """
    num_rows, num_users, num_items = int(num_rows), int(num_users), int(num_items)
    if num_rows < 1 or num_users < 1 or num_items < 1:
        raise ValueError(f"raw_log: need at least one row, user and item, got {num_rows}, {num_users}, {num_items}")
    if taste < 0 or not 1 <= clusters <= len(GENRES):
        raise ValueError(f"raw_log: need taste >= 0 and 1 <= clusters <= {len(GENRES)}, got {taste}, {clusters}")
    rng = np.random.default_rng(seed)
    # Zipf-Mandelbrot popularity 1 / (rank + 50): the most popular item holds
    # about 0.3% of the rows at the default catalog, as in MovieLens-20M.
    item_weight = 1.0 / (np.arange(1, num_items + 1) + 50.0)
    user_weight = rng.lognormal(0.0, 1.2, num_users)                   # heavy-tailed activity
    items = rng.choice(num_items, size=num_rows, p=item_weight / item_weight.sum())
    users = rng.choice(num_users, size=num_rows, p=user_weight / user_weight.sum())
    item_names = np.array([f"m{i}" for i in rng.permutation(num_items)], dtype=object)
    user_names = np.array([f"u{i}" for i in rng.permutation(num_users)], dtype=object)
    sizes = rng.integers(1, 5, num_items)
    genres = np.empty(num_items, dtype=object)
    genres[:] = [list(rng.choice(GENRES, size=s, replace=False)) for s in sizes]
    score = rng.normal(0.0, 1.0, num_users)
    score[rng.random(num_users) < missing_score] = np.nan
    if taste > 0:
        # Drawn after everything else, so that taste=0 keeps its draws.
        items = _tasteful_items(rng, users, item_weight, taste, clusters, genres)
    return pd.DataFrame({
        "user_id": user_names[users],
        "user_score": score[users],
        "item_id": item_names[items],
        "item_genres": genres[items],
        "timestamp": np.sort(rng.integers(_START, _END, num_rows)),
    })


def _tasteful_items(rng, users, item_weight, taste, clusters, genres) -> np.ndarray:
    """Each row's item drawn from its user's group's popularity, raised ``exp(taste)``
    for the items of that group; each item's first genre becomes its group's."""
    user_group = rng.integers(clusters, size=users.max() + 1)
    item_group = rng.integers(clusters, size=len(item_weight))
    for item, group in enumerate(item_group):
        genres[item] = [GENRES[group]] + [g for g in genres[item] if g != GENRES[group]][:3]
    row_group = user_group[users]
    items = np.empty(len(users), dtype=np.int64)
    for group in range(clusters):
        rows = np.flatnonzero(row_group == group)
        weight = item_weight * np.exp(taste * (item_group == group))
        items[rows] = rng.choice(len(item_weight), size=len(rows), p=weight / weight.sum())
    return items
