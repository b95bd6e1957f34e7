"""Choosing an approximate index's search width at build time: the narrowest width whose
recall@k, on a sample of queries against the exact answer, reaches a target.

An approximate index (HNSW's ``ef_search``, IVF's ``nprobe``) trades recall for
speed through one knob, and where a fixed default lands depends on the
embeddings: a width that finds 0.98 of the exact top-10 on generated
clustered vectors found 0.16 on a trained tower's (docs/serving.md). So
`Faiss` measures instead of assuming: `sample_queries` takes the queries
(the query tower's embeddings when the caller gives them, else catalog
vectors), `exact_threshold` the score of each one's exact k-th item, and
`choose_width` tries the widths in order and keeps the first that reaches the
target.

Recall counts a found item as right when its exact score reaches the exact
k-th score, so ties at the k-th place (common among cold items that share
their features) do not count as misses.

>>> import numpy as np
>>> candidates = np.random.default_rng(0).normal(size=(200, 4)).astype("float32")
>>> queries = candidates[:20]
>>> kth = exact_threshold(queries, candidates, k=5)
>>> exact = np.argsort(-(queries @ candidates.T), axis=1)[:, :5]
>>> recall_at_k(queries, candidates, exact, kth)
1.0
>>> choose_width(lambda width: exact if width >= 8 else exact[:, :2], [2, 4, 8, 16],
...              queries, candidates, kth, target=0.95, k=5)
(8, 1.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_queries", "exact_threshold", "recall_at_k", "choose_width"]


def sample_queries(candidates: np.ndarray, queries=None, size: int = 1000, seed: int = 0):
    """``(sample, source)``: up to ``size`` rows of ``queries`` when given (source "queries"),
    else of the candidates themselves (source "catalog").

    >>> sample, source = sample_queries(np.eye(3, dtype="float32"), size=2)
    >>> sample.shape, source
    ((2, 3), 'catalog')
    """
    rng = np.random.default_rng(seed)
    pool, source = (candidates, "catalog") if queries is None else (np.asarray(queries, np.float32), "queries")
    if len(pool) > size:
        pool = pool[np.sort(rng.choice(len(pool), size, replace=False))]
    return np.ascontiguousarray(pool, np.float32), source


def exact_threshold(queries: np.ndarray, candidates: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """``[num_queries]``: each query's exact k-th best dot product over ``candidates``.

    >>> exact_threshold(np.array([[1.0, 0.0]]), np.array([[3.0, 0], [1, 0], [2, 0]]), k=2).tolist()
    [2.0]
    """
    out = np.empty(len(queries), np.float32)
    k = min(int(k), len(candidates))
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ candidates.T
        out[start:start + chunk] = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    return out


def recall_at_k(queries: np.ndarray, candidates: np.ndarray, found: np.ndarray, threshold: np.ndarray,
                k: int | None = None) -> float:
    """Of the ``k`` (default: the found columns) best of each query, the share found: the
    found positions ``[num_queries, <= k]`` (-1: none) whose exact score reaches the query's
    exact k-th score.

    >>> recall_at_k(np.array([[1.0]]), np.array([[3.0], [1.0], [2.0]]), np.array([[0, 1]]), np.array([2.0]))
    0.5
    """
    valid = found >= 0
    scores = np.einsum("qd,qkd->qk", queries, candidates[np.maximum(found, 0)])
    hit = valid & (scores >= threshold[:, None] - 1e-5 * np.maximum(1.0, np.abs(threshold[:, None])))
    return float(hit.sum() / (len(found) * (k or found.shape[1])))


def choose_width(search, widths, queries, candidates, threshold, target: float = 0.95, k: int | None = None):
    """``(width, recall)``: the first of ``widths`` at which ``search(width)`` (positions
    ``[num_queries, <= k]``) reaches ``target`` recall@``k`` (default: the columns of the
    first search), else the last, with its recall.

    >>> candidates = np.eye(4, dtype="float32")
    >>> top1 = np.arange(4)[:, None]
    >>> kth = exact_threshold(candidates, candidates, k=1)
    >>> choose_width(lambda width: top1 if width > 1 else np.full((4, 1), -1), [1, 2], candidates, candidates, kth)
    (2, 1.0)
    >>> choose_width(lambda width: np.full((4, 1), -1), [1, 2], candidates, candidates, kth)  # none reaches it
    (2, 0.0)
    """
    recall = 0.0
    for width in widths:
        found = search(width)
        k = k or found.shape[1]
        recall = recall_at_k(queries, candidates, found, threshold, k=k)
        if recall >= target:
            return width, recall
    return widths[-1], recall
