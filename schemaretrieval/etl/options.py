"""The ``transform:`` key of a schema column: what the ETL does to it, checked.

* categorical: ``Categorify`` options (``freq_threshold``, ``max_size``,
  ``num_buckets``, ``separator`` of text lists, ``kind: passthrough``);
* continuous: steps in order (``fill_missing``, ``clip``, ``log``,
  ``normalize``, ``normalize_minmax``);
* time: features to derive (``hour``, ``day_of_week``, ``month``,
  ``normalize``, ``normalize_minmax``), the ``unit`` and the ``tags`` of the
  derived columns.

Each problem is a `SchemaError` naming the column and the key. See docs/etl.md.

>>> from schemaretrieval.schema import schema_from_dict
>>> schema = schema_from_dict({"columns": {"price": {"tags": ["item", "continuous"], "dtype": "float32",
...                                                  "transform": ["fill_missing", "log", "normalize"]}}})
>>> continuous_steps(schema["price"])
[('fill_missing', None), ('log', None), ('normalize', None)]
"""

from __future__ import annotations

import math

from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval.schema import SchemaError

__all__ = [
    "ETLError",
    "CONTINUOUS_STEPS",
    "TIME_FEATURES",
    "TIME_UNITS",
    "etl_kind",
    "categorical_options",
    "continuous_steps",
    "time_options",
    "check_transforms",
    "derived_name",
    "is_derived",
]

#: Continuous steps a ``transform:`` list may hold, in the order written.
CONTINUOUS_STEPS = ("fill_missing", "clip", "log", "normalize", "normalize_minmax")
_CATEGORICAL_KEYS = ("freq_threshold", "max_size", "num_buckets", "separator", "kind")
#: Features a time column's ``transform:`` may derive: name -> (output suffix, ids incl. the missing id).
TIME_FEATURES = {
    "hour": ("_hour", 25),                  # 0..23 UTC, 24 missing
    "day_of_week": ("_day_of_week", 8),     # 0 Monday .. 6 Sunday, 7 missing
    "month": ("_month", 13),                # 0 January .. 11 December, 12 missing
    "normalize": ("_normalized", None),     # (t - mean) / std of train, missing -> 0
    "normalize_minmax": ("_minmax", None),  # (t - min) / (max - min) of train, missing -> 0
}
_TIME_KEYS = ("features", "unit", "tags")
#: Seconds per unit of a numeric time column.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class ETLError(ValueError):
    """Data that the ETL cannot process; the message names the source and the column.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 100, seed=0).drop(columns="item_price")
    >>> sr.etl.fit_transform(data, schema=schema, out_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemaretrieval.etl.options.ETLError: <DataFrame>: column 'item_price' named in the schema is missing from the data ...
    """


def etl_kind(col: ColumnSchema) -> str:
    """How the ETL treats a column: 'categorical', 'continuous', 'time' or 'other' (passed through).

    >>> etl_kind(ColumnSchema("timestamp", tags=[Tags.TIME]))
    'time'
    """
    tags = col.tags
    if Tags.CATEGORICAL in tags:
        return "categorical"
    if Tags.CONTINUOUS in tags:
        return "continuous"
    if Tags.TIME in tags:
        return "time"
    return "other"  # text, embedding: passed through as they are


