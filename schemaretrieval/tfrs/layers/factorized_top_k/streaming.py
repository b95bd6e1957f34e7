"""`Streaming`: exact top-k over a `tf.data.Dataset` of candidates, read anew on every call.

`FactorizedTopK(candidates=dataset)` builds one of these: because the dataset
is read at each call, a dataset that maps a candidate tower
(``movies.batch(128).map(movie_model)``) is scored with the tower's current
weights while the model trains.
"""

from __future__ import annotations

import tensorflow as tf

from schemaretrieval.tfrs.layers.factorized_top_k.top_k import (
    TopK,
    check_candidates_dataset,
    check_query_width,
    checked_query_model,
)

__all__ = ["Streaming"]


class Streaming(TopK):
    """Exact retrieval that streams the candidates: each batch of the dataset
    is scored and cut to its top ``k``, and those are merged into a running
    top ``k``.

    Args:
        query_model: optional Keras model from raw query features to query embeddings.
        k: how many candidates a call returns unless it passes ``k``.
        handle_incomplete_batches: when True, batches smaller than ``k``
            (e.g. the last one) are handled; when False such a batch is an error.
        num_parallel_calls: parallelism of the per-batch scoring (``tf.data.AUTOTUNE``).
        sorted_order: whether results come sorted by score.
        name: the layer's name.

    Index it with ``index_from_dataset`` (``index`` is not available: the
    layer holds a dataset, not a tensor). A dataset of bare embeddings
    returns the candidates' positions (int32) as identifiers.

    >>> import numpy as np
    >>> catalog = tf.data.Dataset.from_tensor_slices((["a", "b", "c"], np.eye(3, dtype="float32"))).batch(2)
    >>> scores, ids = Streaming(k=2).index_from_dataset(catalog)(np.array([[0.1, 0.9, 0.5]], "float32"))
    >>> ids.numpy().tolist()
    [[b'b', b'c']]
    """

    def __init__(
        self,
        query_model=None,
        k: int = 10,
        handle_incomplete_batches: bool = True,
        num_parallel_calls: int = tf.data.AUTOTUNE,
        sorted_order: bool = True,
        name: str | None = None,
    ):
        super().__init__(k=k, name=name)
        for option, value in [("handle_incomplete_batches", handle_incomplete_batches), ("sorted_order", sorted_order)]:
            if not isinstance(value, bool):
                raise ValueError(f"Streaming: {option} must be True or False, got {value!r}")
        if isinstance(num_parallel_calls, bool) or not isinstance(num_parallel_calls, int) or (
                num_parallel_calls < 1 and num_parallel_calls != tf.data.AUTOTUNE):
            raise ValueError(f"Streaming: num_parallel_calls must be an int >= 1 or tf.data.AUTOTUNE, got {num_parallel_calls!r}")
        self.query_model = checked_query_model("Streaming", query_model)
        self._handle_incomplete_batches = handle_incomplete_batches
        self._num_parallel_calls = num_parallel_calls
        self._sorted = sorted_order
        self._candidates = None

    def index_from_dataset(self, candidates: tf.data.Dataset) -> "Streaming":
        """Keeps ``candidates``, a dataset of embedding batches or of
        ``(identifiers, embeddings)`` batches. Returns self."""
        check_candidates_dataset(candidates)
        self._candidates = candidates
        return self

    def index(self, candidates, identifiers=None):
        """Not available: `Streaming` reads a dataset; call `index_from_dataset`."""
        raise NotImplementedError("Streaming keeps a dataset of candidates: call index_from_dataset(dataset)")

    def is_exact(self) -> bool:
        return True

    def call(self, queries, k: int | None = None):
        self.record_call(queries)
        if self._candidates is None:
            raise ValueError("Streaming: call index_from_dataset() before querying")
        k = self.call_k(k)
        if self.query_model is not None:
            queries = self.query_model(queries)
        queries = tf.convert_to_tensor(queries)
        spec = self._candidates.element_spec
        check_query_width("Streaming", queries, spec[1] if isinstance(spec, tuple) else spec)
        too_few = (f"Streaming: k={k} is more than a batch of candidates holds; batch the candidates in larger "
                   "batches, pass drop_remainder=True, or set handle_incomplete_batches=True")

        def cut(scores, k):
            # A batch (or the first merges) may hold fewer than k columns.
            return tf.minimum(k, tf.shape(scores)[1]) if self._handle_incomplete_batches else k

        def batch_top_k(identifiers, embeddings):
            scores = self._compute_score(queries, tf.cast(embeddings, queries.dtype))
            if not self._handle_incomplete_batches:
                # in a traced call (fit's metrics) the error below is not caught: this one says what to do
                enough = tf.debugging.assert_greater_equal(tf.shape(scores)[1], k, message=too_few)
                with tf.control_dependencies([enough]):
                    scores = tf.identity(scores)
            scores, positions = tf.math.top_k(scores, k=cut(scores, k), sorted=self._sorted)
            return scores, tf.gather(identifiers, positions)

        def merge(state, batch):
            scores = tf.concat([state[0], batch[0]], axis=1)
            identifiers = tf.concat([state[1], batch[1]], axis=1)
            scores, columns = tf.math.top_k(scores, k=cut(scores, k), sorted=self._sorted)
            return scores, tf.gather(identifiers, columns, batch_dims=1)

        candidates = self._candidates
        if isinstance(candidates.element_spec, tuple):
            id_dtype = candidates.element_spec[0].dtype
        else:
            # Positions as identifiers: a running offset, as the batches come.
            id_dtype = tf.int32

            def number(start, embeddings):
                size = tf.shape(embeddings)[0]
                return start + size, (tf.range(start, start + size), embeddings)

            candidates = candidates.scan(tf.constant(0, tf.int32), number)
        num_queries = tf.shape(queries)[0]
        empty = (tf.zeros((num_queries, 0), queries.dtype), tf.zeros((num_queries, 0), id_dtype))
        try:
            return candidates.map(batch_top_k, num_parallel_calls=self._num_parallel_calls).reduce(empty, merge)
        except tf.errors.InvalidArgumentError as err:
            if too_few not in str(err):
                raise
            raise ValueError(too_few) from err
