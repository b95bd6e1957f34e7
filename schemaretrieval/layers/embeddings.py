"""Embedding tables: `CategoricalEmbedding`, one per categorical domain.

An id column reads its row; a list column (padded with ``PAD``, -1) reads the
mean of its ids' rows. The user-id table can read, for a user no training
batch read, the mean of the trained users (``untrained_rows="mean"``).
"""

from __future__ import annotations

import keras
from keras import ops

from schemaretrieval import replicas
from schemaretrieval.rows import read_rows
from schemaretrieval.schema.columns import PAD

__all__ = ["CategoricalEmbedding", "DEFAULT_UNTRAINED_USER_IDS"]

# What a user id no training batch read reads (docs/defaults.md).
DEFAULT_UNTRAINED_USER_IDS = "mean"


class _RowReadingEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` that reads only the rows it looks up
    (`schemaretrieval.rows`): Keras's reads the whole table, which costs 40 ms
    a step for a 1M-row table on two cores once it has had sparse updates,
    against 1 ms for its rows."""

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return ops.cast(read_rows(self.embeddings, inputs), self.compute_dtype)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class CategoricalEmbedding(keras.layers.Layer):
    """Embeds an id column, or mean-pools a padded list of ids.

    Args:
        input_dim, output_dim: the table's rows (ids) and width.
        untrained_rows: None, or "mean": outside training, an id whose row
            no training batch has read (a user new since training, mapped
            to the ETL's out-of-vocabulary id) reads the mean of the rows
            training has read, rather than its row's initial random values.
            The rows read are recorded in training (`trained_rows`) and
            saved with the model; until a first training step, every row
            reads itself. docs/defaults.md has the evidence.

    Example: ids 0 and 1 are trained, id 2 is not.

    >>> import numpy as np
    >>> layer = CategoricalEmbedding(input_dim=10, output_dim=4)
    >>> tuple(layer(np.array([[1, 2, -1]])).shape)
    (1, 4)
    >>> layer = CategoricalEmbedding(input_dim=3, output_dim=2, untrained_rows="mean")
    >>> layer.build(None)
    >>> _ = layer.table.embeddings.assign([[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]])
    >>> _ = layer(np.array([0, 1]), training=True)  # what a training step reads
    >>> np.asarray(layer(np.array([1, 2]))).tolist()
    [[3.0, 2.0], [2.0, 1.0]]
    """

    UNTRAINED_ROWS = (None, "mean")

    def __init__(self, input_dim: int, output_dim: int, untrained_rows: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if untrained_rows not in self.UNTRAINED_ROWS:
            raise ValueError(f"CategoricalEmbedding: untrained_rows must be one of {self.UNTRAINED_ROWS}, "
                             f"got {untrained_rows!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.untrained_rows = untrained_rows
        self.table = _RowReadingEmbedding(input_dim, output_dim, name="table")

    def build(self, input_shape):
        self.table.build((None,))
        if self.untrained_rows is not None:
            # 1 for each row a training batch has read. Every replica records
            # the ids of all replicas, so the first replica's copy is the whole.
            self.trained_rows = self.add_weight(
                shape=(self.input_dim,), initializer="zeros", trainable=False, autocast=False,
                aggregation="only_first_replica", name="trained_rows")
        self.built = True

    def call(self, ids, training=None):
        vectors = self._lookup(ids, training)
        if len(ids.shape) == 1:
            return vectors
        mask = ops.cast(ops.not_equal(ids, PAD), self.compute_dtype)
        vectors = vectors * ops.expand_dims(mask, -1)
        # Rows with no ids pool to zeros rather than dividing by zero.
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        return ops.sum(vectors, axis=1) / count

    def _lookup(self, ids, training):
        """The rows of `ids`; padding (-1) reads row 0, which `call` masks out."""
        rows = ops.maximum(ids, 0)
        vectors = self.table(rows)
        if self.untrained_rows is None:
            return vectors
        if training:
            self._record(ids)
            return vectors
        trained = self.trained_rows
        known = ops.take(trained, rows) > 0

        def filled():
            reads = ops.sum(trained)
            # Before any training step nothing is recorded: every row reads itself.
            keep = ops.logical_or(known, reads == 0)
            # Not differentiated: an evaluation's loss trains nothing, and a
            # gradient through the mean would touch every row of the table.
            table = ops.stop_gradient(ops.convert_to_tensor(self.table.embeddings))
            mean = ops.matmul(ops.expand_dims(trained, 0), table)[0] / ops.maximum(reads, 1.0)
            return ops.where(ops.expand_dims(keep, -1), vectors, ops.cast(mean, vectors.dtype))

        # The mean, and the count of rows read, cost a pass over the table:
        # only for a batch that holds an id not known to be trained.
        return ops.cond(ops.all(known), lambda: vectors, filled)

    def _record(self, ids):
        ids = replicas.all_gather(ops.reshape(ids, (-1,)))
        reads = ops.scatter(ops.expand_dims(ops.cast(ops.maximum(ids, 0), "int32"), -1),
                            ops.cast(ops.greater_equal(ids, 0), "float32"), (self.input_dim,))
        self.trained_rows.assign(ops.maximum(self.trained_rows, ops.minimum(reads, 1.0)))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "untrained_rows": self.untrained_rows}