def categorical_options(col: ColumnSchema, source="<schema>") -> dict:
    """A categorical column's ``transform:`` as a dict with ``kind`` (categorify or passthrough).

    >>> categorical_options(ColumnSchema("zip", properties={"transform": {"freq_threshold": 2}}))
    {'freq_threshold': 2, 'kind': 'categorify'}
    """
    if is_derived(col):  # a time feature's ids: made by the workflow, not encoded
        return {"kind": "passthrough"}
    spec = col.properties.get("transform")
    if spec is None:
        return {"kind": "categorify"}
    err = lambda msg: SchemaError(source, msg, column=col.name, key="transform")  # noqa: E731
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict):
        raise err(f"expected a mapping such as {{freq_threshold: 5}} for a categorical column, got {spec!r}")
    unknown = [k for k in spec if k not in _CATEGORICAL_KEYS]
    if unknown:
        raise err(f"unknown option {unknown[0]!r}; a categorical column takes {', '.join(_CATEGORICAL_KEYS)}")
    kind = spec.get("kind", "categorify")
    if kind not in ("categorify", "passthrough"):
        raise err(f"unknown kind {kind!r}; expected categorify or passthrough")
    if kind == "passthrough" and col.dtype is not None and col.dtype.element_type.value == "string":
        raise err("passthrough keeps ids as the integers they are, and this column holds strings; "
                  "leave kind out (categorify gives each string an id)")
    for key in ("freq_threshold", "max_size", "num_buckets"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise err(f"{key} must be a non-negative integer, got {value!r}")
    if spec.get("freq_threshold") and spec.get("max_size"):
        raise err("freq_threshold and max_size cannot be combined (NVTabular's Categorify); give one")
    if spec.get("max_size") and spec["max_size"] < (spec.get("num_buckets") or 1) + 3:
        raise err("max_size must be at least num_buckets + 3 (ids 0 and 1 are reserved, the OOV ids follow, "
                  "and one value is kept)")
    if spec.get("num_buckets") == 0:
        raise err("num_buckets must be >= 1 (or left out for one OOV id)")
    if "separator" in spec:
        if not col.is_list:
            raise err(f"separator splits the text of a list column, and {col.name!r} is not one (tag it list)")
        if not isinstance(spec["separator"], str) or not spec["separator"]:
            raise err(f"separator must be a non-empty string such as '|', got {spec['separator']!r}")
    return dict(spec, kind=kind)


def _finite(value) -> bool:
    """A real number, not a bool, not NaN or inf: what a fill value or a clip bound can be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def continuous_steps(col: ColumnSchema, source="<schema>") -> list[tuple[str, object]]:
    """The column's ``transform:`` as [(step, argument)], in order (see the module's example).

    >>> continuous_steps(ColumnSchema("age", properties={"transform": [{"clip": {"min": 0}}]}))
    [('clip', {'min': 0})]
    """
    spec = col.properties.get("transform")
    if spec is None:
        return []
    err = lambda msg: SchemaError(source, msg, column=col.name, key="transform")  # noqa: E731
    if isinstance(spec, (str, dict)):
        spec = [spec]
    if not isinstance(spec, list):
        raise err(f"expected a list of steps such as [fill_missing, log, normalize], got {spec!r}")
    steps = []
    for item in spec:
        if isinstance(item, str):
            items = [(item, None)]
        elif isinstance(item, dict):
            items = list(item.items())
        else:
            raise err(f"expected a step name or {{step: argument}}, got {item!r}")
        for name, arg in items:
            if name not in CONTINUOUS_STEPS:
                raise err(f"unknown step {name!r}; expected one of {', '.join(CONTINUOUS_STEPS)}")
            if arg is False:
                continue
            if name == "fill_missing" and not (arg in (None, True, "median") or _finite(arg)):
                raise err(f"fill_missing takes a finite number or 'median', got {arg!r}")
            if name == "clip":
                if not isinstance(arg, dict) or not set(arg) <= {"min", "max"} or not arg \
                        or not all(_finite(bound) for bound in arg.values()):
                    raise err(f"clip takes {{min: ..., max: ...}} of finite numbers, got {arg!r}")
                if arg.get("min", -math.inf) > arg.get("max", math.inf):
                    raise err(f"clip: min {arg['min']} is above max {arg['max']}: every value would be {arg['max']}")
            if name in ("log", "normalize", "normalize_minmax") and arg not in (None, True):
                raise err(f"{name} takes no argument, got {arg!r}")
            steps.append((name, arg))
    return steps


def check_transforms(schema: Schema, source="<schema>"):
    """Every column's ``transform:`` is one the ETL can apply to its kind, or a `SchemaError`.

    >>> from schemaretrieval.schema import schema_from_dict
    >>> check_transforms(schema_from_dict({"columns": {"title": {"tags": ["text"], "dtype": "string",
    ...                                                          "transform": ["log"]}}}))
    Traceback (most recent call last):
    ...
    schemaretrieval.schema.errors.SchemaError: <schema>: column 'title', key 'transform': the ETL has no transform for a other column (only categorical, continuous and time columns take `transform:`)
    """
    for col in schema:
        kind = etl_kind(col)
        if kind == "categorical":
            categorical_options(col, source)
        elif kind == "continuous":
            continuous_steps(col, source)
        elif kind == "time":
            time_options(col, source)
        elif col.properties.get("transform") is not None:
            raise SchemaError(source, f"the ETL has no transform for a {kind} column "
                                      "(only categorical, continuous and time columns take `transform:`)",
                              column=col.name, key="transform")


def time_options(col: ColumnSchema, source="<schema>") -> dict | None:
    """A time column's ``transform:`` as {features, unit, tags}, or None without one.

    ``transform: [hour, day_of_week]`` or ``{features: [...], unit: ms, tags: [user]}``.

    >>> time_options(ColumnSchema("ts", properties={"transform": ["hour"]}))
    {'features': ['hour'], 'unit': 's', 'tags': ['user']}
    """
    spec = col.properties.get("transform")
    if spec is None:
        return None
    err = lambda msg: SchemaError(source, msg, column=col.name, key="transform")  # noqa: E731
    if isinstance(spec, (str, list)):
        spec = {"features": spec}
    if not isinstance(spec, dict):
        raise err(f"expected a list of features such as [hour, day_of_week] for a time column, got {spec!r}")
    unknown = [k for k in spec if k not in _TIME_KEYS]
    if unknown:
        raise err(f"unknown option {unknown[0]!r}; a time column takes {', '.join(_TIME_KEYS)}")
    features = spec.get("features")
    features = [features] if isinstance(features, str) else features
    if not features or not isinstance(features, list):
        raise err(f"features: expected a list such as [hour, day_of_week], got {spec.get('features')!r}")
    for name in features:
        if name not in TIME_FEATURES:
            raise err(f"unknown time feature {name!r}; expected one of {', '.join(TIME_FEATURES)}")
    if len(set(features)) != len(features):
        raise err(f"a time feature is listed twice in {features}")
    unit = spec.get("unit", "s")
    if unit not in TIME_UNITS:
        raise err(f"unit must be one of {', '.join(TIME_UNITS)} (of numbers since 1970-01-01 UTC), got {unit!r}")
    tags = spec.get("tags", ["user"])
    tags = [tags] if isinstance(tags, str) else tags
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise err(f"tags: expected a list such as [user], got {spec.get('tags')!r}")
    bad = [t for t in tags if t in ("categorical", "continuous", "time", "id", "user_id", "item_id", "list",
                                    "target")]
    if bad:
        raise err(f"tags: {bad[0]!r} is set by the ETL or cannot apply to a derived feature; give the side "
                  "(user, item or context)")
    return {"features": features, "unit": unit, "tags": tags}


def derived_name(col_name: str, feature: str) -> str:
    """The name of a time feature derived from ``col_name``.

    >>> derived_name("timestamp", "hour")
    'timestamp_hour'
    """
    return col_name + TIME_FEATURES[feature][0]


def is_derived(col: ColumnSchema) -> bool:
    """Whether the column is a time feature the workflow derives (not read from the data).

    >>> is_derived(ColumnSchema("ts_hour", properties={"derived_from": {"column": "ts", "feature": "hour"}}))
    True
    """
    return bool(col.properties.get("derived_from"))
