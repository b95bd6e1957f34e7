"""Ranking metrics from ranks: recall, NDCG, MRR, precision and MAP at k.

One relevant item per query, 0-based ``rank`` (``inf`` a miss), averaged
over queries, optionally weighted: ``recall@k`` (hit rate) ``= rank < k``;
``ndcg@k = 1 / log2(rank + 2)`` on a hit (ideal DCG is 1); ``mrr@k =
1 / (rank + 1)`` on a hit; ``precision@k = hit / k``; ``map@k = 1 / (rank + 1)``
on a hit (with one relevant item, average precision equals reciprocal rank).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["metrics_from_ranks", "check_ks"]


def check_ks(ks, where: str = "ks") -> tuple[int, ...]:
    """``ks`` as a tuple of ints if it is a non-empty sequence (list, tuple, range, 1-D array) of
    distinct ints >= 1, else a ValueError naming ``where`` and what it got.

    >>> check_ks([10, 100])
    (10, 100)
    >>> check_ks(range(1, 4)), check_ks(np.array([5, 10]))  # TFRS types ks as a Sequence
    ((1, 2, 3), (5, 10))
    >>> check_ks(10)
    Traceback (most recent call last):
    ...
    ValueError: ks must be a non-empty list of distinct ints >= 1 such as (10, 100), got 10
    """
    if isinstance(ks, (range, np.ndarray)) and np.ndim(ks) == 1:
        ks = list(ks)
    bad = (not isinstance(ks, (list, tuple)) or not ks
           or any(isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks)
           or len(set(ks)) != len(ks))  # after the types: a list inside is not hashable
    if bad:
        raise ValueError(f"{where} must be a non-empty list of distinct ints >= 1 such as (10, 100), got {ks!r}")
    return tuple(int(k) for k in ks)


def metrics_from_ranks(
    ranks, ks: Sequence[int] = (1, 5, 10, 50, 100), sample_weight=None
) -> dict[str, float]:
    """recall/ndcg/mrr/precision/map at each k from 0-based ranks (``inf`` = miss).

    Averages over queries, weighted by ``sample_weight`` if given.

    >>> metrics_from_ranks([0, 2, np.inf], ks=(3,))["ndcg@3"]  # (1 + 1/log2(4) + 0) / 3
    0.5
    """
    ranks = np.asarray(ranks, np.float64)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError("need a non-empty 1-d array of ranks")
    bad = np.isnan(ranks) | (ranks < 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"ranks are 0-based (inf for a miss); query {first} has {ranks[first]!r}")
    if sample_weight is None:
        weight = np.full(len(ranks), 1.0 / len(ranks))
    else:
        weight = np.asarray(sample_weight, np.float64)
        if weight.shape != ranks.shape:
            raise ValueError(f"sample_weight shape {weight.shape} != {ranks.shape} queries")
        infinite = ~np.isfinite(weight)
        if infinite.any():
            first = int(np.argmax(infinite))
            raise ValueError(f"sample_weight must be finite; query {first} has {weight[first]!r}")
        if weight.sum() <= 0 or (weight < 0).any():
            raise ValueError("sample_weight must be non-negative with a positive sum")
        weight = weight / weight.sum()
    ks = check_ks(ks)
    reciprocal = 1.0 / (ranks + 1.0)  # 0 for inf
    gain = 1.0 / np.log2(ranks + 2.0)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = float(weight @ hit)
        out[f"ndcg@{k}"] = float(weight @ np.where(hit, gain, 0.0))
        out[f"mrr@{k}"] = float(weight @ np.where(hit, reciprocal, 0.0))
        out[f"precision@{k}"] = float(weight @ hit) / k
        out[f"map@{k}"] = out[f"mrr@{k}"]
    return out
