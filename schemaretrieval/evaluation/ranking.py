"""Full-catalog ranking: the rank of each query's item among every candidate, for the model and the baselines.

Every query has exactly one relevant item (one query per test interaction, as
in TFRS and Merlin Models). A model is evaluated through a *score function*
``score_fn(start, stop) -> [stop - start, num_candidates]`` (numpy array or tf
tensor) that scores queries ``start:stop`` against the whole catalog. The
engine asks for the queries chunk by chunk under the top-k engine's memory
budget (`retrieval.topk.CHUNK_BYTES`), so 1M candidates never need a
``[num_queries, 1M]`` matrix.

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

The metrics at each ``k`` are `metrics.metrics_from_ranks`'.

>>> import numpy as np
>>> q = np.eye(3, 4, dtype="float32"); c = np.eye(5, 4, dtype="float32")
>>> m = evaluate_ranking(embedding_scorer(q, c), np.array([0, 1, 4]), ks=(1,))
>>> round(m["recall@1"], 4)
0.6667
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from schemaretrieval.evaluation.metrics import check_ks, metrics_from_ranks
from schemaretrieval.progress import Progress
from schemaretrieval.retrieval.topk import CHUNK_BYTES, ScoreFn, embedding_scorer, exclusion_rows, query_chunks

__all__ = ["compute_ranks", "evaluate_ranking"]

Exclusion = "tuple[np.ndarray, np.ndarray] | Sequence[np.ndarray] | QueryExclusions"


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
    chunk_bytes: int = CHUNK_BYTES,
    what: str = "ranking",
) -> np.ndarray:
    """0-based pessimistic rank of each query's target; ``inf`` for a miss.

    ``score_fn(start, stop)`` returns ``[stop - start, num_candidates]`` scores
    (numpy or tf). ``num_candidates`` defaults to ``score_fn.num_candidates``.
    Queries are scored in chunks under ``chunk_bytes`` (`retrieval.topk.query_chunks`).
    ``exclude`` holds catalog positions per query: a tuple is CSR
    ``(indptr, indices)`` (as from `sr.data.Exclusions.positions`), a list is one array
    of positions per query, an `sr.data.QueryExclusions` (`Exclusions.for_queries`)
    gives them a chunk of queries at a time. Exclusion is applied by
    counting, per chunk, the excluded candidates that score at or above the
    target (one gather) and subtracting them: the same ranks as scattering
    ``-inf`` without copying the chunk. See the module doc for the rules.
    A long ranking shows its progress (`schemaretrieval.progress`), named ``what``.

    >>> compute_ranks(lambda a, b: np.array([[1., 3., 3.]])[a:b], [1], num_candidates=3).tolist()
    [1.0]
    """
    targets = np.asarray(target_positions)
    if targets.size == 0:
        raise ValueError("target_positions is empty: there is no query to rank (expected one catalog "
                         "position per query)")
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

    if exclude is not None:
        if hasattr(exclude, "rows"):  # an sr.data.QueryExclusions: read a chunk at a time below
            if len(exclude) != num_queries:
                raise ValueError(f"exclude has {len(exclude)} queries for {num_queries} targets")
        else:
            exclude = _as_csr(exclude, num_queries, num_candidates)

    ranks = np.empty(num_queries, np.float64)
    with Progress(f"{what} {num_candidates} items", num_queries, unit="queries") as progress:
        for start, stop in query_chunks(num_queries, num_candidates, chunk_bytes):
            scores = tf.convert_to_tensor(score_fn(start, stop))
            if tuple(scores.shape) != (stop - start, num_candidates):
                raise ValueError(
                    f"score_fn({start}, {stop}) returned shape {tuple(scores.shape)}, "
                    f"expected {(stop - start, num_candidates)}"
                )
            count, target_scores = _count_at_or_above(scores, tf.constant(targets[start:stop]))
            count = count.numpy().astype(np.int64)
            excluded_target = np.zeros(stop - start, bool)
            if exclude is not None:
                indptr, indices = exclusion_rows(exclude, start, stop)
                rows = np.repeat(np.arange(stop - start), np.diff(indptr))
                excluded_target[rows[indices == targets[start:stop][rows]]] = True
                if len(indices):
                    ex_scores = tf.gather_nd(scores, np.stack([rows, indices], axis=1))
                    above = ex_scores.numpy() >= target_scores.numpy()[rows]
                    count -= np.bincount(rows[above], minlength=stop - start)
            ts = target_scores.numpy()
            miss = np.isnan(ts) | (ts == -np.inf) | excluded_target
            ranks[start:stop] = np.where(miss, np.inf, count - 1)
            progress.update(stop - start)
    return ranks


def evaluate_ranking(
    score_fn: ScoreFn,
    target_positions,
    ks: Sequence[int] = (1, 5, 10, 50, 100),
    exclude: Exclusion | None = None,
    *,
    sample_weight=None,
    num_candidates: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    what: str = "ranking",
) -> dict[str, float]:
    """Top-k metrics over the whole catalog: `compute_ranks` then `metrics_from_ranks`.

    Returns ``{"recall@k", "ndcg@k", "mrr@k", "precision@k", "map@k"}`` for
    each k, as floats. ``what`` names the ranking in its progress lines.

    >>> s = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    >>> m = evaluate_ranking(lambda a, b: s[a:b], [2, 1], ks=(1, 2), num_candidates=3)
    >>> m["recall@1"], m["recall@2"], m["mrr@2"]
    (0.5, 1.0, 0.75)
    """
    ks = check_ks(ks)  # before the ranks, which take the time
    ranks = compute_ranks(
        score_fn,
        target_positions,
        exclude=exclude,
        num_candidates=num_candidates,
        chunk_bytes=chunk_bytes,
        what=what,
    )
    return metrics_from_ranks(ranks, ks, sample_weight)
