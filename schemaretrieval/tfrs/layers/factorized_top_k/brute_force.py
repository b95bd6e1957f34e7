"""`BruteForce`: exact top-k by scoring every candidate, TFRS's serving layer."""

from __future__ import annotations

import tensorflow as tf

from schemaretrieval.tfrs.layers.factorized_top_k.top_k import TopK, check_query_width, checked_query_model

__all__ = ["BruteForce", "checked_index"]


def checked_index(layer_name, candidates, identifiers):
    """``(candidates, identifiers)`` as tensors, checked: candidates
    ``[num_candidates, dim]``, identifiers ``[num_candidates]`` (default: the
    int32 positions, as in TFRS).

    >>> checked_index("BruteForce", tf.ones((2, 3)), None)[1].numpy().tolist()
    [0, 1]
    >>> checked_index("BruteForce", tf.ones((2, 3)), tf.constant([1, 2, 3]))
    Traceback (most recent call last):
    ...
    ValueError: BruteForce.index: 2 candidates but identifiers of shape (3,)
    """
    candidates = tf.convert_to_tensor(candidates)
    if candidates.shape.rank != 2 or candidates.shape[0] == 0:
        raise ValueError(
            f"{layer_name}.index: candidates must be [num_candidates >= 1, dim], got shape {tuple(candidates.shape)}"
        )
    if not candidates.dtype.is_floating:
        raise ValueError(f"{layer_name}.index: candidates must be floating point embeddings, got {candidates.dtype.name}")
    if identifiers is None:
        identifiers = tf.range(candidates.shape[0])
    identifiers = tf.convert_to_tensor(identifiers)
    if identifiers.shape.rank != 1 or identifiers.shape[0] != candidates.shape[0]:
        raise ValueError(
            f"{layer_name}.index: {candidates.shape[0]} candidates but identifiers of shape {tuple(identifiers.shape)}"
        )
    return candidates, identifiers


class BruteForce(TopK):
    """Exact retrieval: scores every candidate (a dot product) and keeps the top ``k``.

    Args:
        query_model: optional Keras model from raw query features to query
            embeddings; without it the layer is called on query embeddings.
        k: how many candidates a call returns unless it passes ``k``.
        name: the layer's name.

    ``layer(queries, k=None)`` returns ``(scores, identifiers)``, each
    ``[batch, k]``, highest score first. Save it with
    ``tf.saved_model.save(layer, path)`` after calling it once (see
    `schemaretrieval.tfrs.layers.factorized_top_k.top_k`).

    >>> import numpy as np
    >>> index = BruteForce(k=2).index(np.eye(3, dtype="float32"), tf.constant(["a", "b", "c"]))
    >>> scores, ids = index(np.array([[0.1, 0.9, 0.5]], "float32"))
    >>> ids.numpy().tolist(), [round(float(s), 2) for s in scores.numpy()[0]]
    ([[b'b', b'c']], [0.9, 0.5])
    >>> index.query_with_exclusions(np.array([[0.1, 0.9, 0.5]], "float32"), tf.constant([["b"]]))[1].numpy().tolist()
    [[b'c', b'a']]
    """

    def __init__(self, query_model=None, k: int = 10, name: str | None = None):
        super().__init__(k=k, name=name)
        self.query_model = checked_query_model("BruteForce", query_model)
        self._candidates = None
        self._identifiers = None

    def index(self, candidates, identifiers=None) -> "BruteForce":
        """Indexes ``candidates`` ``[num_candidates, dim]`` under ``identifiers``
        (default: their positions); a second call replaces the index. Returns self."""
        candidates, identifiers = checked_index(type(self).__name__, candidates, identifiers)
        # In the dtype Keras casts the queries to: float64 candidates (NumPy's default) failed at the first
        # query with a matmul error naming neither; Streaming casts each batch the same way.
        candidates = tf.cast(candidates, self.compute_dtype)
        self._candidates = tf.Variable(candidates, trainable=False, name="candidates")
        self._identifiers = tf.Variable(identifiers, trainable=False, name="identifiers")
        return self

    def call(self, queries, k: int | None = None):
        self.record_call(queries)
        if self._candidates is None:
            raise ValueError(f"{type(self).__name__}: call index() or index_from_dataset() before querying")
        k = self.call_k(k)
        if isinstance(k, int) and k > self._candidates.shape[0]:
            raise ValueError(f"{type(self).__name__}: k={k} is more than the {self._candidates.shape[0]} candidates indexed")
        if self.query_model is not None:
            queries = self.query_model(queries)
        check_query_width(type(self).__name__, tf.convert_to_tensor(queries), self._candidates)
        scores = self._compute_score(queries, self._candidates)
        scores, positions = tf.math.top_k(scores, k=k)
        return scores, tf.gather(self._identifiers, positions)

    def is_exact(self) -> bool:
        return True

    def _default_call_spec(self):
        if self.query_model is None and self._candidates is not None:
            return tf.TensorSpec([None, self._candidates.shape[1]], self._candidates.dtype)
        return None
