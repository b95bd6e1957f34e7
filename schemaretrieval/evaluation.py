"""Full-catalog top-k evaluation: the one engine behind the model and the baselines.

Every query has exactly one relevant item (one query per test interaction, as
in TFRS and Merlin Models). A model is evaluated through a *score function*
``score_fn(start, stop) -> [stop - start, num_candidates]`` (numpy array or tf
tensor) that scores queries ``start:stop`` against the whole catalog. The
engine asks for the queries chunk by chunk, with the chunk size taken from a
memory budget (``chunk_bytes``, 256 MB of float32 scores by default), so 1M
candidates never need a ``[num_queries, 1M]`` matrix.

Ranking rules
-------------
* **Pessimistic ties.** The rank of the target is the number of candidates whose
  score is ``>=`` the target's score, minus one (the target itself). A model
  that gives every item the same score therefore ranks every target last and
  gets recall 0 at every ``k < num_candidates``, not 1.
* **Exclusion.** Excluded candidates (e.g. the items a user already saw in
  training) are ranked as if their score were ``-inf``. If the target itself is
  excluded the query counts as a miss (it still counts in the average).
* A target whose own score is ``-inf`` or NaN is a miss. NaN scores of other
  candidates never outrank the target.

Metrics at each ``k`` (one relevant item, 0-based ``rank``, averaged over
queries, optionally weighted): ``recall@k`` (hit rate) ``= rank < k``;
``ndcg@k = 1 / log2(rank + 2)`` on a hit (ideal DCG is 1); ``mrr@k =
1 / (rank + 1)`` on a hit; ``precision@k = hit / k``; ``map@k = 1 / (rank + 1)``
on a hit (with one relevant item, average precision equals reciprocal rank).

>>> import numpy as np
>>> q = np.eye(3, 4, dtype="float32"); c = np.eye(5, 4, dtype="float32")
>>> m = evaluate_ranking(embedding_scorer(q, c), np.array([0, 1, 4]), ks=(1,))
>>> round(m["recall@1"], 4)
0.6667
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "compute_ranks",
    "embedding_scorer",
    "evaluate_ranking",
    "exclusion_positions",
    "item_positions",
    "mask_excluded",
    "metrics_from_ranks",
]

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Default budget for one chunk of float32 scores: 256 MB (64 queries x 1M items)."""

ScoreFn = Callable[[int, int], "np.ndarray | tf.Tensor"]
Exclusion = "tuple[np.ndarray, np.ndarray] | Sequence[np.ndarray]"


# --------------------------------------------------------------------------- ids


def _catalog_index(candidate_ids) -> pd.Index:
    index = pd.Index(np.asarray(candidate_ids))
    if not index.is_unique:
        dup = index[index.duplicated()]
        raise ValueError(
            f"candidate_ids must be unique; {len(dup)} duplicates, e.g. {dup[0]!r}"
        )
    return index


def item_positions(candidate_ids, item_ids) -> np.ndarray:
    """Positions in the catalog ``candidate_ids`` of each of ``item_ids`` (int64).

    Raises ValueError if the catalog has duplicates or if any id is not in it
    (the message says how many and shows one).

    >>> item_positions(np.array([10, 20, 30]), [30, 10, 30]).tolist()
    [2, 0, 2]
    """
    index = _catalog_index(candidate_ids)
    item_ids = np.asarray(item_ids)
    pos = index.get_indexer(item_ids)
    missing = pos < 0
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} of {len(item_ids)} item ids are not in the "
            f"candidate catalog of {len(index)} items, e.g. {item_ids[missing][0]!r}"
        )
    return pos.astype(np.int64)


