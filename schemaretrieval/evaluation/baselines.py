"""Non-neural baselines that answer like a model: `Popularity` and `EASE`.

Both rank through the same engines as the two-tower model
(`evaluation.ranking.evaluate_ranking` and `retrieval.topk.top_k`, one score
function per chunk of queries), so their numbers compare one to one with
the model's. They take their columns in one order, ``fit(train,
user_id_col, item_id_col)``, return ``(scores, ids)`` from ``recommend`` as
the model does, and take ``exclude=`` as an `sr.data.Exclusions` or the
interactions it is built from.

>>> import pandas as pd
>>> train = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"]})
>>> test = pd.DataFrame({"user": [2, 3], "item": ["b", "a"]})
>>> Popularity().fit(train, "user", "item").evaluate_topk(test, ks=(1,))["recall@1"]
0.5
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
import tensorflow as tf

from schemaretrieval.arguments import integer, machine_memory, number
from schemaretrieval.data.exclusions import as_exclusions, catalog_positions
from schemaretrieval.data.read import require_columns, require_present
from schemaretrieval.evaluation.ranking import evaluate_ranking
from schemaretrieval.progress import Progress
from schemaretrieval.retrieval.topk import CHUNK_BYTES, top_k

__all__ = ["EASE", "Popularity"]


class _Baseline:
    """Shared evaluation and top-k for baselines; subclasses give `_score_fn`."""

    user_id_col: str | None = None
    item_id_col: str
    item_ids_: np.ndarray

    def _score_fn(self, user_ids: np.ndarray, candidate_ids: np.ndarray):
        raise NotImplementedError

    def _check_fitted(self):
        if not hasattr(self, "item_ids_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")

    def _candidates(self, candidate_ids) -> np.ndarray:
        if candidate_ids is None:
            return self.item_ids_
        candidates = np.asarray(candidate_ids)
        expected = f"{type(self).__name__}: candidate_ids must be a non-empty 1-D list of distinct item ids (the catalog)"
        if candidates.ndim != 1 or not len(candidates):
            raise ValueError(f"{expected}, got shape {candidates.shape}")
        if not pd.Index(candidates).is_unique:
            raise ValueError(f"{expected}, got {len(candidates)} ids with repeats")
        return candidates

    def _users(self, users, what: str) -> np.ndarray:
        """``users`` as a 1-D array of user ids, none missing."""
        if self.user_id_col is None:
            raise ValueError(
                f"{what} needs user ids: fit with user_id_col=... so the user column is known"
            )
        users = np.asarray(users)
        if users.ndim != 1:
            raise ValueError(f"{what}: expected a 1-D list of user ids (one user: [id]), got shape {users.shape}")
        require_present(users, what, "user ids")
        return users

    def _exclusion(self, users, exclude, candidate_ids):
        exclude = as_exclusions(exclude, self.user_id_col, self.item_id_col)
        if exclude is None:
            return None
        return exclude.for_queries(users, candidate_ids)

    def evaluate_topk(
        self,
        data: pd.DataFrame,
        *,
        candidate_ids=None,
        ks: Iterable[int] = (1, 5, 10, 50, 100),
        exclude=None,
        sample_weight=None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> dict[str, float]:
        """Full-catalog top-k metrics, one query per row of ``data``.

        ``data`` holds test interactions (the user and item columns given to
        `fit`). ``candidate_ids`` is the catalog (default: every item seen in
        fit); a test item outside it is a ValueError, so pass the full item
        list when the test set has items unseen in training. ``exclude`` is an
        `sr.data.Exclusions` or interactions (e.g. the training set) whose
        items are removed from each query user's ranking. ``sample_weight``
        is an array or a column name of ``data``. Returns the dict of
        `evaluation.ranking.evaluate_ranking`.

        >>> train = pd.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7]})
        >>> m = Popularity().fit(train, "u", "i").evaluate_topk(
        ...     pd.DataFrame({"u": [2], "i": [8]}), ks=(1,), exclude=train)
        >>> m["recall@1"]
        1.0
        """
        self._check_fitted()
        where = f"{type(self).__name__}.evaluate_topk"
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"{where}: data must be a DataFrame of test interactions, got {type(data).__name__}")
        if not len(data):
            raise ValueError(f"{where}: data has no rows; expected test interactions")
        weight_column = [sample_weight] if isinstance(sample_weight, str) else []
        require_columns(data, [c for c in (self.user_id_col, self.item_id_col) if c is not None] + weight_column,
                        "data", where)
        candidates = self._candidates(candidate_ids)
        targets = catalog_positions(candidates, data[self.item_id_col].to_numpy())
        users = (
            self._users(data[self.user_id_col], where)
            if self.user_id_col is not None
            else np.zeros(len(data), np.int64)
        )
        if weight_column:
            sample_weight = data[sample_weight].to_numpy()
        return evaluate_ranking(
            self._score_fn(users, candidates),
            targets,
            ks,
            self._exclusion(users, exclude, candidates),
            sample_weight=sample_weight,
            chunk_bytes=chunk_bytes,
            what=f"{type(self).__name__} ranking",
        )

    def recommend(self, user_ids, k: int = 10, *, candidate_ids=None, exclude=None,
                  chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` scores and item ids per user, best first: ``([n, k], [n, k])``, as the model's.

        ``k`` is at most the catalog size, as the model's. Items in ``exclude`` (an
        `sr.data.Exclusions` or interactions) are left out; a slot that
        exclusion leaves without an item has score -inf and id -1 ("" for
        string ids). Ties go to the earlier catalog position.

        >>> train = pd.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7]})
        >>> scores, ids = Popularity().fit(train, "u", "i").recommend([1], k=2)
        >>> scores.tolist(), ids.tolist()
        ([[2.0, 1.0]], [[7, 8]])
        """
        self._check_fitted()
        where = f"{type(self).__name__}.recommend"
        candidates = self._candidates(candidate_ids)
        users = self._users(user_ids, where) if self.user_id_col is not None else np.asarray(user_ids)
        k = integer(k, where, "k")
        if k > len(candidates):
            raise ValueError(f"{where}: k={k} is more than the catalog's {len(candidates)} items")
        scores, positions = top_k(self._score_fn(users, candidates), len(users), len(candidates), k,
                                  self._exclusion(users, exclude, candidates), chunk_bytes,
                                  what=f"{type(self).__name__} top-k")
        fill = "" if candidates.dtype.kind in "USO" else -1
        ids = np.where(positions >= 0, candidates[np.maximum(positions, 0)], fill)
        return scores, ids


