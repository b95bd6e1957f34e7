"""In-graph checks of a batch against the schema, for inputs that did not
come through `tables.to_arrays` (a `tf.data.Dataset` a user builds).

`batch_assertions(features, schema)` are assertions that fail, naming the
column (and the training step when given), on:

* an empty batch;
* a categorical id outside the schema's domain (beyond the embedding table);
  list columns may hold the padding value -1;
* NaN or inf in a continuous column.

`TwoTowerModelV2.train_step` runs the whole of Keras's step behind them,
so a bad batch moves no weight, sampler state or optimizer count.
"""

from __future__ import annotations

import tensorflow as tf

from schemaretrieval.data import tables


def _message(name, what):
    return f"column {name}: {what}"


def batch_assertions(features, schema, step=None) -> list:
    """The assertion ops on every column of `schema` present in `features`
    (run them as control dependencies of what must wait). `step`: a scalar
    tensor (e.g. the optimizer's iteration count + 1) put in the messages."""
    checks = []
    first = None
    for col in schema:
        name = col.name
        if name not in features:
            continue
        kind = tables._column_kind(col)
        if kind is None:
            continue
        values = tf.convert_to_tensor(features[name])
        if first is None:
            first = (name, values)
        data = [] if step is None else ["step:", step]
        if kind == tables._CATEGORICAL:
            domain = tables._column_domain(col)
            lo, hi = domain if domain is not None else (0, None)
            if tables._is_list_column(col):
                ok = tf.logical_or(tf.equal(values, tables.PAD_VALUE), values >= lo)
            else:
                ok = values >= lo
            if hi is not None:
                ok = tf.logical_and(ok, values <= hi)
            bad = tf.logical_not(ok)
            expected = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            checks.append(
                tf.debugging.Assert(
                    tf.logical_not(tf.reduce_any(bad)),
                    [_message(name, f"ids outside the schema domain {expected} (the rows of its embedding table); "
                              "offending ids:"), tf.boolean_mask(values, bad)] + data,
                    summarize=5,
                    name=f"check_{name}_domain",
                )
            )
        else:
            values = tf.cast(values, tf.float32)
            bad = tf.logical_not(tf.math.is_finite(values))
            checks.append(
                tf.debugging.Assert(
                    tf.logical_not(tf.reduce_any(bad)),
                    [_message(name, "NaN or inf values; count:"), tf.reduce_sum(tf.cast(bad, tf.int32))] + data,
                    name=f"check_{name}_finite",
                )
            )
    if first is not None:
        checks.append(
            tf.debugging.Assert(
                tf.shape(first[1])[0] > 0,
                [f"empty batch (zero rows, column {first[0]})"] + ([] if step is None else ["step:", step]),
                name="check_batch_not_empty",
            )
        )
    return checks


def assert_batch(features, schema, step=None):
    """`features` with control dependencies on `batch_assertions`."""
    with tf.control_dependencies(batch_assertions(features, schema, step)):
        return {name: tf.identity(value) if name in schema.column_names else value for name, value in features.items()}