def exclusion_positions(
    query_keys, interactions_keys, interactions_items, candidate_ids
) -> tuple[np.ndarray, np.ndarray]:
    """Catalog positions to exclude per query, as CSR ``(indptr, indices)``.

    For query ``i`` the positions ``indices[indptr[i]:indptr[i + 1]]`` (sorted,
    unique) are those of every item that ``query_keys[i]`` (e.g. a user id)
    interacted with in ``(interactions_keys, interactions_items)`` (e.g. the
    training data). Items that are not in the catalog are ignored; keys without
    interactions get no exclusions. Vectorised: one sort of the interactions and
    one gather, no Python loop over queries.

    >>> indptr, indices = exclusion_positions(
    ...     ["u1", "u2", "u1"], ["u1", "u1", "u2"], [30, 10, 99], [10, 20, 30])
    >>> indptr.tolist(), indices.tolist()
    ([0, 2, 2, 4], [0, 2, 0, 2])
    """
    index = _catalog_index(candidate_ids)
    num_candidates = len(index)
    pos = index.get_indexer(np.asarray(interactions_items))
    key_codes, uniq_keys = pd.factorize(np.asarray(interactions_keys))
    keep = (pos >= 0) & (key_codes >= 0)
    pairs = np.unique(key_codes[keep].astype(np.int64) * num_candidates + pos[keep])
    codes, cols = np.divmod(pairs, num_candidates)
    key_indptr = np.zeros(len(uniq_keys) + 1, np.int64)
    np.cumsum(np.bincount(codes, minlength=len(uniq_keys)), out=key_indptr[1:])

    # A sentinel row, so that queries can point somewhere even when no key
    # has interactions (empty exclusions).
    key_indptr = np.append(key_indptr, key_indptr[-1])
    q = pd.Index(uniq_keys).get_indexer(np.asarray(query_keys))
    found = q >= 0
    q = np.where(found, q, 0)
    counts = np.where(found, key_indptr[q + 1] - key_indptr[q], 0)
    indptr = np.zeros(len(q) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    offsets = np.arange(indptr[-1], dtype=np.int64) + np.repeat(
        key_indptr[q] - indptr[:-1], counts
    )
    return indptr, cols[offsets]


def _as_csr(exclude, num_queries: int, num_candidates: int):
    """Normalise ``exclude`` to sorted, duplicate-free CSR ``(indptr, indices)``."""
    if isinstance(exclude, tuple):
        if len(exclude) != 2:
            raise ValueError("exclude as a tuple must be CSR (indptr, indices)")
        indptr = np.asarray(exclude[0], np.int64).ravel()
        indices = np.asarray(exclude[1], np.int64).ravel()
        if len(indptr) != num_queries + 1:
            raise ValueError(f"exclude indptr has {len(indptr)} entries, need {num_queries + 1}")
        if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
            raise ValueError("exclude: indptr must start at 0, not decrease, end at len(indices)")
    else:
        rows = [np.asarray(r, np.int64).ravel() for r in exclude]
        if len(rows) != num_queries:
            raise ValueError(f"exclude has {len(rows)} rows for {num_queries} queries")
        indptr = np.zeros(num_queries + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= num_candidates):
        raise ValueError(f"exclude: positions must be in [0, {num_candidates})")
    # Sort and de-duplicate within each row (duplicates would be subtracted twice).
    rows = np.repeat(np.arange(num_queries, dtype=np.int64), np.diff(indptr))
    flat = np.unique(rows * num_candidates + indices)
    rows, indices = np.divmod(flat, num_candidates)
    indptr = np.zeros(num_queries + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=num_queries), out=indptr[1:])
    return indptr, indices


def mask_excluded(scores, exclude, start: int = 0) -> tf.Tensor:
    """Scores with the excluded positions set to ``-inf`` (for top-k retrieval).

    ``scores`` are rows ``start:start + len(scores)`` of the query set that the
    CSR ``exclude = (indptr, indices)`` describes (see `exclusion_positions`).
    One vectorised scatter, no loop over rows.

    >>> s = mask_excluded(np.zeros((2, 3), "float32"), (np.array([0, 1, 2]), np.array([2, 0])))
    >>> s.numpy().tolist()
    [[0.0, 0.0, -inf], [-inf, 0.0, 0.0]]
    """
    scores = tf.convert_to_tensor(scores)
    indptr, indices = exclude
    stop = start + int(scores.shape[0])
    lo, hi = int(indptr[start]), int(indptr[stop])
    rows = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(indptr[start : stop + 1]))
    idx = np.stack([rows, np.asarray(indices[lo:hi], np.int64)], axis=1)
    fill = tf.fill([hi - lo], tf.constant(-np.inf, scores.dtype))
    return tf.tensor_scatter_nd_update(scores, idx, fill)