class Popularity(_Baseline):
    """Score every item by its interaction count in the training data.

    Every user gets the same scores. Items with equal counts tie and are
    ranked pessimistically by the evaluation engine (no tie-breaking), so a
    target that shares its count with other items ranks below all of them;
    catalog items never seen in training score 0.

    >>> train = pd.DataFrame({"item": ["a", "b", "a"]})
    >>> pop = Popularity().fit(train, None, "item")
    >>> pop.item_ids_.tolist(), pop.counts_.tolist()
    (['a', 'b'], [2.0, 1.0])
    """

    def fit(self, train: pd.DataFrame, user_id_col: str | None, item_id_col: str):
        """Count interactions per item; ``user_id_col`` (None without users) is only needed
        for ``exclude`` and ``recommend``."""
        self.item_id_col = item_id_col
        self.user_id_col = user_id_col
        _require_ids(train, [item_id_col], "Popularity.fit")
        if user_id_col is not None:  # read by recommend and exclude=: named now, not there
            require_columns(train, [user_id_col], "train", "Popularity.fit")
        counts = train[item_id_col].value_counts(sort=False).sort_index()
        self.item_ids_ = counts.index.to_numpy()
        self.counts_ = counts.to_numpy().astype(np.float32)
        return self

    def _score_fn(self, user_ids, candidate_ids):
        pos = pd.Index(self.item_ids_).get_indexer(np.asarray(candidate_ids))
        scores = np.where(pos >= 0, self.counts_[pos], 0.0).astype(np.float32)
        row = tf.constant(scores[None, :])

        def score_fn(start: int, stop: int):
            return tf.tile(row, [stop - start, 1])

        score_fn.num_candidates = len(scores)
        return score_fn


#: Rows at a time when `EASE.fit` fills the inverse's upper triangle from its lower one.
SYMMETRIZE_BLOCK = 1024


def _require_ids(train: pd.DataFrame, id_columns, where: str) -> pd.DataFrame:
    """``train``'s id columns when it has rows and an id in every one of them: a fit
    neither learns from nothing nor drops a row."""
    if not isinstance(train, pd.DataFrame):
        raise TypeError(f"{where}: train must be a DataFrame of interactions, got {type(train).__name__}")
    require_columns(train, id_columns, "train", where, allow_empty=True)
    if not len(train):
        raise ValueError(f"{where}: train has no rows; expected interactions")
    frame = train[id_columns]
    for column in id_columns:
        require_present(frame[column], where, f"ids in column {column!r}", "expected an id on every row")
    return frame


