"""Sample weights from a column of the table: ``fit(model, table, sample_weight="weight")``.

Keras's ``fit`` reads a batch's sample weights as the third element of
``(x, y, sample_weight)``. A table's batches are dicts of its columns, so the
weight is one of them: a continuous column of the schema (Last.fm's play
count, say; `transform: [log]` in the schema gives ``log(1 + count)``). A
weight multiplies its row's loss, as Keras's do: the batch's loss is the
weighted sum over its rows divided by its number of rows. Weights must be
finite (`to_arrays` checks every continuous column) and not negative.
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf
from merlin.schema import Schema

from schemaretrieval.schema import columns
from schemaretrieval.schema.errors import did_you_mean

__all__ = ["check_weight_column", "check_weights", "weighted", "negative_weights_named"]


def check_weight_column(schema: Schema, column, what: str = "fit") -> str:
    """``column``, when it names a continuous column of ``schema``; a clear error otherwise.

    >>> from merlin.schema import ColumnSchema, Tags
    >>> schema = Schema([ColumnSchema("plays", tags=[Tags.TARGET, Tags.CONTINUOUS], dtype=np.int64)])
    >>> check_weight_column(schema, "plays")
    'plays'
    >>> check_weight_column(schema, "play")
    Traceback (most recent call last):
    ...
    ValueError: fit: sample_weight= 'play' (did you mean 'plays'?) is no column of the schema; its continuous columns: 'plays'
    """
    if not isinstance(column, str):
        raise TypeError(f"{what}: sample_weight= names a column of the table, got {type(column).__name__}")
    continuous = [c.name for c in schema if columns.kind(c) == columns.CONTINUOUS]
    if column not in schema.column_names:
        raise ValueError(f"{what}: sample_weight={did_you_mean(column, schema.column_names)} is no column of the "
                         f"schema; its continuous columns: {', '.join(map(repr, continuous)) or 'none'}")
    if column not in continuous:
        raise ValueError(f"{what}: sample_weight= {column!r} is {columns.kind(schema[column]) or 'read by no tower'}; "
                         "a weight is a continuous column (tag it continuous)")
    return column


def check_weights(values: np.ndarray, column: str, source: str) -> None:
    """Refuses negative weights, naming the first row (its position in the table) and the count,
    and weights that are all 0.

    >>> check_weights(np.array([1.0, -2.0, 0.0]), "plays", "<DataFrame>")
    Traceback (most recent call last):
    ...
    ValueError: <DataFrame>: column 'plays' (the sample weight): expected weights >= 0, found -2.0 at row 1 (1 row)
    """
    negative = np.flatnonzero(np.asarray(values) < 0)
    if negative.size:
        first, rows = int(negative[0]), f"{negative.size} row{'s' if negative.size > 1 else ''}"
        raise ValueError(f"{source}: column {column!r} (the sample weight): expected weights >= 0, found "
                         f"{float(values[first])} at row {first} ({rows})")
    if len(values) and not np.any(np.asarray(values) > 0):  # every loss times 0: fit would train nothing
        raise ValueError(f"{source}: column {column!r} (the sample weight): every weight is 0; expected some > 0")


def _assertion(column: str) -> str:
    return f"sample weight column {column}: a weight below 0"


def weighted(dataset: tf.data.Dataset, column: str, check: bool = True) -> tf.data.Dataset:
    """Each batch ``b`` as Keras's ``(b, None, b[column])``. With ``check`` (rows not read before
    training: a streamed table), a negative weight stops the step (`negative_weights_named`).

    >>> rows = {"item_id": np.arange(4), "plays": np.array([1.0, 0.0, 2.0, 3.0], np.float32)}
    >>> batches = tf.data.Dataset.from_tensor_slices(rows).batch(2)
    >>> [weight.numpy().tolist() for _, _, weight in weighted(batches, "plays")]
    [[1.0, 0.0], [2.0, 3.0]]
    """

    def split(batch):
        weight = batch[column]
        if not check:
            return batch, None, weight
        checked = tf.debugging.assert_non_negative(weight, message=_assertion(column))
        with tf.control_dependencies([checked]):
            return batch, None, tf.identity(weight)

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@contextlib.contextmanager
def negative_weights_named(column: str | None, source: str):
    """Turns `weighted`'s failed check into an error that names the table and the column.

    >>> rows = tf.data.Dataset.from_tensor_slices({"plays": np.array([1.0, -1.0], np.float32)}).batch(2)
    >>> with negative_weights_named("plays", "plays.parquet"):
    ...     batches = list(weighted(rows, "plays"))
    Traceback (most recent call last):
    ...
    ValueError: plays.parquet: column 'plays' (the sample weight): expected weights >= 0, found a negative one while training (a streamed table is checked batch by batch)
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        if column is None or _assertion(column) not in str(error):
            raise
        raise ValueError(f"{source}: column {column!r} (the sample weight): expected weights >= 0, found a "
                         "negative one while training (a streamed table is checked batch by batch)") from None
