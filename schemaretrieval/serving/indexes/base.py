"""`TopKIndex`: what every top-k index shares (the interface is the package's docstring).

An index implements ``_add(embeddings)`` and ``_search(queries, k)``; the
checks of its arguments, its ids and the exclusion of items per query are
done here, once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemaretrieval.arguments import integer
from schemaretrieval.data.exclusions import Exclusions

__all__ = ["TopKIndex", "float_matrix"]


def float_matrix(values, what: str, dim: int | None = None, one_row: bool = True) -> np.ndarray:
    """``values`` as a C-contiguous float32 ``[rows, dim]`` of finite numbers, or a
    ValueError naming ``what`` (a 1-D ``values`` is one row when ``one_row``).

    >>> float_matrix([1, 2], "queries", dim=2).tolist()
    [[1.0, 2.0]]
    >>> float_matrix([[1.0, float("nan")]], "queries")
    Traceback (most recent call last):
    ...
    ValueError: queries: expected finite numbers; NaN or inf in 1 row(s), e.g. rows [0]
    """
    expected = f"[rows, {dim if dim is not None else 'dim'}] finite numbers"
    try:
        matrix = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: expected {expected}, got {type(values).__name__} that is not numeric ({err})") \
            from None
    if matrix.ndim == 1 and one_row:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or (dim is not None and matrix.shape[1] != dim):
        raise ValueError(f"{what}: expected {expected}, got shape {matrix.shape}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"{what}: expected finite numbers; NaN or inf in {len(rows)} row(s), e.g. rows "
                         f"{rows[:5].tolist()}")
    return matrix


class TopKIndex:
    """The shared part: ids, argument checks, exclusion. Subclasses implement
    ``_add(embeddings)`` and ``_search(queries, k) -> (scores, positions)`` (an
    approximate search; exclusion is done here), or override ``_search_excluding``.

    A subclass gets ids, exclusion and the checks from here; for example an
    exact index in NumPy:

    >>> class NumpyIndex(TopKIndex):
    ...     def _add(self, embeddings):
    ...         self.embeddings = embeddings
    ...     def _search(self, queries, k):
    ...         scores = queries @ self.embeddings.T
    ...         positions = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ...         return np.take_along_axis(scores, positions, axis=1), positions
    >>> index = NumpyIndex().index(np.eye(3, dtype="float32"), ids=[10, 20, 30])
    >>> index.search(np.array([[0.2, 0.9, 0.5]]), k=2)[1].tolist()
    [[20, 30]]
    >>> index.search(np.array([[0.2, 0.9, 0.5]]), k=2, exclude=[[20]])[1].tolist()
    [[30, 10]]
    """

    def __init__(self):
        self._ids = None
        self._positions = None
        self.dim = None

    def index(self, candidate_embeddings, ids=None) -> "TopKIndex":
        """Indexes ``candidate_embeddings`` ``[num_candidates, dim]`` under ``ids``
        (default 0..num_candidates-1). Returns self."""
        embeddings = float_matrix(candidate_embeddings, f"{type(self).__name__}.index: candidate_embeddings",
                                   one_row=False)
        if embeddings.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.index: candidate_embeddings must be [num_candidates >= 1, dim], "
                             f"got shape {embeddings.shape}")
        ids = np.arange(len(embeddings)) if ids is None else np.asarray(ids)
        if ids.shape != (len(embeddings),):
            raise ValueError(f"{type(self).__name__}.index: {len(embeddings)} embeddings but ids of shape {ids.shape}")
        positions = pd.Index(ids)
        if not positions.is_unique:
            dup = positions[positions.duplicated()]
            raise ValueError(f"{type(self).__name__}.index: ids must be unique; {len(dup)} duplicates, e.g. {dup[0]!r}")
        self._ids, self._positions, self.dim = ids, positions, embeddings.shape[1]
        self.embeddings = embeddings
        self._add(embeddings)
        return self

    @property
    def ids(self) -> np.ndarray:
        self._require_index()
        return self._ids

    def __len__(self) -> int:
        return 0 if self._ids is None else len(self._ids)

    def search(self, query_embeddings, k: int = 10, exclude=None, users=None):
        """Top-``k`` candidates of each query: ``(scores, ids)``, each ``[num_queries, k]``.

        ``exclude``: an `sr.data.Exclusions` (with ``users``, one id per query),
        or one collection of ids per query, removed from its results."""
        self._require_index()
        queries = float_matrix(query_embeddings, f"{type(self).__name__}.search: query_embeddings", self.dim)
        k, size = integer(k, f"{type(self).__name__}.search", "k"), len(self._ids)
        if k > size:
            raise ValueError(f"k={k} is larger than the catalog size {size}")
        excluded = self._excluded(exclude, users, len(queries))
        if excluded is not None:
            counts = np.diff(excluded[0])
            if len(counts) and counts.max() + k > size:
                q = int(np.argmax(counts))
                raise ValueError(f"k={k}: query {q} excludes {int(counts[q])} of the catalog's {size} items, "
                                 f"leaving {size - int(counts[q])} (< k)")
        scores, positions = self._search_excluding(queries, k, excluded)
        return scores, self._to_ids(positions)

    def describe(self) -> dict:
        """What serving.json records of the index: its kind and settings, and its recall.

        >>> from schemaretrieval.serving.indexes import BruteForce
        >>> BruteForce().describe()
        {'kind': 'brute-force', 'exact': True, 'recall@10': 1.0}
        """
        return {"kind": type(self).__name__, "exact": False}

    def graph_top_k(self):
        """The index as a ``tf.Module`` for a SavedModel; an index that is not a TensorFlow op has none."""
        raise NotImplementedError(
            f"{type(self).__name__} is not a TensorFlow op and cannot go into a SavedModel; export with the exact "
            "index (BruteForce) and serve this one from the export's candidate_embeddings.parquet")

    # -- helpers ------------------------------------------------------------------------

    def _require_index(self):
        if self._ids is None:
            raise ValueError(f"{type(self).__name__}: call index(candidate_embeddings, ids) before search")

    def _excluded(self, exclude, users, num_queries):
        """CSR (indptr, sorted catalog positions) of each query's excluded items, or None."""
        if exclude is None:
            return None
        if not isinstance(exclude, Exclusions):
            if users is not None:
                raise ValueError("search: users= keys an Exclusions; one collection of ids per query needs none")
            if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__len__"):
                raise TypeError("exclude must be an Exclusions or one collection of ids per query")
            if len(exclude) != num_queries:
                raise ValueError(f"exclude has {len(exclude)} entries for {num_queries} queries (one per query)")
            exclude = Exclusions.per_query(exclude)
        if users is None:
            users = np.arange(num_queries)
        elif len(users) != num_queries:
            raise ValueError(f"users has {len(users)} ids for {num_queries} queries (one per query)")
        return exclude.positions(users, self._ids)

    def _search_excluding(self, queries, k, excluded):
        """An approximate search asked for ``k + m`` (``m`` the most excluded items of any
        query), the excluded then dropped: exact for an exact index."""
        counts = np.diff(excluded[0]) if excluded is not None else np.zeros(0, np.int64)
        extra = int(counts.max()) if len(counts) else 0
        if extra == 0:
            return self._search(queries, k)
        indptr, indices = excluded
        scores, positions = self._search(queries, min(k + extra, len(self._ids)))
        rows = np.repeat(np.arange(len(queries)), counts)
        flat = rows.astype(np.int64) * (2**40) + indices
        key = np.arange(len(queries), dtype=np.int64)[:, None] * (2**40) + np.maximum(positions, 0)
        hit = np.searchsorted(flat, key)
        found = np.zeros(positions.shape, bool)
        inside = hit < len(flat)
        found[inside] = flat[hit[inside]] == key[inside]
        found &= positions >= 0
        order = np.argsort(found, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(positions, order, axis=1)

    def _to_ids(self, positions):
        valid = positions >= 0
        if valid.all():
            return self._ids[positions]
        # A slot nothing was found for keeps id fill_id (its score is -inf).
        out = np.full(positions.shape, self.fill_id, dtype=self._ids.dtype)
        out[valid] = self._ids[positions[valid]]
        return out

    @property
    def fill_id(self):
        """Id of a slot an index could not fill (its score is -inf): -1, or "" for string ids."""
        return "" if self._ids.dtype.kind in "USO" else -1

    # -- to implement -------------------------------------------------------------------

    def _add(self, embeddings: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, queries: np.ndarray, k: int):
        raise NotImplementedError