def _inverse(G: np.ndarray) -> np.ndarray:
    """``G^-1`` of ``X^T X + l2 I`` (``l2 > 0``: symmetric positive definite), in
    ``G``'s memory: LAPACK's Cholesky factorization (potrf, n^3 / 3 flops) then
    the inverse from it (potri, 2 n^3 / 3), half the flops of ``np.linalg.inv``'s
    LU (2 n^3). The two calls are the steps of its progress."""
    n = len(G)
    with Progress(f"EASE fit (inverse of {n}x{n})", 3, unit="thirds", every=1 / 3) as progress:
        # G is symmetric: its transpose is the same matrix, in the column-major
        # order LAPACK overwrites in place.
        factor, info = scipy.linalg.lapack.dpotrf(G.T, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: X^T X + l2 I is not positive definite (LAPACK potrf info={info})")
        progress.update(1)
        inverse, info = scipy.linalg.lapack.dpotri(factor, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: X^T X + l2 I is singular (LAPACK potri info={info})")
        progress.update(2)
    # potri wrote the lower triangle (column-major); mirror it, a block of rows at a time.
    inverse = inverse.T  # row-major again: the upper triangle is valid
    for start in range(0, n, SYMMETRIZE_BLOCK):
        stop = min(start + SYMMETRIZE_BLOCK, n)
        block = inverse[start:stop, start:stop]
        block[...] = np.triu(block) + np.triu(block, 1).T
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
    return inverse


class EASE(_Baseline):
    """EASE item-item model (Steck 2019, "Embarrassingly Shallow Autoencoders").

    Closed form on the binary user-item matrix ``X``: ``G = X^T X + l2 I``,
    ``P = G^-1``, ``B = -P / diag(P)`` (column j divided by ``P[j, j]``),
    ``diag(B) = 0``. A user's scores are ``x_user @ B``; users unseen in
    training have an empty history and score 0 everywhere (so they miss under
    pessimistic ranking). ``B`` is dense ``[n_items, n_items]``: more than
    ``max_items`` items is a ValueError (20k items take ~3.2 GB in float64
    while fitting). Fitting inverts in float64, in place, by Cholesky (``G`` is
    positive definite for ``l2 > 0``; a large catalog shows its progress);
    ``B_`` is kept in float32.

    >>> train = pd.DataFrame({"u": [1, 1, 2, 2, 3], "i": [7, 8, 7, 9, 8]})
    >>> ease = EASE(l2=1.0).fit(train, "u", "i")
    >>> _, ids = ease.recommend([3], k=1, exclude=train)
    >>> ids.tolist()
    [[7]]
    """

    def __init__(self, l2: float = 500.0, max_items: int = 20_000):
        self.l2 = number(l2, "EASE", "l2", above=0)
        self.max_items = integer(max_items, "EASE", "max_items")

    def fit(self, train: pd.DataFrame, user_id_col: str, item_id_col: str):
        """Build ``X`` from ``train`` (duplicates count once) and solve for ``B_``."""
        self.user_id_col = user_id_col
        self.item_id_col = item_id_col
        frame = _require_ids(train, [user_id_col, item_id_col], "EASE.fit")
        user_codes, users = pd.factorize(frame[user_id_col], sort=True)
        item_codes, items = pd.factorize(frame[item_id_col], sort=True)
        n_users, n_items = len(users), len(items)
        if n_items > self.max_items:
            raise ValueError(
                f"EASE: {n_items} items > max_items={self.max_items}; B is dense "
                f"{n_items}x{n_items} (~{n_items**2 * 8 / 2**30:.1f} GB in float64). "
                "Keep the most frequent items or raise max_items if memory allows."
            )
        memory = machine_memory()
        if memory is not None and n_items**2 * 8 > memory:
            raise ValueError(f"EASE: B over {n_items} items is dense {n_items}x{n_items} ({n_items**2 * 8 / 2**30:,.1f} "
                             f"GiB in float64), more than this machine's {memory / 2**30:,.1f} GiB of memory; keep "
                             "the most frequent items")
        X = sp.csr_matrix(
            (np.ones(len(frame)), (user_codes, item_codes)), shape=(n_users, n_items)
        )
        X.sum_duplicates()
        X.data[:] = 1.0
        G = (X.T @ X).toarray()  # float64 co-occurrence counts
        G[np.diag_indices(n_items)] += self.l2
        B = _inverse(G)  # P
        del G
        B /= -np.diag(B).copy()  # column j divided by -P[j, j], in place
        B[np.diag_indices(n_items)] = 0.0
        self.user_ids_ = users.to_numpy()
        self.item_ids_ = items.to_numpy()
        # One extra empty row: the history of a user unseen in training.
        self.X_ = sp.vstack([X, sp.csr_matrix((1, n_items))], format="csr", dtype=np.float32)
        self.B_ = B.astype(np.float32)
        return self

    def _score_fn(self, user_ids, candidate_ids):
        rows = pd.Index(self.user_ids_).get_indexer(np.asarray(user_ids))
        rows = np.where(rows >= 0, rows, len(self.user_ids_))
        pos = pd.Index(self.item_ids_).get_indexer(np.asarray(candidate_ids))
        if np.array_equal(pos, np.arange(len(self.item_ids_))):
            B = self.B_
        else:  # candidates outside the fitted items score 0
            B = np.where(pos >= 0, self.B_[:, np.maximum(pos, 0)], np.float32(0.0))

        def score_fn(start: int, stop: int):
            return np.asarray(self.X_[rows[start:stop]] @ B, np.float32)

        score_fn.num_candidates = B.shape[1]
        return score_fn