# ------------------------------------------------------------------ score functions


@tf.function(reduce_retracing=True)
def _matmul(queries, candidates_t):
    return tf.matmul(queries, candidates_t)


def embedding_scorer(query_embeddings, candidate_embeddings) -> ScoreFn:
    """Score function of dot products ``queries[start:stop] @ candidates.T``.

    The candidates are transposed once up front: on CPU, multiplying by a
    ``[dim, num_candidates]`` matrix measured 1.2x (64-query chunks) to 1.7x
    (256-query chunks) faster than ``transpose_b=True``. Each call is one tf
    matmul in a ``tf.function`` (measured the same speed as eager; it saves
    the per-op overhead on small chunks). The returned callable carries
    ``num_queries`` and ``num_candidates`` attributes.

    >>> fn = embedding_scorer(np.ones((2, 3)), np.eye(4, 3))
    >>> fn(0, 2).numpy().tolist(), fn.num_candidates
    ([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]], 4)
    """
    queries = tf.convert_to_tensor(query_embeddings)
    candidates = tf.convert_to_tensor(candidate_embeddings)
    if not queries.dtype.is_floating:
        queries = tf.cast(queries, tf.float32)
    candidates = tf.cast(candidates, queries.dtype)
    if queries.shape.rank != 2 or candidates.shape.rank != 2 or (
        queries.shape[1] != candidates.shape[1]
    ):
        raise ValueError(
            "embedding_scorer needs [num_queries, dim] and [num_candidates, dim], "
            f"got {queries.shape} and {candidates.shape}"
        )
    candidates_t = tf.identity(tf.transpose(candidates))

    def score_fn(start: int, stop: int) -> tf.Tensor:
        return _matmul(queries[start:stop], candidates_t)

    score_fn.num_queries = int(queries.shape[0])
    score_fn.num_candidates = int(candidates.shape[0])
    return score_fn


# ------------------------------------------------------------------------ ranking


@tf.function(jit_compile=True, reduce_retracing=True)
def _count_at_or_above(scores, targets):
    """Per row: target score and how many candidates score >= it (XLA-fused)."""
    target_scores = tf.gather(scores, targets, batch_dims=1)
    at_or_above = tf.reduce_sum(tf.cast(scores >= target_scores[:, None], tf.int32), axis=1)
    return at_or_above, target_scores


