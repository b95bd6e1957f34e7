"""Row-wise reads and writes of a variable: `read_rows`, `write_rows`.

Once a variable has had a sparse update (the default optimizer updates only
the embedding rows a step read), TensorFlow copies all of it at every whole
read (`ReadVariableOp` in copy-on-read mode): `ops.take` of a 1M-row table
then costs more than the rest of the step. Every lookup of a table and every
per-row state therefore reads and writes its rows through these two.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

__all__ = ["read_rows", "write_rows"]


def _handle(variable):
    # A Keras variable's `.value` is the tf.Variable itself when it is not
    # autocast (embedding tables and optimizer slots are not).
    return variable.value if isinstance(variable, keras.Variable) else variable


def read_rows(variable, rows) -> tf.Tensor:
    """`variable[rows]`, read row by row (TensorFlow's ResourceGather).

    >>> v = keras.Variable([[1.0], [2.0], [3.0]])
    >>> read_rows(v, tf.constant([2, 0])).numpy().ravel().tolist()
    [3.0, 1.0]
    """
    return tf.gather(_handle(variable), rows)


def write_rows(variable, rows, values) -> None:
    """`variable[rows] = values` in place (ResourceScatterUpdate); of repeated
    rows one write wins.

    >>> v = keras.Variable([[1.0], [2.0], [3.0]])
    >>> write_rows(v, tf.constant([2]), [[9.0]])
    >>> v.numpy().ravel().tolist()
    [1.0, 2.0, 9.0]
    """
    _handle(variable).scatter_update(tf.IndexedSlices(ops.cast(values, variable.dtype), rows))
