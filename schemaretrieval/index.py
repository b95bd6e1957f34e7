"""Top-k indexes over candidate embeddings: exact brute force in TensorFlow,
and FAISS (exact or approximate).

Both share one interface::

    index = BruteForce()                       # or Faiss("hnsw", m=32, ef_search=128)
    index.index(candidate_embeddings, ids)     # [num_candidates, dim], [num_candidates]
    scores, ids = index.search(query_embeddings, k=10, exclude=None)

* Scores are dot products (inner products), highest first, ``[num_queries, k]``
  float32; ``ids`` are the given ids (any dtype: int64, strings, ...) in the
  same layout.
* ``exclude`` removes ids per query (e.g. the items a user has already seen):
  a sequence with one collection of ids per query (ids not in the catalog are
  ignored). ``k`` results are still returned: the search asks the index for
  ``k + m`` results, ``m`` being the largest number of excluded catalog items
  of any query in the chunk, and drops the excluded ones, which is exact for
  an exact index.
* ``k`` larger than the catalog, or than what is left of it after exclusion,
  is a ValueError that says the catalog size.

Why not ``keras_rs.layers.BruteForceRetrieval`` (keras-rs 0.4.0): it scores
every query against every candidate in one ``[num_queries, num_candidates]``
matrix (1 GB for 256 queries x 1M items), stores ids as int32 (no string or
int64 ids), fixes ``k`` at construction and has no exclusion. `BruteForce`
chunks the queries under a memory budget and keeps ids as given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

__all__ = ["TopKIndex", "BruteForce", "Faiss"]

DEFAULT_CHUNK_BYTES = 128 * 2**20
"""Budget of one chunk of float32 scores in `BruteForce.search` (128 MB)."""


class TopKIndex:
    """The shared part: ids, argument checks, exclusion. Subclasses implement
    `_add(embeddings)` and `_search(queries, k) -> (scores, positions)`.

    A subclass gets ids, exclusion and the checks from here; for example an
    exact index in NumPy:

    >>> import numpy as np
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

    # public interface -----------------------------------------------------

    def index(self, candidate_embeddings, ids=None) -> "TopKIndex":
        """Indexes ``candidate_embeddings`` ``[num_candidates, dim]`` under
        ``ids`` (default 0..num_candidates-1). Returns self."""
        embeddings = np.ascontiguousarray(np.asarray(candidate_embeddings, dtype=np.float32))
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(
                f"{type(self).__name__}.index: candidate_embeddings must be [num_candidates >= 1, dim], "
                f"got shape {embeddings.shape}"
            )
        ids = np.arange(len(embeddings)) if ids is None else np.asarray(ids)
        if ids.shape != (len(embeddings),):
            raise ValueError(
                f"{type(self).__name__}.index: {len(embeddings)} embeddings but ids of shape {ids.shape}"
            )
        positions = pd.Index(ids)
        if not positions.is_unique:
            dup = positions[positions.duplicated()]
            raise ValueError(f"{type(self).__name__}.index: ids must be unique; {len(dup)} duplicates, e.g. {dup[0]!r}")
        self._ids, self._positions, self.dim = ids, positions, embeddings.shape[1]
        self._add(embeddings)
        return self

    @property
    def ids(self) -> np.ndarray:
        self._require_index()
        return self._ids

    def __len__(self) -> int:
        return 0 if self._ids is None else len(self._ids)

    def search(self, query_embeddings, k: int = 10, exclude: Sequence | None = None):
        """Top-``k`` candidates of each query: ``(scores, ids)``, each ``[num_queries, k]``.

        ``exclude``: one collection of ids per query, removed from its results.
        """
        self._require_index()
        queries = np.ascontiguousarray(np.asarray(query_embeddings, dtype=np.float32))
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}.search: query_embeddings must be [num_queries, {self.dim}], "
                f"got shape {queries.shape}"
            )
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{type(self).__name__}.search: k must be an int >= 1, got {k!r}")
        k = int(k)
        size = len(self._ids)
        if k > size:
            raise ValueError(f"k={k} is larger than the catalog size {size}")
        if exclude is None:
            scores, positions = self._search(queries, k)
            return scores, self._to_ids(positions)
        indptr, indices = self._exclusions(exclude, len(queries))
        counts = np.diff(indptr)
        if len(counts) and counts.max() + k > size:
            q = int(np.argmax(counts))
            raise ValueError(
                f"k={k}: query {q} excludes {int(counts[q])} of the catalog's {size} items, "
                f"leaving {size - int(counts[q])} (< k)"
            )
        extra = int(counts.max()) if len(counts) else 0
        if extra == 0:
            scores, positions = self._search(queries, k)
            return scores, self._to_ids(positions)
        scores, positions = self._search(queries, min(k + extra, size))
        # Drop excluded positions: mark them, then stable-sort the kept ones first.
        rows = np.repeat(np.arange(len(queries)), counts)
        excluded = np.zeros(positions.shape, bool)
        for offset in range(positions.shape[1]):  # k + m columns, vectorised over queries
            col = positions[:, offset]
            excluded[:, offset] = _in_csr(col, indptr, indices, rows)
        order = np.argsort(excluded, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(scores, order, axis=1)
        positions = np.take_along_axis(positions, order, axis=1)
        return scores, self._to_ids(positions)

    # helpers ------------------------------------------------------------

    def _require_index(self):
        if self._ids is None:
            raise ValueError(f"{type(self).__name__}: call index(candidate_embeddings, ids) before search")

    def _to_ids(self, positions):
        valid = positions >= 0
        if valid.all():
            return self._ids[positions]
        # An approximate index may find fewer than k: those slots keep id fill_id.
        out = np.full(positions.shape, self.fill_id, dtype=self._ids.dtype)
        out[valid] = self._ids[positions[valid]]
        return out

    @property
    def fill_id(self):
        """Id of a slot an approximate index could not fill (its score is -inf)."""
        return "" if self._ids.dtype.kind in "USO" else -1

    def _exclusions(self, exclude, num_queries):
        """CSR (indptr, sorted positions) of the excluded catalog items per query."""
        if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__len__"):
            raise TypeError("exclude must be a sequence with one collection of ids per query")
        if len(exclude) != num_queries:
            raise ValueError(f"exclude has {len(exclude)} entries for {num_queries} queries (one per query)")
        rows = []
        for ids in exclude:
            ids = np.asarray([] if ids is None else list(ids) if not isinstance(ids, np.ndarray) else ids)
            pos = self._positions.get_indexer(ids.ravel()) if ids.size else np.zeros(0, np.int64)
            rows.append(np.unique(pos[pos >= 0]).astype(np.int64))
        indptr = np.zeros(num_queries + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return indptr, indices

    # to implement ------------------------------------------------------------

    def _add(self, embeddings: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, queries: np.ndarray, k: int):
        raise NotImplementedError


def _in_csr(col, indptr, indices, rows):
    """For each query q: whether col[q] is among indices[indptr[q]:indptr[q+1]] (sorted)."""
    # Search col[q] in its own row's slice: offset rows so the slices are one sorted array.
    n = len(col)
    key = np.arange(n, dtype=np.int64) * (2**40) + np.maximum(col, 0)
    flat = rows.astype(np.int64) * (2**40) + indices
    hit = np.searchsorted(flat, key)
    found = np.zeros(n, bool)
    inside = hit < len(flat)
    found[inside] = flat[hit[inside]] == key[inside]
    return found & (col >= 0)


@tf.function(reduce_retracing=True)
def _topk_chunk(queries, candidates_t, k):
    scores = tf.matmul(queries, candidates_t)
    return tf.math.top_k(scores, k=k, sorted=True)


class BruteForce(TopKIndex):
    """Exact top-k: one TensorFlow matmul and ``top_k`` per chunk of queries.

    Queries are taken in chunks of ``chunk_bytes // (4 * num_candidates)``
    rows so that a chunk's score matrix stays within the budget (128 MB: 32
    queries x 1M candidates).

    >>> import numpy as np
    >>> index = BruteForce().index(np.eye(4, dtype="float32"), ids=["a", "b", "c", "d"])
    >>> scores, ids = index.search(np.array([[0.0, 1.0, 0.5, 0.0]]), k=2, exclude=[["b"]])
    >>> ids.tolist(), scores.tolist()
    ([['c', 'a']], [[0.5, 0.0]])
    """

    def __init__(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        super().__init__()
        self.chunk_bytes = int(chunk_bytes)
        self._candidates_t = None

    def _add(self, embeddings):
        # [dim, N] once: faster on CPU than transpose_b per call (see evaluation).
        self._candidates_t = tf.constant(np.ascontiguousarray(embeddings.T))

    def _search(self, queries, k):
        size = len(self._ids)
        chunk = max(1, self.chunk_bytes // (4 * size))
        scores, positions = [], []
        for start in range(0, len(queries), chunk):
            s, p = _topk_chunk(tf.constant(queries[start : start + chunk]), self._candidates_t, tf.constant(k))
            scores.append(s.numpy())
            positions.append(p.numpy().astype(np.int64))
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(positions)


class Faiss(TopKIndex):
    """A FAISS inner-product index (``pip install schemaretrieval[faiss]``).

    Args:
        kind: "flat" (exact, ``IndexFlatIP``), "hnsw" (``IndexHNSWFlat``,
            approximate) or "ivf" (``IndexIVFFlat``, approximate).
        m: HNSW links per node (more: better recall, more memory, slower build).
        ef_construction: HNSW build-time search width.
        ef_search: HNSW query-time search width (raised to k when smaller).
        nlist: IVF cells (default about 4 * sqrt(num_candidates)).
        nprobe: IVF cells visited per query.
        train_size: IVF k-means sample (default min(num_candidates, 64 * nlist)).
        threads: FAISS's OpenMP threads (None: FAISS's default).

    Approximate indexes may, rarely, find fewer than k candidates: those slots
    have score -inf and id `fill_id` (-1, or "" for string ids).

    >>> import numpy as np
    >>> index = Faiss("flat").index(np.eye(3, dtype="float32"), ids=[10, 20, 30])
    >>> index.search(np.array([[0.1, 0.9, 0.0]]), k=1)[1].tolist()
    [[20]]
    """

    KINDS = ("flat", "hnsw", "ivf")

    def __init__(
        self,
        kind: str = "hnsw",
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
        train_size: int | None = None,
        threads: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Faiss: kind must be one of {self.KINDS}, got {kind!r}")
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "Faiss needs faiss-cpu: pip install 'schemaretrieval[faiss]' (or faiss-cpu)"
            ) from err
        self.kind, self.m, self.ef_construction, self.ef_search = kind, m, ef_construction, ef_search
        self.nlist, self.nprobe, self.train_size, self.threads, self.seed = nlist, nprobe, train_size, threads, seed
        self.faiss_index = None

    def _add(self, embeddings):
        import faiss

        if self.threads is not None:
            faiss.omp_set_num_threads(int(self.threads))
        n, dim = embeddings.shape
        if self.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or max(1, min(n, int(4 * np.sqrt(n))))
            self._quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            size = min(n, self.train_size or 64 * nlist)
            sample = embeddings
            if size < n:
                rng = np.random.default_rng(self.seed)
                sample = embeddings[np.sort(rng.choice(n, size, replace=False))]
            index.cp.seed = self.seed
            index.train(sample)
        index.add(embeddings)
        self.faiss_index = index

    def _search(self, queries, k):
        import faiss

        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            scores, positions = self.faiss_index.search(queries, k, params=params)
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
            scores, positions = self.faiss_index.search(queries, k, params=params)
        else:
            scores, positions = self.faiss_index.search(queries, k)
        positions = positions.astype(np.int64)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        return scores, positions