def compute_ranks(
    score_fn: ScoreFn,
    target_positions,
    *,
    exclude: Exclusion | None = None,
    num_candidates: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> np.ndarray:
    """0-based pessimistic rank of each query's target; ``inf`` for a miss.

    ``score_fn(start, stop)`` returns ``[stop - start, num_candidates]`` scores
    (numpy or tf). ``num_candidates`` defaults to ``score_fn.num_candidates``.
    Queries are scored in chunks of ``chunk_bytes // (4 * num_candidates)``
    rows. ``exclude`` holds catalog positions per query: a tuple is CSR
    ``(indptr, indices)`` (as from `exclusion_positions`), a list is one array
    of positions per query. Exclusion is applied by
    counting, per chunk, the excluded candidates that score at or above the
    target (one gather) and subtracting them: the same ranks as scattering
    ``-inf`` without copying the chunk. See the module doc for the rules.

    >>> compute_ranks(lambda a, b: np.array([[1., 3., 3.]])[a:b], [1], num_candidates=3).tolist()
    [1.0]
    """
    targets = np.asarray(target_positions)
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError("target_positions must be a 1-d integer array (catalog positions)")
    targets = targets.astype(np.int64)
    if num_candidates is None:
        num_candidates = getattr(score_fn, "num_candidates", None)
        if num_candidates is None:
            raise ValueError("give num_candidates (score_fn has no num_candidates attribute)")
    num_candidates = int(num_candidates)
    num_queries = len(targets)
    if num_queries and (targets.min() < 0 or targets.max() >= num_candidates):
        raise ValueError(f"target_positions must be in [0, {num_candidates})")

    excluded_target = np.zeros(num_queries, bool)
    if exclude is not None:
        indptr, indices = _as_csr(exclude, num_queries, num_candidates)
        ex_rows = np.repeat(np.arange(num_queries, dtype=np.int64), np.diff(indptr))
        excluded_target[ex_rows[indices == targets[ex_rows]]] = True

    chunk = max(1, int(chunk_bytes) // (4 * num_candidates))
    ranks = np.empty(num_queries, np.float64)
    for start in range(0, num_queries, chunk):
        stop = min(start + chunk, num_queries)
        scores = tf.convert_to_tensor(score_fn(start, stop))
        if tuple(scores.shape) != (stop - start, num_candidates):
            raise ValueError(
                f"score_fn({start}, {stop}) returned shape {tuple(scores.shape)}, "
                f"expected {(stop - start, num_candidates)}"
            )
        count, target_scores = _count_at_or_above(scores, tf.constant(targets[start:stop]))
        count = count.numpy().astype(np.int64)
        if exclude is not None and indptr[stop] > indptr[start]:
            lo, hi = indptr[start], indptr[stop]
            rows = ex_rows[lo:hi] - start
            ex_scores = tf.gather_nd(scores, np.stack([rows, indices[lo:hi]], axis=1))
            above = ex_scores.numpy() >= target_scores.numpy()[rows]
            count -= np.bincount(rows[above], minlength=stop - start)
        ts = target_scores.numpy()
        miss = np.isnan(ts) | (ts == -np.inf) | excluded_target[start:stop]
        ranks[start:stop] = np.where(miss, np.inf, count - 1)
    return ranks


def metrics_from_ranks(
    ranks, ks: Iterable[int] = (1, 5, 10, 50, 100), sample_weight=None
) -> dict[str, float]:
    """recall/ndcg/mrr/precision/map at each k from 0-based ranks (``inf`` = miss).

    Averages over queries, weighted by ``sample_weight`` if given.

    >>> metrics_from_ranks([0, 2, np.inf], ks=(3,))["ndcg@3"]  # (1 + 1/log2(4) + 0) / 3
    0.5
    """
    ranks = np.asarray(ranks, np.float64)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError("need a non-empty 1-d array of ranks")
    if sample_weight is None:
        weight = np.full(len(ranks), 1.0 / len(ranks))
    else:
        weight = np.asarray(sample_weight, np.float64)
        if weight.shape != ranks.shape:
            raise ValueError(f"sample_weight shape {weight.shape} != {ranks.shape} queries")
        if weight.sum() <= 0 or (weight < 0).any():
            raise ValueError("sample_weight must be non-negative with a positive sum")
        weight = weight / weight.sum()
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive, got {ks}")
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


def evaluate_ranking(
    score_fn: ScoreFn,
    target_positions,
    ks: Iterable[int] = (1, 5, 10, 50, 100),
    exclude: Exclusion | None = None,
    *,
    sample_weight=None,
    num_candidates: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, float]:
    """Top-k metrics over the whole catalog: `compute_ranks` then `metrics_from_ranks`.

    Returns ``{"recall@k", "ndcg@k", "mrr@k", "precision@k", "map@k"}`` for
    each k, as floats.

    >>> s = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    >>> m = evaluate_ranking(lambda a, b: s[a:b], [2, 1], ks=(1, 2), num_candidates=3)
    >>> m["recall@1"], m["recall@2"], m["mrr@2"]
    (0.5, 1.0, 0.75)
    """
    ranks = compute_ranks(
        score_fn,
        target_positions,
        exclude=exclude,
        num_candidates=num_candidates,
        chunk_bytes=chunk_bytes,
    )
    return metrics_from_ranks(ranks, ks, sample_weight)
