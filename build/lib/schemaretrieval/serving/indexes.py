"""Top-k indexes over candidate embeddings: exact brute force (the top-k engine), and FAISS.

Every index has one interface::

    index = BruteForce()                          # or Faiss("hnsw", m=32, ef_search=128)
    index.index(candidate_embeddings, ids)        # [num_candidates, dim], [num_candidates]
    scores, ids = index.search(query_embeddings, k=10, exclude=None, users=None)

* Scores are dot products, highest first, ``[num_queries, k]`` float32; ``ids``
  are the given ids (any dtype: int64, strings) in the same layout.
* ``exclude`` leaves items out of each query's results: an `sr.data.Exclusions`
  keyed by ``users`` (one user id per query), or one collection of ids per
  query. ``k`` results are still returned: exact for an exact index; an
  approximate one is asked for ``k`` more than the most items any query of the
  chunk excludes, then the excluded are dropped.
* ``k`` larger than the catalog, or than what is left of it after exclusion,
  is a ValueError that says the catalog size.
* ``graph_top_k()`` is the index inside a SavedModel (`export.export_serving`):
  a ``tf.Module`` ``(queries, k, excluded positions) -> (scores, positions)``.
  A subclass that gives one exports as it is; FAISS, not a TensorFlow op, does not.

Why not ``keras_rs.layers.BruteForceRetrieval`` (keras-rs 0.4.0): it scores
every query against every candidate in one ``[num_queries, num_candidates]``
matrix (1 GB for 256 queries x 1M items), stores ids as int32 (no string or
int64 ids), fixes ``k`` at construction and has no exclusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemaretrieval.data.exclusions import Exclusions
from schemaretrieval.retrieval.topk import CHUNK_BYTES, BlockTopK, embedding_scorer, top_k

__all__ = ["TopKIndex", "BruteForce", "Faiss"]


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
        embeddings = np.ascontiguousarray(np.asarray(candidate_embeddings, dtype=np.float32))
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
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
        queries = np.ascontiguousarray(np.asarray(query_embeddings, dtype=np.float32))
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__}.search: query_embeddings must be [num_queries, {self.dim}], "
                             f"got shape {queries.shape}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{type(self).__name__}.search: k must be an int >= 1, got {k!r}")
        k, size = int(k), len(self._ids)
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


class BruteForce(TopKIndex):
    """Exact top-k through the top-k engine (`retrieval.topk`): chunks of queries under
    one memory budget, excluded items scored -inf before the top-k.

    >>> index = BruteForce().index(np.eye(4, dtype="float32"), ids=["a", "b", "c", "d"])
    >>> scores, ids = index.search(np.array([[0.0, 1.0, 0.5, 0.0]]), k=2, exclude=[["b"]])
    >>> ids.tolist(), scores.tolist()
    ([['c', 'a']], [[0.5, 0.0]])
    """

    def __init__(self, chunk_bytes: int = CHUNK_BYTES):
        super().__init__()
        self.chunk_bytes = int(chunk_bytes)

    def _add(self, embeddings):
        self._scorer_of = lambda queries: embedding_scorer(queries, embeddings)

    def _search(self, queries, k):
        return self._search_excluding(queries, k, None)

    def _search_excluding(self, queries, k, excluded):
        return top_k(self._scorer_of(queries), len(queries), len(self._ids), k, excluded, self.chunk_bytes)

    def graph_top_k(self):
        """The exact top-k as a ``tf.Module`` (`retrieval.topk.BlockTopK`)."""
        self._require_index()
        return BlockTopK(self.embeddings)


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

    >>> index = Faiss("flat").index(np.eye(3, dtype="float32"), ids=[10, 20, 30])
    >>> index.search(np.array([[0.1, 0.9, 0.0]]), k=1)[1].tolist()
    [[20]]
    """

    KINDS = ("flat", "hnsw", "ivf")

    def __init__(self, kind: str = "hnsw", m: int = 32, ef_construction: int = 80, ef_search: int = 64,
                 nlist: int | None = None, nprobe: int = 16, train_size: int | None = None,
                 threads: int | None = None, seed: int = 0):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Faiss: kind must be one of {self.KINDS}, got {kind!r}")
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise ImportError("Faiss needs faiss-cpu: pip install 'schemaretrieval[faiss]' (or faiss-cpu)") from err
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


