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

import warnings

import numpy as np
import pandas as pd

from schemaretrieval.data.exclusions import Exclusions
from schemaretrieval.retrieval.topk import CHUNK_BYTES, BlockTopK, embedding_scorer, top_k
from schemaretrieval.serving.tuning import choose_width, exact_threshold, sample_queries

__all__ = ["TopKIndex", "BruteForce", "Faiss"]


def _float_matrix(values, what: str, dim: int | None = None, one_row: bool = True) -> np.ndarray:
    """``values`` as a C-contiguous float32 ``[rows, dim]`` of finite numbers, or a
    ValueError naming ``what`` (a 1-D ``values`` is one row when ``one_row``)."""
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
        embeddings = _float_matrix(candidate_embeddings, f"{type(self).__name__}.index: candidate_embeddings",
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
        queries = _float_matrix(query_embeddings, f"{type(self).__name__}.search: query_embeddings", self.dim)
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

    def describe(self) -> dict:
        """What serving.json records of the index: its kind and settings, and its recall.

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

    def describe(self) -> dict:
        return {"kind": "brute-force", "exact": True, "recall@10": 1.0}

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
    """A FAISS index of the dot product (``pip install schemaretrieval[faiss]``).

    Args:
        kind: "flat" (exact, ``IndexFlatIP``), "hnsw" (``IndexHNSWFlat``,
            approximate) or "ivf" (``IndexIVFFlat``, approximate).
        m: HNSW links per node (more: better recall, more memory, slower build).
        ef_construction: HNSW build-time search width.
        ef_search: HNSW query-time search width (raised to k when smaller);
            "auto" (the default): chosen at build time, below.
        nlist: IVF cells (default about 4 * sqrt(num_candidates)).
        nprobe: IVF cells visited per query; "auto" (the default): chosen at build time.
        train_size: IVF k-means sample (default min(num_candidates, 64 * nlist)).
        threads: FAISS's OpenMP threads (None: FAISS's default).
        target_recall: what "auto" aims at: recall@``tune_k`` against the exact
            answer on ``tune_queries`` sampled queries.

    The approximate kinds search a Euclidean index of the vectors with one
    coordinate added, ``sqrt(M^2 - |x|^2)`` (M the largest norm; queries get 0),
    where the nearest vector is the one of the largest dot product (Bachrach et
    al., RecSys 2014), and score what they find by its exact dot product:
    trained towers' vectors differ in norm, and an inner-product HNSW graph over
    them found 0.16 of the exact top-10 where this finds 0.95 (docs/serving.md).

    With "auto", ``index(candidates, ids, queries=)`` samples up to
    ``tune_queries`` queries (the query tower's embeddings when given, else
    catalog vectors), computes their exact top-``tune_k``, and keeps the
    narrowest width that reaches ``target_recall`` (HNSW ``ef_search`` from 16
    to 4096, IVF ``nprobe`` from 1 to ``nlist``). ``recall`` is the recall
    reached at the kept width (also measured for a width given by hand), and
    `describe` reports both; when no width reaches the target the widest is
    kept and a warning says the recall.

    Approximate indexes may, rarely, find fewer than k candidates: those slots
    have score -inf and id `fill_id` (-1, or "" for string ids).

    >>> index = Faiss("flat").index(np.eye(3, dtype="float32"), ids=[10, 20, 30])
    >>> index.search(np.array([[0.1, 0.9, 0.0]]), k=1)[1].tolist()
    [[20]]
    >>> vectors = np.random.default_rng(0).normal(size=(2000, 8)).astype("float32")
    >>> hnsw = Faiss("hnsw").index(vectors)
    >>> hnsw.recall >= 0.95, hnsw.describe()["tuned_on"]
    (True, 'catalog')
    """

    KINDS = ("flat", "hnsw", "ivf")
    EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096)

    def __init__(self, kind: str = "hnsw", m: int = 32, ef_construction: int = 80, ef_search="auto",
                 nlist: int | None = None, nprobe="auto", train_size: int | None = None,
                 threads: int | None = None, seed: int = 0, target_recall: float = 0.95,
                 tune_queries: int = 1000, tune_k: int = 10):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Faiss: kind must be one of {self.KINDS}, got {kind!r}")
        for name, value in (("ef_search", ef_search), ("nprobe", nprobe)):
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"Faiss: {name} must be 'auto' or an int >= 1, got {value!r}")
        if not 0 < target_recall <= 1:
            raise ValueError(f"Faiss: target_recall must be in (0, 1], got {target_recall!r}")
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise ImportError("Faiss needs faiss-cpu: pip install 'schemaretrieval[faiss]' (or faiss-cpu)") from err
        self.kind, self.m, self.ef_construction, self.ef_search = kind, m, ef_construction, ef_search
        self.nlist, self.nprobe, self.train_size, self.threads, self.seed = nlist, nprobe, train_size, threads, seed
        self.target_recall, self.tune_queries, self.tune_k = float(target_recall), int(tune_queries), int(tune_k)
        self.faiss_index = None
        self.recall = 1.0 if kind == "flat" else None
        self.tuned_on = None

    def index(self, candidate_embeddings, ids=None, queries=None) -> "Faiss":
        """Indexes the candidates (see `TopKIndex.index`); ``queries``: query embeddings
        (e.g. ``model.query_embeddings(users)``) to choose the search width on. Returns self."""
        super().index(candidate_embeddings, ids)
        if self.kind != "flat":
            self._tune(queries)
        return self

    def describe(self) -> dict:
        """The index's settings and the recall measured at build time (serving.json's ``index``)."""
        out = {"kind": f"faiss-{self.kind}", "exact": self.kind == "flat"}
        if self.kind == "hnsw":
            out.update(m=self.m, ef_construction=self.ef_construction, ef_search=self._width("ef_search"))
        elif self.kind == "ivf":
            out.update(nlist=int(self.faiss_index.nlist) if self.faiss_index is not None else self.nlist,
                       nprobe=self._width("nprobe"))
        out[f"recall@{self.tune_k}"] = self.recall
        if self.kind != "flat":
            out.update(target_recall=self.target_recall, tuned_on=self.tuned_on)
        return out

    def _width(self, name):
        chosen = getattr(self, f"_{name}", None)
        return chosen if chosen is not None else getattr(self, name)

    def _tune(self, queries):
        """Chooses the search width (or measures the one given) on sampled queries."""
        sample, self.tuned_on = sample_queries(self.embeddings, queries, self.tune_queries, self.seed)
        if sample.ndim != 2 or sample.shape[1] != self.dim:
            raise ValueError(f"Faiss.index: queries must be [num_queries, {self.dim}], got shape {sample.shape}")
        k = min(self.tune_k, len(self))
        threshold = exact_threshold(sample, self.embeddings, k)
        name = "ef_search" if self.kind == "hnsw" else "nprobe"
        if getattr(self, name) == "auto":
            widths = self.EF_SEARCH if self.kind == "hnsw" else tuple(
                w for w in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if w < self.faiss_index.nlist
            ) + (int(self.faiss_index.nlist),)
        else:
            widths = (int(getattr(self, name)),)
        width, self.recall = choose_width(lambda w: self._raw_search(sample, k, w)[1], widths, sample,
                                          self.embeddings, threshold, self.target_recall, k=k)
        setattr(self, f"_{name}", int(width))
        if self.recall < self.target_recall:
            warnings.warn(f"Faiss({self.kind!r}): recall@{k} {self.recall:.3f} at {name}={width} is below the "
                          f"target {self.target_recall}; raise {'ef_construction and m' if self.kind == 'hnsw' else 'nlist'}"
                          " or use the exact index", stacklevel=3)

    def _add(self, embeddings):
        import faiss

        if self.threads is not None:
            faiss.omp_set_num_threads(int(self.threads))
        n, dim = embeddings.shape
        self._ef_search = self._nprobe = None
        if self.kind == "flat":
            index = faiss.IndexFlatIP(dim)
            index.add(embeddings)
            self.faiss_index = index
            return
        # the dot product as a Euclidean distance: one coordinate more (class docstring)
        norms = np.einsum("nd,nd->n", embeddings, embeddings)
        lifted = np.hstack([embeddings, np.sqrt(np.maximum(norms.max() - norms, 0))[:, None]]).astype(np.float32)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim + 1, self.m)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or max(1, min(n, int(4 * np.sqrt(n))))
            self._quantizer = faiss.IndexFlatL2(dim + 1)
            index = faiss.IndexIVFFlat(self._quantizer, dim + 1, nlist)
            size = min(n, self.train_size or 64 * nlist)
            sample = lifted
            if size < n:
                rng = np.random.default_rng(self.seed)
                sample = lifted[np.sort(rng.choice(n, size, replace=False))]
            index.cp.seed = self.seed
            index.train(sample)
        index.add(lifted)
        self.faiss_index = index

    def _raw_search(self, queries, k, width=None):
        """FAISS's ``(scores, positions)``; approximate kinds at ``width`` (default: the kept one)."""
        import faiss

        if self.kind == "flat":
            return self.faiss_index.search(queries, k)
        lifted = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(int(width or self._width("ef_search")), k))
        else:
            params = faiss.SearchParametersIVF(nprobe=int(width or self._width("nprobe")))
        return self.faiss_index.search(lifted, k, params=params)

    def _search(self, queries, k):
        scores, positions = self._raw_search(queries, k)
        positions = positions.astype(np.int64)
        if self.kind != "flat":
            # what the Euclidean index found, scored by its exact dot product, best first
            scores = np.einsum("qd,qkd->qk", queries, self.embeddings[np.maximum(positions, 0)])
            scores = np.where(positions >= 0, scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")
            scores, positions = np.take_along_axis(scores, order, 1), np.take_along_axis(positions, order, 1)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        return scores, positions
