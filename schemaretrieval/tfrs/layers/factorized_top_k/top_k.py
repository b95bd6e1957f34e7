"""`TopK`: what TFRS's top-k layers share (`index`, `index_from_dataset`,
`call(queries, k)`, `query_with_exclusions`, `is_exact`), and their SavedModel
export.

A layer is a `keras.Model` (as in TFRS) whose candidates and identifiers are
plain `tf.Variable`s, not Keras weights: `index` may be called again with a
catalog of another size after the layer has been called, which Keras 3
forbids for weights, and `tf.saved_model.save` saves them all the same.

`tf.saved_model.save(layer, path)` gives a SavedModel that TensorFlow alone
loads and calls: ``loaded(queries)`` returns ``(scores, identifiers)`` for
every input signature the layer was called with before saving (as in TFRS,
where the first call records it; a layer without a query model is also
callable on ``[batch, dim]`` float32 embeddings), and
``loaded.query_with_exclusions(queries, exclusions)`` for every signature
`query_with_exclusions` was called with. Both use the layer's default ``k``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from schemaretrieval.arguments import integer

__all__ = ["TopK", "check_candidates_dataset", "check_query_width", "checked_query_model", "exclude"]


def check_candidates_dataset(candidates) -> None:
    """Raises a ValueError unless ``candidates`` is a `tf.data.Dataset` of
    embedding batches or of ``(identifiers, embeddings)`` batches.

    >>> check_candidates_dataset(tf.data.Dataset.from_tensor_slices(np.eye(2)).batch(2))
    >>> check_candidates_dataset(tf.data.Dataset.from_tensor_slices(np.eye(2)))
    Traceback (most recent call last):
    ...
    ValueError: candidates must yield batches of embeddings [batch, dim] (call .batch() on the dataset), got elements of shape (2,)
    """
    if not isinstance(candidates, tf.data.Dataset):
        raise TypeError(f"candidates must be a tf.data.Dataset, got {type(candidates).__name__}")
    spec = candidates.element_spec
    embeddings = spec
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(
                f"candidates must yield embeddings or (identifiers, embeddings) pairs; got a tuple of {len(spec)}"
            )
        ids, embeddings = spec
        if ids.shape[:1] != embeddings.shape[:1] and None not in (ids.shape[0], embeddings.shape[0]):
            raise ValueError(
                "candidates: identifiers and embeddings must have the same batch dimension, "
                f"got {ids.shape[0]} and {embeddings.shape[0]}"
            )
    if getattr(embeddings, "shape", None) is None or embeddings.shape.rank != 2:
        raise ValueError(
            "candidates must yield batches of embeddings [batch, dim] (call .batch() on the dataset), "
            f"got elements of shape {getattr(embeddings, 'shape', embeddings)}"
        )


def checked_query_model(layer_name, query_model):
    """``query_model`` when it is None or callable (a Keras model, a function from raw
    query features to embeddings); anything else is a TypeError at construction, where
    otherwise the first call would fail inside Keras.

    >>> checked_query_model("BruteForce", None) is None
    True
    >>> checked_query_model("BruteForce", "user_model")
    Traceback (most recent call last):
    ...
    TypeError: BruteForce: query_model must be None or a callable from query features to embeddings (a Keras model), got 'user_model'
    """
    if query_model is not None and not callable(query_model):
        raise TypeError(f"{layer_name}: query_model must be None or a callable from query features to embeddings "
                        f"(a Keras model), got {query_model!r:.100}")
    return query_model


def check_query_width(layer_name, queries, candidates) -> None:
    """A ValueError naming both widths when query embeddings ``[batch, d]`` and the indexed
    candidates ``[n, d']`` differ, where the shapes are known (TensorFlow's matmul names neither).

    >>> check_query_width("BruteForce", tf.ones((2, 5)), tf.ones((10, 3)))
    Traceback (most recent call last):
    ...
    ValueError: BruteForce: query embeddings of width 5 against candidates of width 3 (shapes (2, 5) and (10, 3)); expected one width
    """
    width, other = queries.shape[-1], candidates.shape[-1]
    if queries.shape.rank != 2:
        raise ValueError(f"{layer_name}: query embeddings must be [batch, dim], got shape {tuple(queries.shape)}")
    if width is not None and other is not None and width != other:
        raise ValueError(f"{layer_name}: query embeddings of width {width} against candidates of width {other} "
                         f"(shapes {tuple(queries.shape)} and {tuple(candidates.shape)}); expected one width")


def exclude(scores, identifiers, exclusions, k):
    """The top ``k`` of ``(scores, identifiers)`` ``[batch, n]`` once each row's
    ``exclusions`` ``[batch, m]`` are removed (excluded candidates go last, so a
    row with fewer than ``k`` left still gets ``k`` columns, as in TFRS).

    >>> scores, ids = exclude(tf.constant([[3.0, 2.0, 1.0]]), tf.constant([["a", "b", "c"]]), tf.constant([["a"]]), 2)
    >>> ids.numpy().tolist(), scores.numpy().tolist()
    ([[b'b', b'c']], [[2.0, 1.0]])
    """
    excluded = tf.reduce_any(tf.equal(identifiers[:, :, None], exclusions[:, None, :]), axis=-1)
    ranked = tf.where(excluded, tf.cast(-np.inf, scores.dtype), scores)
    _, columns = tf.math.top_k(ranked, k=tf.minimum(k, tf.shape(scores)[1]))
    return tf.gather(scores, columns, batch_dims=1), tf.gather(identifiers, columns, batch_dims=1)


def _batch_free_spec(value):
    """The TensorSpec of ``value`` with the batch dimension left open."""
    value = tf.convert_to_tensor(value) if not isinstance(value, tf.TensorSpec) else value
    shape = value.shape
    return tf.TensorSpec([None] + list(shape[1:]) if shape.rank else shape, value.dtype)


class TopK(keras.Model):
    """The interface of TFRS's top-k layers. A subclass implements
    ``index(candidates, identifiers=None)``, ``call(queries, k=None)`` and
    ``is_exact()``; it may override ``_compute_score(queries, candidates)``
    (the dot product), as in TFRS.

    >>> class Last(TopK):  # returns the last k candidates, whatever the query
    ...     def index(self, candidates, identifiers=None):
    ...         self.ids = tf.constant(identifiers)
    ...         return self
    ...     def call(self, queries, k=None):
    ...         self.record_call(queries)
    ...         k = k or self.k
    ...         ids = tf.tile(self.ids[None, -k:], [tf.shape(queries)[0], 1])
    ...         return tf.zeros(tf.shape(ids)), ids
    ...     def is_exact(self):
    ...         return False
    >>> layer = Last(k=2).index_from_dataset(tf.data.Dataset.from_tensor_slices((["a", "b", "c"], np.eye(3))).batch(2))
    >>> layer(np.ones((1, 3)))[1].numpy().tolist()
    [[b'b', b'c']]
    >>> layer.query_with_exclusions(np.ones((1, 3)), tf.constant([["c"]]))[1].numpy().tolist()
    [[b'a', b'b']]
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self._k = integer(k, type(self).__name__, "k")
        # Input signatures seen by `call` and `query_with_exclusions`: the
        # SavedModel's functions are traced for these (module docstring).
        self._call_specs = []
        self._exclusion_specs = []

    @property
    def k(self) -> int:
        """The default number of candidates a call returns."""
        return self._k

    def __call__(self, queries, k=None, **kwargs):
        # Before Keras turns a NumPy k into a tensor, which only top_k would check.
        return super().__call__(queries, k=self.call_k(k), **kwargs)

    def call_k(self, k):
        """A call's ``k``: the layer's own when None; a Python or NumPy int is checked
        here, a tensor (the SavedModel's traced calls) by ``tf.math.top_k``."""
        if k is None:
            return self._k
        if tf.is_tensor(k):
            return k
        return integer(k, type(self).__name__, "k")

    def index(self, candidates, identifiers=None) -> "TopK":
        """Builds the index over ``candidates`` ``[num_candidates, dim]``, returned
        under ``identifiers`` (default: their positions). Returns self."""
        raise NotImplementedError(f"{type(self).__name__} implements no index()")

    def index_from_dataset(self, candidates: tf.data.Dataset) -> "TopK":
        """Builds the index from a dataset of embedding batches, or of
        ``(identifiers, embeddings)`` batches. Returns self."""
        check_candidates_dataset(candidates)
        batches = list(candidates)
        if not batches:
            raise ValueError(f"{type(self).__name__}.index_from_dataset: the candidates dataset is empty")
        if isinstance(candidates.element_spec, tuple):
            return self.index(tf.concat([e for _, e in batches], axis=0), tf.concat([i for i, _ in batches], axis=0))
        return self.index(tf.concat(batches, axis=0))

    def is_exact(self) -> bool:
        """Whether the scores and candidates returned are exact."""
        raise NotImplementedError(f"{type(self).__name__} implements no is_exact()")

    def query_with_exclusions(self, queries, exclusions, k: int | None = None):
        """The top ``k`` candidates of each query, leaving out that query's row
        of ``exclusions`` (``[batch, num_excluded]`` identifiers, e.g. the items a
        user has seen). Returns ``(scores, identifiers)``."""
        exclusions = tf.convert_to_tensor(exclusions)
        if exclusions.shape.rank != 2:
            raise ValueError(
                f"{type(self).__name__}.query_with_exclusions: exclusions must be [batch, num_excluded], "
                f"got shape {exclusions.shape}"
            )
        self._remember(self._exclusion_specs, (queries, exclusions))
        k = self.call_k(k)
        extra = exclusions.shape[1] if exclusions.shape[1] is not None else tf.shape(exclusions)[1]
        indexed = getattr(self, "_candidates", None)
        if isinstance(indexed, tf.Variable) and isinstance(k, int) and isinstance(extra, int):
            size = int(indexed.shape[0])
            if k > size:  # named here: the call below asks for k plus the exclusions
                raise ValueError(f"{type(self).__name__}: k={k} is more than the {size} candidates indexed")
            extra = min(extra, size - k)  # excluded candidates are at most all the others
        scores, identifiers = self(queries, k=k + extra)
        return exclude(scores, identifiers, tf.cast(exclusions, identifiers.dtype), k)

    def record_call(self, queries) -> None:
        """Notes the signature of ``queries`` for the SavedModel export; a
        subclass's `call` calls it first."""
        self._remember(self._call_specs, queries)

    def _compute_score(self, queries, candidates):
        return tf.matmul(queries, candidates, transpose_b=True)

    def _default_call_spec(self):
        """The query signature to export when the layer was never called (None: none)."""
        return None

    @staticmethod
    def _remember(specs, value):
        spec = tf.nest.map_structure(_batch_free_spec, value)
        if spec not in specs:
            specs.append(spec)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "savedmodel":
            return children
        call_specs = self._call_specs or [s for s in [self._default_call_spec()] if s is not None]
        if call_specs:
            serve = tf.function(lambda queries: self.call(queries))
            for spec in list(call_specs):
                serve.get_concrete_function(spec)
            children["__call__"] = serve
        if self._exclusion_specs:
            with_exclusions = tf.function(lambda queries, exclusions: self.query_with_exclusions(queries, exclusions))
            for queries, exclusions in list(self._exclusion_specs):
                with_exclusions.get_concrete_function(queries, exclusions)
            children["query_with_exclusions"] = with_exclusions
        return children
