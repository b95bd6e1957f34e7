"""In-graph checks of a request to the exported SavedModel, run before any op reads it.

A served model meets whatever a caller sends. TensorFlow checks a signature's
dtypes before the graph runs (naming the input by its position among the
sorted input names, see docs/serving.md), but not shapes: a ``[batch, 1]``
where ``[batch]`` was declared reaches the graph, and some kernels (a ragged
gather) abort the process on a shape they do not expect instead of raising.
A declared rank cannot be checked either: Grappler folds ``tf.rank`` of an
input declared ``[None]`` to 1 before the graph runs. So the signatures
declare their inputs without a shape (`input_spec`), and every signature
first passes its inputs through `gate`:

1. each input's rank (``[batch]``, ``[batch, L]`` for a list column,
   ``excluded`` ``[batch, M]``, ``k`` a scalar);
2. then every input's rows against the first feature's (one row per query);
3. then ``k`` against ``[1, catalog size]``.

Every failure is an ``InvalidArgumentError`` that names the input and says what
it expects; nothing downstream runs before the checks pass (the inputs come
out behind them). The values of the encoded features (ids inside the schema's
domain, finite continuous values after the ETL's steps) are checked where they
are encoded (`finite_assertion` here, `data.checks.domain_assertion`); the
query tower's output, which a finite but huge continuous value can overflow,
where it is computed (`usable_query_assertion`).

>>> import tensorflow as tf
>>> specs = [{"name": "user_id", "list": False, "dtype": "int64", "kind": "categorical"}]
>>> gated, _, _ = gate({"user_id": tf.constant([3, 4], tf.int64)}, specs)
>>> gated["user_id"].numpy().tolist()
[3, 4]
>>> gate({"user_id": tf.constant([[3]], tf.int64)}, specs)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tensorflow.python.framework.errors_impl.InvalidArgumentError: ...input user_id: expected shape [batch]...
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["input_spec", "expected_shape", "gate", "finite_assertion", "usable_query_assertion", "unusable_rows",
           "unit_length", "UNUSABLE_QUERY"]

#: What a query embedding that float32 overflowed is called, in the graph's errors and in Python's.
UNUSABLE_QUERY = ("the query tower output is not a usable vector (not finite, or zero where it is normalised to unit "
                  "length): its float32 arithmetic overflowed; expected continuous inputs ({names}) small enough for "
                  "float32 (|value| well below 1e19 after the ETL steps)")

_WHAT = {"string": ("raw value (string)", "raw values (strings)"), "int64": ("int64 id", "int64 ids"),
         "float32": ("float32 value", "float32 values")}


def expected_shape(spec) -> str:
    """What a feature's input must look like, in words (for messages and docs).

    >>> expected_shape({"name": "tags", "list": True, "dtype": "string", "kind": "categorical"})
    '[batch, L] string, a list of raw values (strings) per row padded with ""'
    >>> expected_shape({"name": "age", "list": False, "dtype": "float32", "kind": "continuous"})
    '[batch] float32, one float32 value per row'
    """
    one, many = _WHAT.get(spec["dtype"], (spec["dtype"], spec["dtype"]))
    if spec["list"]:
        pad = '""' if spec["dtype"] == "string" else "-1"
        return f"[batch, L] {spec['dtype']}, a list of {many} per row padded with {pad}"
    return f"[batch] {spec['dtype']}, one {one} per row"


def input_spec(name: str, dtype) -> tf.TensorSpec:
    """A signature input of ``dtype`` and no declared shape: its rank is checked in the
    graph by `gate` (a declared one would be folded away unchecked).

    >>> input_spec("user_id", tf.int64)
    TensorSpec(shape=<unknown>, dtype=tf.int64, name='user_id')
    """
    return tf.TensorSpec(None, dtype, name=name)


def _rank_check(value, name, rank, expected):
    return tf.debugging.Assert(
        tf.equal(tf.rank(value), rank),
        [f"input {name}: expected shape {expected}; got shape", tf.shape(value)],
        name=f"check_{_op_name(name)}_rank")


def _op_name(name):
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in str(name)) or "input"


def gate(features: dict, specs, excluded=None, k=None, catalog_size: int | None = None):
    """``(features, excluded, k)`` behind the checks of the module docstring.

    ``specs``: the export's feature specs (`export.feature_specs`); ``excluded``
    ``[batch, M]`` and ``k`` (a scalar, checked against ``[1, catalog_size]``)
    are optional.

    >>> import tensorflow as tf
    >>> specs = [{"name": "age", "list": False, "dtype": "float32", "kind": "continuous"}]
    >>> gate({"age": tf.constant([1.0])}, specs, k=tf.constant(0), catalog_size=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...input k: expected an int32 in [1, 5]...
    """
    ranks = []
    for spec in specs:
        ranks.append(_rank_check(features[spec["name"]], spec["name"], 2 if spec["list"] else 1,
                                 expected_shape(spec)))
    if excluded is not None:
        ranks.append(_rank_check(excluded, "excluded", 2,
                                 "[batch, M], the item ids each row leaves out, padded with -1 (\"\" for string ids)"))
    if k is not None:
        ranks.append(_rank_check(k, "k", 0, "a scalar int32, the number of results"))
    checks = list(ranks)
    with tf.control_dependencies(ranks):
        first = specs[0]["name"]
        rows = tf.shape(features[first])[0]
        named = [(spec["name"], features[spec["name"]]) for spec in specs[1:]]
        if excluded is not None:
            named.append(("excluded", excluded))
        for name, value in named:
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(value)[0], rows),
                [f"input {name}: expected one row per query, as many as input {first} has:", rows, "got",
                 tf.shape(value)[0]],
                name=f"check_{_op_name(name)}_rows"))
        if k is not None:
            ok = k >= 1 if catalog_size is None else tf.logical_and(k >= 1, tf.cast(k, tf.int64) <= catalog_size)
            expected = ("an int32 >= 1" if catalog_size is None else
                        f"an int32 in [1, {catalog_size}] (at least 1, at most the catalog size {catalog_size})")
            checks.append(tf.debugging.Assert(ok, [f"input k: expected {expected}; got", k], name="check_k_range"))
    with tf.control_dependencies(checks):
        # the static ranks the checks guarantee, for the ops traced after them (a reshape:
        # tf.ensure_shape would let Grappler fold the rank checks away)
        features = {spec["name"]: _with_rank(features[spec["name"]], 2 if spec["list"] else 1) for spec in specs}
        excluded = _with_rank(excluded, 2) if excluded is not None else None
        k = tf.reshape(k, []) if k is not None else None
    return features, excluded, k


def _with_rank(value, rank):
    shape = tf.shape(value)
    return tf.reshape(value, [-1] if rank == 1 else tf.stack([shape[0], shape[-1]]))


def finite_assertion(values, name: str, steps=None):
    """An assertion that a continuous feature's values (after the ETL's ``steps``, when
    the graph applies them) are finite, naming the input.

    >>> import tensorflow as tf
    >>> finite_assertion(tf.constant([1.0, float("nan")]), "age")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...input age: expected finite numbers...
    """
    bad = tf.logical_not(tf.math.is_finite(values))
    if steps:
        names = [step for step, _ in steps]
        where = (f" after the ETL's steps {names}" + ("" if "fill_missing" in names else
                                                      " (its steps fill no missing value)"))
    else:
        where = ""
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [f"input {name}: expected finite numbers{where}; NaN or inf in rows:",
         tf.reshape(tf.where(bad), [-1])],
        summarize=5, name=f"check_{_op_name(name)}_finite")


def usable_query_assertion(queries, normalised: bool, continuous):
    """An assertion that each row of the query tower's output is a usable vector: finite
    and, where the tower ends in a unit normalisation, of unit length.

    Inputs that pass `finite_assertion` can still be too large for the tower's float32
    arithmetic: a value near 1e20 squares past float32's range, and the unit
    normalisation then returns zeros, which would rank the catalog in its stored order.
    The message names the rows and the ``continuous`` inputs that can cause it.

    >>> import tensorflow as tf
    >>> usable_query_assertion(tf.constant([[0.6, 0.8], [0.0, 0.0]]), True, ["age"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...the query tower output is not a usable vector...
    """
    bad = unusable_rows(queries, normalised)
    message = UNUSABLE_QUERY.format(names=", ".join(continuous) or "none")
    return tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)),
                               [f"{message}; in rows:", tf.reshape(tf.where(bad), [-1])],
                               summarize=5, name="check_query_embedding")


def unusable_rows(queries, normalised: bool):
    """A bool per row of query embeddings (a tensor or an array): not finite, or, where the
    tower normalises to unit length, the unit normalisation's zeros for an overflowed sum of
    squares. The graph's `usable_query_assertion` and Python's `recommend` both read it.

    >>> unusable_rows([[0.6, 0.8], [0.0, 0.0], [float("nan"), 1.0]], True).numpy().tolist()
    [False, True, True]
    """
    queries = tf.convert_to_tensor(queries, tf.float32)
    bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(queries), axis=1))
    if normalised:
        bad = tf.logical_or(bad, tf.reduce_sum(tf.square(queries), axis=1) <= 0.25)
    return bad


def unit_length(tower) -> bool:
    """Whether ``tower`` ends in a unit normalisation (the factory's towers do), so that a
    usable output row has length 1.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> plain = sr.TwoTowerModel(schema, l2_normalize=False)
    >>> unit_length(sr.TwoTowerModel(schema).query_tower), unit_length(plain.query_tower)
    (True, False)
    """
    blocks = getattr(tower, "blocks", None) or []
    return bool(blocks) and isinstance(blocks[-1], keras.layers.UnitNormalization)
