"""`ScaNN`: TFRS's approximate top-k layer, with a partition tree that FAISS
trains and a search written in TensorFlow ops.

Google's ``scann`` cannot stand in: its newest wheel (1.4.2) pins
``tensorflow~=2.20`` and ``numpy~=2.0``, and beside TensorFlow 2.21 its
TensorFlow ops fail to load (``_scann_ops.so: undefined symbol
absl::lts_20250127::raw_log_internal...``), which makes ``import scann`` fail
(docs/migrating.md has the check).

This layer keeps ScaNN's constructor and its first stage, the partition
tree: ``index`` runs FAISS k-means (``training_iterations`` rounds) to split
the candidates into ``num_leaves`` leaves, and a query scores the leaf
centroids, opens its ``num_leaves_to_search`` best leaves and scores their
candidates exactly. It leaves out ScaNN's second stage, anisotropic
quantization: ``dimensions_per_block`` and ``num_reordering_candidates`` are
accepted and change nothing (scores within the opened leaves are exact, as
after a full reordering). The search is TensorFlow ops over `tf.Variable`s,
so ``tf.saved_model.save`` exports the layer whole and a plain TensorFlow
(or TensorFlow Serving, with no custom ops) loads and serves it; FAISS is
needed to build the index only. It returns what FAISS's ``IndexIVFFlat``
returns with the same centroids and ``nprobe = num_leaves_to_search``
(tests/test_tfrs_layers.py checks it).

A query whose opened leaves hold fewer than ``k`` candidates gets score
``-inf`` (distance ``+inf``) and identifier -1 (or ``b""``) in the slots left
over, where ScaNN pads with NaN.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from schemaretrieval.arguments import integer
from schemaretrieval.tfrs.layers.factorized_top_k.brute_force import checked_index
from schemaretrieval.tfrs.layers.factorized_top_k.top_k import TopK, check_query_width, checked_query_model

__all__ = ["ScaNN", "DISTANCE_MEASURES"]

DISTANCE_MEASURES = ("dot_product", "squared_l2")


def _positive_int(name, value):
    return integer(value, "ScaNN", name)


class ScaNN(TopK):
    """Approximate retrieval with ScaNN's interface: candidates split into
    leaves by k-means, a query searching its best leaves only.

    Args:
        query_model: optional Keras model from raw query features to query embeddings.
        k: how many candidates a call returns unless it passes ``k``.
        distance_measure: "dot_product" (scores, highest first) or
            "squared_l2" (distances, lowest first).
        num_leaves: leaves of the partition (at most the number of candidates).
        num_leaves_to_search: leaves a query opens; all of them makes the search exact.
        training_iterations: k-means rounds.
        dimensions_per_block: ScaNN's quantization block; accepted, no effect here.
        num_reordering_candidates: ScaNN's exact re-scoring; accepted, no
            effect here (scores are exact already).
        parallelize_batch_searches: accepted, no effect (TensorFlow
            parallelises a batch of queries itself).
        seed: seed of the k-means.
        name: the layer's name.

    >>> import numpy as np
    >>> catalog = np.random.default_rng(0).normal(size=(500, 8)).astype("float32")
    >>> index = ScaNN(k=5, num_leaves=20, num_leaves_to_search=20).index(catalog)
    >>> exact = np.argsort(-(catalog[:3] @ catalog.T), axis=1)[:, :5]
    >>> bool((index(catalog[:3])[1].numpy() == exact).all())  # every leaf searched: exact
    True
    """

    def __init__(
        self,
        query_model=None,
        k: int = 10,
        distance_measure: str = "dot_product",
        num_leaves: int = 100,
        num_leaves_to_search: int = 10,
        training_iterations: int = 12,
        dimensions_per_block: int = 2,
        num_reordering_candidates: int | None = None,
        parallelize_batch_searches: bool = True,
        seed: int = 0,
        name: str | None = None,
    ):
        super().__init__(k=k, name=name)
        if distance_measure not in DISTANCE_MEASURES:
            raise ValueError(f"ScaNN: distance_measure must be one of {DISTANCE_MEASURES}, got {distance_measure!r}")
        self.num_leaves = _positive_int("num_leaves", num_leaves)
        self.num_leaves_to_search = _positive_int("num_leaves_to_search", num_leaves_to_search)
        if self.num_leaves_to_search > self.num_leaves:
            raise ValueError(
                f"ScaNN: num_leaves_to_search ({num_leaves_to_search}) must be at most num_leaves ({num_leaves})"
            )
        self.training_iterations = _positive_int("training_iterations", training_iterations)
        self.dimensions_per_block = _positive_int("dimensions_per_block", dimensions_per_block)
        if num_reordering_candidates is not None:
            _positive_int("num_reordering_candidates", num_reordering_candidates)
        if not isinstance(parallelize_batch_searches, bool):
            raise ValueError(f"ScaNN: parallelize_batch_searches must be True or False, got {parallelize_batch_searches!r}")
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise ImportError("ScaNN builds its index with FAISS: pip install 'schemaretrieval[faiss]' (or faiss-cpu)") from err
        self.query_model = checked_query_model("ScaNN", query_model)
        self.distance_measure = distance_measure
        self.num_reordering_candidates = num_reordering_candidates
        self.parallelize_batch_searches = parallelize_batch_searches
        self.seed = int(seed)
        self._candidates = None

    def index(self, candidates, identifiers=None) -> "ScaNN":
        """Splits ``candidates`` ``[num_candidates, dim]`` into leaves and indexes
        them under ``identifiers`` (default: their positions). Returns self."""
        import faiss

        candidates, identifiers = checked_index(type(self).__name__, candidates, identifiers)
        embeddings = np.ascontiguousarray(candidates.numpy(), dtype=np.float32)
        n, dim = embeddings.shape
        leaves = min(self.num_leaves, n)
        kmeans = faiss.Kmeans(dim, leaves, niter=self.training_iterations, seed=self.seed,
                              min_points_per_centroid=1, verbose=False)
        kmeans.train(embeddings)
        centroids = kmeans.centroids.astype(np.float32)
        # A candidate joins the leaf a query would pick for it: the highest
        # inner product, or the nearest centroid (as FAISS's IVF quantizer).
        quantizer = faiss.IndexFlatIP(dim) if self.distance_measure == "dot_product" else faiss.IndexFlatL2(dim)
        quantizer.add(centroids)
        leaf_of = quantizer.search(embeddings, 1)[1][:, 0]
        # Candidates stored leaf by leaf, so that a leaf is a row range.
        order = np.argsort(leaf_of, kind="stable")
        splits = np.zeros(leaves + 1, np.int64)
        np.cumsum(np.bincount(leaf_of, minlength=leaves), out=splits[1:])
        self._centroids = tf.Variable(centroids, trainable=False, name="centroids")
        self._leaf_splits = tf.Variable(splits, trainable=False, name="leaf_splits")
        self._candidates = tf.Variable(tf.gather(tf.cast(candidates, tf.float32), order), trainable=False, name="candidates")
        self._identifiers = tf.Variable(tf.gather(identifiers, order), trainable=False, name="identifiers")
        self._leaves_to_search = min(self.num_leaves_to_search, leaves)
        return self

    def is_exact(self) -> bool:
        return False

    def call(self, queries, k: int | None = None):
        self.record_call(queries)
        if self._candidates is None:
            raise ValueError("ScaNN: call index() or index_from_dataset() before querying")
        k = self.call_k(k)
        if self.query_model is not None:
            queries = self.query_model(queries)
        check_query_width(type(self).__name__, tf.convert_to_tensor(queries), self._candidates)
        queries = tf.cast(queries, tf.float32)
        squared_l2 = self.distance_measure == "squared_l2"
        centroids = self._centroids
        # Leaves in the order a query prefers them (-|q - c|^2 up to a per-query constant).
        leaf_scores = tf.matmul(queries, centroids, transpose_b=True)
        if squared_l2:
            leaf_scores = 2.0 * leaf_scores - tf.reduce_sum(tf.square(centroids), axis=1)[None, :]
        leaves = tf.math.top_k(leaf_scores, k=self._leaves_to_search).indices
        # The opened leaves' candidates, query by query: a ragged [queries, (n)] of rows.
        starts = tf.gather(self._leaf_splits[:-1], leaves)
        limits = tf.gather(self._leaf_splits[1:], leaves)
        rows = tf.ragged.range(tf.reshape(starts, [-1]), tf.reshape(limits, [-1]))
        rows = tf.RaggedTensor.from_uniform_row_length(rows, self._leaves_to_search).merge_dims(1, 2)
        candidates = tf.gather(self._candidates, rows.flat_values)
        owners = tf.gather(queries, rows.value_rowids())
        if squared_l2:
            flat_scores = -tf.reduce_sum(tf.square(owners - candidates), axis=1)
        else:
            flat_scores = tf.reduce_sum(owners * candidates, axis=1)
        scores = rows.with_flat_values(flat_scores).to_tensor(default_value=-np.inf)
        positions = rows.to_tensor(default_value=-1)
        # Fewer than k candidates opened: pad, the slots keep -inf and -1.
        short = tf.maximum(k - tf.shape(scores)[1], 0)
        scores = tf.pad(scores, [[0, 0], [0, short]], constant_values=-np.inf)
        positions = tf.pad(positions, [[0, 0], [0, short]], constant_values=-1)
        scores, columns = tf.math.top_k(scores, k=k)
        positions = tf.gather(positions, columns, batch_dims=1)
        identifiers = tf.gather(self._identifiers, tf.maximum(positions, 0))
        fill = tf.constant("" if self._identifiers.dtype == tf.string else -1, self._identifiers.dtype)
        identifiers = tf.where(positions >= 0, identifiers, fill)
        return (-scores if squared_l2 else scores), identifiers

    def _default_call_spec(self):
        if self.query_model is None and self._candidates is not None:
            return tf.TensorSpec([None, self._candidates.shape[1]], tf.float32)
        return None
