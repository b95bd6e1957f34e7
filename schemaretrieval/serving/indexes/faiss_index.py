"""`Faiss`: FAISS's flat, HNSW and IVF indexes of the dot product, their search
width chosen at build time for a target recall (`serving.tuning`)."""

from __future__ import annotations

import warnings

import numpy as np

from schemaretrieval.arguments import integer, number
from schemaretrieval.serving.indexes.base import TopKIndex, float_matrix
from schemaretrieval.serving.tuning import choose_width, exact_threshold, sample_queries

__all__ = ["Faiss"]

#: HNSW links per node and build-time search width (docs/defaults.md).
DEFAULT_M, DEFAULT_EF_CONSTRUCTION = 32, 80


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

    def __init__(self, kind: str = "hnsw", m: int = DEFAULT_M, ef_construction: int = DEFAULT_EF_CONSTRUCTION,
                 ef_search="auto",
                 nlist: int | None = None, nprobe="auto", train_size: int | None = None,
                 threads: int | None = None, seed: int = 0, target_recall: float = 0.95,
                 tune_queries: int = 1000, tune_k: int = 10):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Faiss: kind must be one of {self.KINDS}, got {kind!r}")
        # FAISS does not check these: HNSW aborts on m=0, crashes on m=1 and loops on m < 0.
        m = integer(m, "Faiss", "m", minimum=2)
        ef_construction = integer(ef_construction, "Faiss", "ef_construction")
        for name, value in (("ef_search", ef_search), ("nprobe", nprobe)):
            if not (isinstance(value, str) and value == "auto"):
                try:
                    integer(value, "Faiss", name)
                except ValueError:
                    raise ValueError(f"Faiss: {name} must be 'auto' or an integer >= 1, got {value!r}") from None
        nlist, train_size, threads = (None if value is None else integer(value, "Faiss", name)
                                      for name, value in (("nlist", nlist), ("train_size", train_size),
                                                          ("threads", threads)))
        seed = integer(seed, "Faiss", "seed", minimum=0)
        target_recall = number(target_recall, "Faiss", "target_recall", above=0, at_most=1)
        tune_queries, tune_k = integer(tune_queries, "Faiss", "tune_queries"), integer(tune_k, "Faiss", "tune_k")
        # An option of another kind is refused rather than ignored.
        given = {"m": m != DEFAULT_M, "ef_construction": ef_construction != DEFAULT_EF_CONSTRUCTION, "ef_search": ef_search != "auto",
                 "nlist": nlist is not None, "nprobe": nprobe != "auto", "train_size": train_size is not None}
        read = {"flat": (), "hnsw": ("m", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe", "train_size")}
        unread = [name for name, set_ in given.items() if set_ and name not in read[kind]]
        if unread:
            raise ValueError(f"Faiss: kind={kind!r} does not read {', '.join(unread)} "
                             f"({'an exact index has no options' if kind == 'flat' else 'it reads ' + ', '.join(read[kind])})")
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise ImportError("Faiss needs faiss-cpu: pip install 'schemaretrieval[faiss]' (or faiss-cpu)") from err
        self.kind, self.m, self.ef_construction, self.ef_search = kind, m, ef_construction, ef_search
        self.nlist, self.nprobe, self.train_size, self.threads, self.seed = nlist, nprobe, train_size, threads, seed
        self.target_recall, self.tune_queries, self.tune_k = target_recall, tune_queries, tune_k
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
        if queries is not None:
            # as search checks them: NaN queries would measure recall 0, none would measure NaN
            queries = float_matrix(queries, "Faiss.index: queries", self.dim, one_row=False)
            if not len(queries):
                raise ValueError(f"Faiss.index: queries must be [num_queries >= 1, {self.dim}], got none; give "
                                 "query embeddings to tune on, or None to tune on the catalog's")
            self._check_norms(queries, "Faiss.index: queries")
        sample, self.tuned_on = sample_queries(self.embeddings, queries, self.tune_queries, self.seed)
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
        self._check_norms(embeddings, f"Faiss({self.kind!r}).index: candidate_embeddings")
        norms = np.einsum("nd,nd->n", embeddings, embeddings)
        lifted = np.hstack([embeddings, np.sqrt(np.maximum(norms.max() - norms, 0))[:, None]]).astype(np.float32)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim + 1, self.m)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or max(1, min(n, int(4 * np.sqrt(n))))
            size = min(n, self.train_size or 64 * nlist)
            if nlist > size:  # FAISS's k-means needs a point per cell: its own error names neither
                raise ValueError(f"Faiss('ivf'): nlist {nlist} cells need at least as many training vectors, "
                                 f"got {size} ({'train_size' if size < n else 'candidates'}); lower nlist")
            if self.nprobe != "auto" and self.nprobe > nlist:
                raise ValueError(f"Faiss('ivf'): nprobe {self.nprobe} visits more cells than the index's nlist "
                                 f"{nlist}; give nprobe <= nlist, or 'auto'")
            self._quantizer = faiss.IndexFlatL2(dim + 1)
            index = faiss.IndexIVFFlat(self._quantizer, dim + 1, nlist)
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

    def _check_norms(self, vectors, what):
        """The approximate kinds compute squared distances in float32: a squared norm past a quarter
        of float32's largest would make them inf or NaN, and the search find nothing without a word."""
        squared = np.einsum("nd,nd->n", vectors.astype(np.float64), vectors.astype(np.float64))
        if len(squared) and squared.max() > np.finfo(np.float32).max / 4:
            row = int(np.argmax(squared))
            raise ValueError(f"{what}: row {row} has a squared norm of {squared[row]:.3g}, beyond what Faiss's "
                             f"{self.kind!r} search computes distances in (float32, about 8.5e37); scale the "
                             "embeddings, or use the exact index")

    def _search(self, queries, k):
        if self.kind != "flat":
            self._check_norms(queries, f"Faiss({self.kind!r}).search: query_embeddings")
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
