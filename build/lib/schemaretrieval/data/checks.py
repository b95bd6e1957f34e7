"""In-graph checks of a batch against the schema, for inputs that did not come through
`validate.to_arrays` (a ``tf.data.Dataset`` a user builds, a request to a served model).

``batch_assertions(features, schema)`` are assertions that fail, naming the
column (and the training step when given), on an empty batch, a categorical id
outside the schema's domain (beyond the embedding table; list columns may hold
the padding -1), and NaN or inf in a continuous column. ``domain_assertion`` is
the one id check both the training step and the serving export use.

`TwoTowerModelV2.train_step` runs the whole of Keras's step behind them, so a
bad batch moves no weight, sampler state or optimizer count.

>>> import numpy as np
>>> from merlin.schema import ColumnSchema, Schema, Tags
>>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype="int64",
...                               properties={"domain": {"min": 0, "max": 9}})])
>>> _ = assert_batch({"item_id": np.array([1, 2])}, schema)
>>> assert_batch({"item_id": np.array([1, 12])}, schema)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tensorflow.python.framework.errors_impl.InvalidArgumentError: ...column item_id: ids outside the schema domain [0, 9]...
"""

from __future__ import annotations

import tensorflow as tf

from schemaretrieval.schema import columns
from schemaretrieval.schema.columns import CATEGORICAL, PAD

__all__ = ["domain_assertion", "batch_assertions", "assert_batch"]


def domain_assertion(values, name: str, lo, hi, is_list: bool, data=()):
    """An assertion that every id of ``values`` is in ``[lo, hi]`` (``hi`` None: ``>= lo``),
    padding ``-1`` allowed in a list column; the message names ``name`` and shows the
    offending ids (and ``data`` after them).

    >>> _ = domain_assertion(tf.constant([[1, -1]]), "tags", 0, 9, is_list=True)  # passes
    >>> domain_assertion(tf.constant([10]), "item_id", 0, 9, is_list=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...column item_id: ids outside the schema domain [0, 9]...
    """
    values = tf.convert_to_tensor(values)
    ok = tf.logical_or(tf.equal(values, PAD), values >= lo) if is_list else values >= lo
    if hi is not None:
        ok = tf.logical_and(ok, values <= hi)
    bad = tf.logical_not(ok)
    expected = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [f"column {name}: ids outside the schema domain {expected} (the rows of its embedding table); "
         "offending ids:", tf.boolean_mask(values, bad)] + list(data),
        summarize=5, name=f"check_{name}_domain")


def batch_assertions(features, schema, step=None) -> list:
    """The assertion ops on every column of ``schema`` present in ``features`` (run them as
    control dependencies of what must wait). ``step``: a scalar tensor (e.g. the
    optimizer's iteration count + 1) put in the messages.

    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("price", tags=[Tags.ITEM, Tags.CONTINUOUS], dtype="float32")])
    >>> len(batch_assertions({"price": tf.constant([1.0])}, schema))  # finite values, a non-empty batch
    2
    """
    checks = []
    first = None
    data = [] if step is None else ["step:", step]
    for col in columns.feature_columns(schema):
        name = col.name
        if name not in features:
            continue
        values = tf.convert_to_tensor(features[name])
        if first is None:
            first = (name, values)
        if columns.kind(col) == CATEGORICAL:
            lo, hi = columns.domain(col) or (0, None)
            checks.append(domain_assertion(values, name, lo, hi, columns.is_list(col), data))
        else:
            bad = tf.logical_not(tf.math.is_finite(tf.cast(values, tf.float32)))
            checks.append(tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(bad)),
                [f"column {name}: NaN or inf values; count:", tf.reduce_sum(tf.cast(bad, tf.int32))] + data,
                name=f"check_{name}_finite"))
    if first is not None:
        checks.append(tf.debugging.Assert(
            tf.shape(first[1])[0] > 0, [f"empty batch (zero rows, column {first[0]})"] + data,
            name="check_batch_not_empty"))
    return checks


def assert_batch(features, schema, step=None):
    """``features`` with control dependencies on `batch_assertions` (see the module's example).

    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("price", tags=[Tags.ITEM, Tags.CONTINUOUS], dtype="float32")])
    >>> assert_batch({"price": tf.constant([1.0])}, schema)["price"].numpy().tolist()
    [1.0]
    """
    with tf.control_dependencies(batch_assertions(features, schema, step)):
        return {name: tf.identity(value) if name in schema.column_names else value
                for name, value in features.items()}
