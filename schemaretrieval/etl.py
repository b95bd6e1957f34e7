"""ETL through NVTabular, built from the YAML schema.

* ``build_workflow(schema)``: an ``nvtabular.Workflow`` that encodes every
  categorical and list-categorical column with ``Categorify`` (options from the
  column's ``transform:`` key), applies the continuous steps the YAML declares
  (fill_missing, clip, log, normalize, normalize_minmax), derives time features
  (hour, day of week, month, normalised timestamps) from time columns, and
  carries every column's tags to the output schema.
* ``fit_transform(train, valid, schema, out_dir)``: fits on ``train`` only,
  transforms both, writes parquet, the output schema (merlin ``schema.pbtxt``
  and ``schema.yaml`` with domains filled), the fitted workflow, the per-item
  interaction counts and a report with the out-of-vocabulary counts.
* ``transform(data, workflow_dir)``: new data through a saved workflow.

Output directory::

    out_dir/
      train/*.parquet, valid/*.parquet   encoded data (each with NVTabular's schema.pbtxt)
      schema.yaml, schema.pbtxt          the output schema; sr.load_schema(out_dir) reads it
      workflow/                          the fitted nvtabular.Workflow (Workflow.load)
      item_counts.parquet                item_id (encoded, 0..max) -> count in train
      etl_report.json                    device, rows, OOV counts per split and column

Categorify reserves ids 0 (padding), 1 (null) and 2 (out of vocabulary; 2..2+num_buckets-1
with ``num_buckets``); the values seen in training start at 3 (2 + num_buckets). The
output domain is ``{min: 0, max: cardinality - 1}``, so embedding tables built from it
cover every id the ETL can emit. See docs/etl.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval import schema as schema_lib
from schemaretrieval import upstream
from schemaretrieval.schema import SchemaError

log = logging.getLogger("schemaretrieval.etl")

__all__ = [
    "ETLError",
    "ETLOutput",
    "build_workflow",
    "fit_transform",
    "transform",
    "select_device",
    "describe_engine",
    "CONTINUOUS_STEPS",
    "OOV_INDEX",
]

#: Categorify's first out-of-vocabulary id (0 is padding, 1 is null).
OOV_INDEX = 2
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
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_DATAFRAME = "<DataFrame>"
_WORKFLOW_DIR = "workflow"
_REPORT = "etl_report.json"
_ITEM_COUNTS = "item_counts.parquet"


class ETLError(ValueError):
    """Data that the ETL cannot process; the message names the source and the column.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 100, seed=0).drop(columns="item_price")
    >>> fit_transform(data, schema=schema, out_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemaretrieval.etl.ETLError: <DataFrame>: column 'item_price' named in the schema is missing from the data ...
    """


# ---------------------------------------------------------------------------- the transform: key


def _kind(col: ColumnSchema) -> str:
    tags = col.tags
    if Tags.CATEGORICAL in tags:
        return "categorical"
    if Tags.CONTINUOUS in tags:
        return "continuous"
    if Tags.TIME in tags:
        return "time"
    return "other"  # text, embedding: passed through as they are


def _categorical_options(col: ColumnSchema, source="<schema>") -> dict:
    if _is_derived(col):  # a time feature's ids: made by the workflow, not encoded
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
    for key in ("freq_threshold", "max_size", "num_buckets"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise err(f"{key} must be a non-negative integer, got {value!r}")
    if spec.get("freq_threshold") and spec.get("max_size"):
        raise err("freq_threshold and max_size cannot be combined (NVTabular's Categorify); give one")
    if spec.get("max_size") and spec["max_size"] < (spec.get("num_buckets") or 1) + 2:
        raise err("max_size must be at least num_buckets + 2 (ids 0 and 1 are reserved)")
    if spec.get("num_buckets") == 0:
        raise err("num_buckets must be >= 1 (or left out for one OOV id)")
    return dict(spec, kind=kind)


def _continuous_steps(col: ColumnSchema, source="<schema>") -> list[tuple[str, object]]:
    """The column's ``transform:`` as [(step, argument)], in order."""
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
            if name == "fill_missing" and not (arg in (None, True, "median")
                                               or isinstance(arg, (int, float)) and not isinstance(arg, bool)):
                raise err(f"fill_missing takes a number or 'median', got {arg!r}")
            if name == "clip":
                if not isinstance(arg, dict) or not set(arg) <= {"min", "max"} or not arg:
                    raise err(f"clip takes {{min: ..., max: ...}}, got {arg!r}")
            steps.append((name, arg))
    return steps


def _check_transforms(schema: Schema, source="<schema>"):
    for col in schema:
        kind = _kind(col)
        if kind == "categorical":
            _categorical_options(col, source)
        elif kind == "continuous":
            _continuous_steps(col, source)
        elif kind == "time":
            _time_options(col, source)
        elif col.properties.get("transform") is not None:
            raise SchemaError(source, f"the ETL has no transform for a {kind} column "
                                      "(only categorical, continuous and time columns take `transform:`)",
                              column=col.name, key="transform")


def _time_options(col: ColumnSchema, source="<schema>") -> dict | None:
    """A time column's ``transform:`` as {features, unit, tags}, or None without one.

    ``transform: [hour, day_of_week]`` or ``{features: [...], unit: ms, tags: [user]}``.
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
    if unit not in _TIME_UNITS:
        raise err(f"unit must be one of {', '.join(_TIME_UNITS)} (of numbers since 1970-01-01 UTC), got {unit!r}")
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


def _derived_name(col_name: str, feature: str) -> str:
    return col_name + TIME_FEATURES[feature][0]


def _epoch_seconds(col, unit="s"):
    """float64 seconds since 1970-01-01 UTC; missing -> NaN. Numbers in ``unit`` or datetime64."""
    kind = getattr(col.dtype, "kind", None)
    if kind == "M":
        if getattr(col.dtype, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        seconds = col.astype("datetime64[ns]").astype("int64").astype("float64") / 1e9
        return seconds.where(col.notna())
    if kind not in ("i", "u", "f", "b"):
        raise ETLError(f"time column {col.name!r}: expected numbers since 1970 (unit {unit}) or datetime64 "
                       f"values, found dtype {col.dtype}; parse text with pd.to_datetime first")
    return col.astype("float64") * _TIME_UNITS[unit]


def _time_hour(col, unit="s"):
    sec = _epoch_seconds(col, unit)
    return (np.floor(sec / 3600.0) % 24).fillna(24).astype("int64")


def _time_day_of_week(col, unit="s"):
    sec = _epoch_seconds(col, unit)
    return ((np.floor(sec / 86400.0) + 3) % 7).fillna(7).astype("int64")  # 1970-01-01 was a Thursday


def _time_month(col, unit="s"):
    sec = _epoch_seconds(col, unit)
    whole = np.floor(sec.fillna(0)).astype("int64")
    if type(col).__module__.startswith("cudf"):
        import cudf

        months = cudf.to_datetime(whole, unit="s").dt.month
    else:
        months = pd.to_datetime(whole, unit="s").dt.month
    return (months - 1).where(sec.notna(), 12).astype("int64")


def _time_seconds(col, unit="s"):
    return _epoch_seconds(col, unit)


@dataclass(frozen=True)
class _TimeFeature:
    """``fn(col, unit)`` as a one-argument callable (NVTabular's LambdaOp counts the arguments)."""

    fn: object
    unit: str

    def __call__(self, col):
        return self.fn(col, self.unit)


def _time_nodes(col: ColumnSchema):
    """Workflow nodes of a time column's derived features (tagged from its ``transform:``)."""
    from nvtabular import ops

    from schemaretrieval.etl_ops import DerivedFeature

    opts = _time_options(col)
    if opts is None:
        return []
    nodes = []
    for feature in opts["features"]:
        _, ids = TIME_FEATURES[feature]
        name = _derived_name(col.name, feature)
        rename = ops.Rename(name=name)
        if ids is not None:
            fn = {"hour": _time_hour, "day_of_week": _time_day_of_week, "month": _time_month}[feature]
            node = ([col.name] >> DerivedFeature(_TimeFeature(fn, opts["unit"]), dtype=np.int64,
                                                properties={"domain": {"min": 0, "max": ids - 1, "name": name}})
                    >> rename >> ops.AddTags(["categorical", *opts["tags"]]))
        else:
            node = [col.name] >> DerivedFeature(_TimeFeature(_time_seconds, opts["unit"]), dtype=np.float64)
            node = node >> (ops.Normalize(out_dtype=np.float32) if feature == "normalize" else ops.NormalizeMinMax())
            node = (node >> ops.FillMissing(fill_val=0.0) >> ops.LambdaOp(_float32, dtype=np.float32)
                    >> rename >> ops.AddTags(["continuous", *opts["tags"]]))
        nodes.append(node)
    return nodes


def _derived_columns(col: ColumnSchema) -> list[ColumnSchema]:
    """The output schema's columns for a time column's derived features."""
    opts = _time_options(col)
    if opts is None:
        return []
    out = []
    for feature in opts["features"]:
        name = _derived_name(col.name, feature)
        _, ids = TIME_FEATURES[feature]
        props = {"derived_from": {"column": col.name, "feature": feature, "unit": opts["unit"]}}
        if ids is not None:
            props["domain"] = {"min": 0, "max": ids - 1, "name": name}
            out.append(ColumnSchema(name, tags=["categorical", *opts["tags"]], properties=props, dtype="int64"))
        else:
            out.append(ColumnSchema(name, tags=["continuous", *opts["tags"]], properties=props, dtype="float32"))
    return out


def _is_derived(col: ColumnSchema) -> bool:
    return bool(col.properties.get("derived_from"))


# ---------------------------------------------------------------------------- the workflow


def _float32(col):
    return col.astype("float32")


def _log1p_nonneg(col):
    # NVTabular's LogOp is log(x + 1); values below 0 would be NaN, so they are floored at 0
    return np.log1p(col.astype("float64").clip(lower=0)).astype("float32")


def _tags_of(col: ColumnSchema) -> list:
    return sorted(col.tags, key=lambda t: t.value if isinstance(t, Tags) else str(t))


def build_workflow(schema: Schema, stats_path=None, client=None):
    """An ``nvtabular.Workflow`` that encodes the schema's columns.

    * categorical and list-categorical columns: ``Categorify`` with the
      column's ``freq_threshold`` / ``max_size`` / ``num_buckets`` (from
      ``transform:``); unseen values map to the OOV id 2; ``kind: passthrough``
      keeps integer ids as they are;
    * continuous columns: the steps of ``transform:`` in order, then a cast to
      float32;
    * time columns are kept as they are; their ``transform:`` derives features
      (``hour``, ``day_of_week``, ``month`` ids, ``normalize`` /
      ``normalize_minmax`` floats) as new columns ``<column>_<feature>`` tagged
      for a tower (``tags:``, default user); text and other columns as they are;
    * every column's tags are added to the output schema (``AddTags``), so the
      workflow's output schema is tagged like the YAML.

    ``stats_path`` is where Categorify writes its vocabularies (a temporary
    place; ``Workflow.save`` copies them). ``client`` is a ``distributed.Client``.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/movielens-100k.yaml")
    >>> wf = build_workflow(schema)
    >>> sorted(t.value for t in wf.fit_schema(schema).output_schema["item_id"].tags)
    ['categorical', 'id', 'item']
    """
    import nvtabular as nvt
    from nvtabular import ops

    _check_transforms(schema)
    stats_path = str(stats_path) if stats_path is not None else "./"
    nodes = []
    for col in schema:
        if _is_derived(col):  # a processed schema's time features: made from their time column
            continue
        kind = _kind(col)
        node = [col.name]
        if kind == "categorical":
            opts = _categorical_options(col)
            if opts["kind"] == "categorify":
                node = node >> ops.Categorify(
                    out_path=stats_path,
                    freq_threshold=opts.get("freq_threshold") or 0,
                    max_size=opts.get("max_size") or 0,
                    num_buckets=opts.get("num_buckets"),
                    dtype="int64",
                )
        elif kind == "continuous":
            for step, arg in _continuous_steps(col):
                if step == "fill_missing":
                    node = node >> (ops.FillMedian() if arg == "median"
                                    else ops.FillMissing(fill_val=0 if arg in (None, True) else arg))
                elif step == "clip":
                    node = node >> ops.Clip(min_value=arg.get("min"), max_value=arg.get("max"))
                elif step == "log":
                    node = node >> ops.LambdaOp(_log1p_nonneg, dtype=np.float32)
                elif step == "normalize":
                    node = node >> ops.Normalize(out_dtype=np.float32)
                elif step == "normalize_minmax":
                    node = node >> ops.NormalizeMinMax()
            node = node >> ops.LambdaOp(_float32, dtype=np.float32)
        node = node >> ops.AddTags(_tags_of(col))
        nodes.append(node)
        if kind == "time":
            nodes.extend(_time_nodes(col))
    output = nodes[0]
    for node in nodes[1:]:
        output = output + node
    return nvt.Workflow(output, client=client) if client is not None else nvt.Workflow(output)


# ---------------------------------------------------------------------------- devices and dask


def select_device(device: str = "auto") -> str:
    """'gpu' or 'cpu': ``auto`` picks the GPU when cudf imports and a GPU is visible.

    >>> select_device("cpu")
    'cpu'
    >>> select_device("auto") in ("cpu", "gpu")
    True
    >>> select_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu' or 'gpu', got 'tpu'
    """
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    from merlin.core.compat import HAS_GPU

    try:
        import cudf  # noqa: F401
        has_cudf = True
    except Exception:  # ImportError, or a CUDA error on import
        has_cudf = False
    if device == "gpu" and not (has_cudf and HAS_GPU):
        raise RuntimeError("device='gpu' needs cudf and a visible GPU "
                           f"(cudf importable: {has_cudf}, GPU visible: {bool(HAS_GPU)})")
    return "gpu" if device == "gpu" or (device == "auto" and has_cudf and HAS_GPU) else "cpu"


def describe_engine(device: str, client=None) -> str:
    """The ETL's first log line: the device, the library doing the work, and where.

    >>> describe_engine("cpu").startswith("ETL on CPU (pandas ")
    True
    """
    if device == "gpu":
        import cudf

        engine = f"ETL on GPU (cudf {cudf.__version__}"
        where = "1 device" if client is None else None
    else:
        engine = f"ETL on CPU (pandas {pd.__version__}"
        where = None
    if client is not None:
        workers = len(client.scheduler_info().get("workers", {}))
        where = f"Dask cluster at {client.scheduler.address}, {workers} worker(s)"
    return engine + (f", {where})" if where else ")")




@contextlib.contextmanager
def _dask_context(dask, device):
    """(client or None) with merlin's client and ``upstream.DASK_SETTINGS`` set for the
    duration; logs the engine once and closes a client it opened."""
    import dask as dask_lib
    from merlin.core import utils as merlin_utils

    opened = None
    client = None
    if dask is not None:
        if isinstance(dask, str):
            from distributed import Client

            client = opened = Client(dask)
        else:
            client = dask
        _check_workers(client)
    log.info("%s; %s", describe_engine(device, client), upstream.describe())
    token = merlin_utils._merlin_dask_client.set(client)
    # A distributed client lying around in the process is not ours to use.
    local = {} if client is not None else {"scheduler": "threads"}
    try:
        with dask_lib.config.set(upstream.DASK_SETTINGS, **local), warnings.catch_warnings():
            # The engine line above says it in the library's words, once.
            warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
            yield client
    finally:
        merlin_utils._merlin_dask_client.reset(token)
        if opened is not None:
            opened.close()


def _workers_settings():
    import dask as dask_lib

    return {key: dask_lib.config.get(key, None) for key in upstream.DASK_SETTINGS}


def _check_workers(client) -> None:
    """Workers started elsewhere must run dask as merlin 23.8 needs (upstream.DASK_SETTINGS)."""
    for worker, settings in client.run(_workers_settings).items():
        wrong = {k: v for k, v in settings.items() if v != upstream.DASK_SETTINGS[k]}
        if wrong:
            raise ETLError(
                f"Dask worker {worker}: {wrong} but merlin 23.8 needs {upstream.DASK_SETTINGS}; start the "
                "workers with DASK_DATAFRAME__QUERY_PLANNING=False DASK_DATAFRAME__CONVERT_STRING=False "
                "in their environment (or install schemaretrieval in their environment)")


# ---------------------------------------------------------------------------- reading inputs


def _coerce_partition(df, numeric, lists, source, times=()):
    """Continuous columns to numbers and text lists ('A|B') to lists, naming what fails.

    The index is reset to 0..n-1: NVTabular 23.8's Categorify on CPU writes the
    null id at the *labels* of null rows into a positional array, which fails
    (IndexError) or mislabels rows in every partition but the first.
    """
    df = df.reset_index(drop=True)
    for name in numeric:
        values = df[name]
        if values.dtype.kind in "biuf":
            continue
        converted = pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            first = values[bad].iloc[0]
            raise ETLError(f"{source}: column {name!r}: expected numbers (a continuous column), "
                           f"cannot cast {first!r} ({int(bad.sum())} such value(s) in this partition)")
        df[name] = converted
    for name in times:  # tz-aware datetimes -> UTC without a zone (merlin has no dtype for them)
        if getattr(df[name].dtype, "tz", None) is not None:
            df[name] = df[name].dt.tz_convert("UTC").dt.tz_localize(None)
    for name, sep in lists.items():
        values = df[name]
        if len(values) and values.map(lambda v: isinstance(v, str)).any():
            df[name] = values.map(lambda v: [t for t in v.split(sep) if t] if isinstance(v, str)
                                  else ([] if v is None or (isinstance(v, float) and np.isnan(v)) else v))
    return df


def _read(data, schema: Schema, device: str, npartitions=None):
    """(dask DataFrame of the schema's columns, source name); errors name the source."""
    import dask.dataframe as dd

    if isinstance(data, pd.DataFrame):
        source = _DATAFRAME
        if len(data) == 0:
            raise ETLError(f"{source}: the data is empty (zero rows)")
        parts = npartitions or max(1, min(8, len(data) // 500_000 + 1))
        ddf = dd.from_pandas(data, npartitions=parts, sort=False)
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        source = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{source}: no such file or directory")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".pq"))
            if not files:
                raise ETLError(f"{source}: the directory holds no .parquet files")
            ddf = dd.read_parquet([str(p) for p in files])
        elif path.suffix.lower() in (".parquet", ".pq"):
            ddf = dd.read_parquet(str(path))
        elif path.suffix.lower() in (".csv", ".tsv"):
            if path.stat().st_size == 0:
                raise ETLError(f"{source}: the file is empty")
            try:
                # string columns stay strings ('05201' keeps its zero); lists arrive as 'A|B'
                ddf = dd.read_csv(str(path), sep="\t" if path.suffix.lower() == ".tsv" else ",",
                                  blocksize="64MB",
                                  dtype={c.name: "object" for c in schema
                                         if c.is_list or c.dtype.element_type.value == "string"})
            except pd.errors.EmptyDataError:
                raise ETLError(f"{source}: the file is empty") from None
        else:
            raise ETLError(f"{source}: unknown file type {path.suffix!r}; expected .csv, .parquet "
                           "or a directory of .parquet files")
    else:
        raise TypeError(f"expected a DataFrame or a path, got {type(data).__name__}")
    schema = Schema([c for c in schema if not _is_derived(c)])  # made by the workflow, not read
    missing = [c.name for c in schema if c.name not in ddf.columns]
    if missing:
        raise ETLError(f"{source}: column {missing[0]!r} named in the schema is missing from the data "
                       f"(missing: {missing}; the data has {list(ddf.columns)})")
    ddf = ddf[schema.column_names]
    numeric = [c.name for c in schema if _kind(c) == "continuous"]
    lists = {c.name: _categorical_options(c).get("separator", "|") for c in schema
             if _kind(c) == "categorical" and c.is_list}
    meta = ddf._meta.copy()
    for name in numeric:
        if meta[name].dtype.kind not in "biuf":
            meta[name] = meta[name].astype("float64")
    times = [c.name for c in schema if _kind(c) == "time" and getattr(meta[c.name].dtype, "tz", None) is not None]
    for name in times:
        meta[name] = meta[name].dt.tz_convert("UTC").dt.tz_localize(None)
    ddf = ddf.map_partitions(_coerce_partition, numeric, lists, source, times, meta=meta).clear_divisions()
    if ddf.npartitions == 0 or (source != _DATAFRAME and len(ddf.head(1, npartitions=-1)) == 0):
        raise ETLError(f"{source}: the data is empty (zero rows)")
    if device == "gpu":
        ddf = ddf.to_backend("cudf")
    return ddf, source


def _dataset(data, schema, device, npartitions=None):
    import nvtabular as nvt

    ddf, source = _read(data, schema, device, npartitions)
    return nvt.Dataset(ddf, cpu=device == "cpu"), source


# ---------------------------------------------------------------------------- outputs


def output_schema(schema: Schema, workflow) -> Schema:
    """The processed data's schema: the input's tags, integer categoricals with
    Categorify's domains, float32 continuous columns, ``transform`` kept."""
    out_cols = []
    nvt_schema = workflow.output_schema
    for col in schema:
        kind = _kind(col)
        props = copy.deepcopy(col.properties)
        dtype = col.dtype
        if kind == "categorical":
            dtype = "int64"
            domain = (nvt_schema[col.name].properties.get("domain") if col.name in nvt_schema.column_names
                      else None)
            if domain and domain.get("max") is not None and _categorical_options(col)["kind"] == "categorify":
                props["domain"] = {"min": int(domain.get("min", 0)), "max": int(domain["max"]),
                                   "name": (props.get("domain") or {}).get("name") or col.name}
        elif kind == "continuous":
            dtype = "float32"
            props.pop("domain", None)  # the transform changed the range
        if _is_derived(col):
            continue  # rebuilt below from its time column
        out_cols.append(ColumnSchema(col.name, tags=list(col.tags), properties=props, dtype=dtype,
                                     is_list=col.is_list, is_ragged=col.is_ragged))
        if kind == "time":
            out_cols.extend(_derived_columns(col))
    out = Schema(out_cols)
    out.name = getattr(schema, "name", None)
    return out


def _passthrough_domains(schema: Schema, out_schema: Schema, train_dir: Path) -> Schema:
    """Domain max of ``passthrough`` categorical columns from the data when the YAML lacks one."""
    import pyarrow.dataset as pads

    need = [c.name for c in schema if _kind(c) == "categorical"
            and _categorical_options(c)["kind"] == "passthrough"
            and (c.properties.get("domain") or {}).get("max") is None]
    if not need:
        return out_schema
    top = {name: 0 for name in need}
    for batch in pads.dataset(_parquet_files(train_dir), format="parquet").to_batches(columns=need):
        for name in need:
            values = _flat(batch.column(name))
            if len(values):
                top[name] = max(top[name], int(values.max()))
    cols = []
    for col in out_schema:
        if col.name in top:
            props = dict(col.properties, domain={"min": 0, "max": top[col.name], "name": col.name})
            col = col.with_properties(props)
        cols.append(col)
    result = Schema(cols)
    result.name = getattr(out_schema, "name", None)
    return result


def _parquet_files(directory: Path) -> list[str]:
    return sorted(str(p) for p in Path(directory).glob("*.parquet"))


def _flat(array) -> np.ndarray:
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = pa.concat_arrays(array.chunks) if array.num_chunks else pa.array([], pa.int64())
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)


def _scan(directory: Path, schema: Schema, item_id: str | None):
    """(rows, {column: OOV count}, item counts or None) of an encoded parquet directory."""
    import pyarrow.dataset as pads

    cats = {}
    for col in schema:
        if _kind(col) == "categorical" and _categorical_options(col)["kind"] == "categorify":
            cats[col.name] = _categorical_options(col).get("num_buckets") or 1
    oov = {name: 0 for name in cats}
    rows = 0
    counts = None
    if item_id is not None:
        counts = np.zeros(schema_lib.cardinality(schema[item_id]), dtype=np.int64)
    columns = list(cats) + ([item_id] if item_id and item_id not in cats else [])
    dataset = pads.dataset(_parquet_files(directory), format="parquet")
    _check_list_columns(directory, dataset.schema, schema)
    for batch in dataset.to_batches(columns=columns or None):
        rows += batch.num_rows
        for name, buckets in cats.items():
            values = _flat(batch.column(name))
            oov[name] += int(((values >= OOV_INDEX) & (values < OOV_INDEX + buckets)).sum())
        if counts is not None:
            ids = _flat(batch.column(item_id)).astype(np.int64)
            counts += np.bincount(ids, minlength=len(counts))[: len(counts)]
    return rows, oov, counts


def _check_list_columns(directory: Path, written, schema: Schema) -> None:
    """Every list column of the schema is a list in the written parquet.

    Guards the silent corruption of ``dataframe.convert-string`` (upstream.py):
    a list column turned into its text would be encoded as one category per row.
    """
    import dask as dask_lib
    import pyarrow as pa

    for col in schema:
        if col.is_list and col.name in written.names:
            kind = written.field(col.name).type
            if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                raise ETLError(f"{directory}: column {col.name!r} is a list in the schema but was "
                               f"written as {kind}; dask's dataframe.convert-string must be False "
                               f"(now {dask_lib.config.get('dataframe.convert-string')})")


@dataclass
class ETLOutput:
    """What ``fit_transform`` wrote; unpacks as ``train, valid = fit_transform(...)`` (paths).

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train, valid = sr.data.random_split(sr.data.synthetic(schema, 500, seed=0), 0.2, seed=0)
    >>> out = fit_transform(train, valid, schema=schema, out_dir=tempfile.mkdtemp())
    >>> out.train.name, out.valid.name, out.report["device"], out.report["train"]["rows"]
    ('train', 'valid', 'cpu', 400)
    >>> int(out.item_counts.sum())  # training rows per encoded item id
    400
    >>> train_dir, valid_dir = out
    """

    out_dir: Path
    train: Path
    valid: Path | None
    schema: Schema
    workflow_dir: Path
    item_counts: np.ndarray | None
    report: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train, self.valid))


def _write(workflow, dataset, path: Path):
    if path.exists():
        shutil.rmtree(path)
    workflow.transform(dataset).to_parquet(str(path), shuffle=None, out_files_per_proc=1)


def _report_oov(split, source, rows, oov, expected_in_train=False):
    for name, count in oov.items():
        if count and not expected_in_train:
            log.warning("%s (%s): column %r: %d value(s) not in the training vocabulary mapped to the OOV id",
                        split, source, name, count)
    return {"source": source, "rows": rows, "oov": oov}


def fit_transform(train, valid=None, schema=None, out_dir="processed", device: str = "auto", dask=None,
                  npartitions: int | None = None) -> ETLOutput:
    """Fit the schema's workflow on ``train``, transform ``train`` and ``valid``, write everything.

    Args:
        train, valid: a DataFrame, a csv file, a parquet file or a directory of
            parquet files; ``valid`` may be None.
        schema: a merlin Schema (``sr.load_schema``) or a path to one.
        out_dir: the output directory (see the module docstring for its layout).
        device: ``auto`` | ``cpu`` | ``gpu``.
        dask: None (one process), a ``distributed.Client`` or a scheduler address.
        npartitions: partitions of a DataFrame input (default: one per 500k rows, at most 8).

    Returns:
        an ``ETLOutput``; ``train_dir, valid_dir = fit_transform(...)`` also works.

    Raises:
        ETLError naming the file and column for a missing column, a value that
        cannot be cast to a number in a continuous column, or empty input;
        SchemaError for a bad ``transform:``. Unseen categories never raise:
        they go to the OOV id and are counted in ``report["valid"]["oov"]``.

    Example: the 8 users of a small ml-100k folder get the ids 3..10 (0, 1
    and 2 are reserved), and the written schema's domain covers them.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> encoded = sr.data.read_table(out.train)
    >>> len(encoded), out.valid, sorted(encoded["user_id"].unique().tolist())
    (48, None, [3, 4, 5, 6, 7, 8, 9, 10])
    >>> sr.load_schema(out.out_dir)["user_id"].properties["domain"]
    {'min': 0, 'max': 10, 'name': 'user_id'}
    """
    import nvtabular as nvt  # noqa: F401

    if schema is None:
        raise TypeError("fit_transform: schema is required")
    if not isinstance(schema, Schema):
        schema = schema_lib.load_schema(schema)
    _check_transforms(schema)
    chosen = select_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = out / ".categorify"
    wf_dir = out / _WORKFLOW_DIR
    with _dask_context(dask, chosen) as client:
        workflow = build_workflow(schema, stats_path=stats)  # runs on merlin's current client
        train_ds, train_src = _dataset(train, schema, chosen, npartitions)
        valid_ds, valid_src = (None, None) if valid is None else _dataset(valid, schema, chosen, npartitions)
        workflow.fit(train_ds)
        _write(workflow, train_ds, out / "train")
        if valid_ds is not None:
            _write(workflow, valid_ds, out / "valid")
        if wf_dir.exists():
            shutil.rmtree(wf_dir)
        workflow.save(str(wf_dir))
    shutil.rmtree(stats, ignore_errors=True)

    processed = _passthrough_domains(schema, output_schema(schema, workflow), out / "train")
    item_id = _item_id_or_none(processed)
    rows, oov, counts = _scan(out / "train", processed, item_id)
    report = {"device": chosen, "dask": None if dask is None else str(getattr(dask, "scheduler", dask)),
              "train": _report_oov("train", train_src, rows, oov, expected_in_train=True)}
    if valid_ds is not None:
        v_rows, v_oov, _ = _scan(out / "valid", processed, None)
        report["valid"] = _report_oov("valid", valid_src, v_rows, v_oov)
    if counts is not None:
        pd.DataFrame({item_id: np.arange(len(counts), dtype=np.int64), "count": counts}).to_parquet(
            out / _ITEM_COUNTS, index=False)
    schema_lib.save_schema(processed, out / "schema.yaml")
    schema_lib.save_schema(processed, out / "schema.pbtxt")
    # NVTabular's own file leaves pass-through string columns untyped ('unknown');
    # ours is the same schema with every column typed and tagged
    for split in ("train", "valid"):
        if (out / split).is_dir():
            schema_lib.save_schema(processed, out / split / "schema.pbtxt")
    schema_lib.save_schema(processed, wf_dir / "schema.yaml")
    (out / _REPORT).write_text(json.dumps(report, indent=2))
    log.info("ETL wrote %d train rows%s to %s", rows,
             f" and {report['valid']['rows']} valid rows" if valid_ds is not None else "", out)
    return ETLOutput(out, out / "train", out / "valid" if valid_ds is not None else None,
                     processed, wf_dir, counts, report)


def _item_id_or_none(schema):
    try:
        return schema_lib.item_id_column(schema)
    except SchemaError:
        return None


def transform(data, workflow_dir, out_dir=None, device: str = "auto", dask=None):
    """New data through a workflow saved by ``fit_transform``.

    ``workflow_dir`` is the ``workflow/`` directory (or the ETL's output
    directory holding it). Returns the encoded DataFrame, or with ``out_dir``
    writes parquet there and returns ``(out_dir, report)``. Unseen categories go to the
    OOV id; their counts are logged and, with ``out_dir``, written to its report.

    Example: the training rows again give the ids the ETL wrote; a user the
    workflow never saw gets the OOV id 2.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> transform(ratings, out.out_dir)["item_id"].equals(sr.data.read_table(out.train)["item_id"])
    True
    >>> new = ratings.head(2).assign(user_id=999)
    >>> frame = transform(new, out.workflow_dir)
    >>> frame["user_id"].tolist(), frame.attrs["oov"]["user_id"]
    ([2, 2], 2)
    >>> written, report = transform(new, out.workflow_dir, out_dir=tempfile.mkdtemp())
    >>> report["rows"], report["oov"]["user_id"]
    (2, 2)
    """
    import nvtabular as nvt

    wf_dir = Path(workflow_dir)
    if (wf_dir / _WORKFLOW_DIR).is_dir():
        wf_dir = wf_dir / _WORKFLOW_DIR
    schema = schema_lib.load_schema(wf_dir / "schema.yaml")
    chosen = select_device(device)
    with _dask_context(dask, chosen) as client:
        workflow = nvt.Workflow.load(str(wf_dir))  # runs on merlin's current client
        dataset, source = _dataset(data, schema, chosen)
        if out_dir is None:
            frame = workflow.transform(dataset).to_ddf().compute()
            if chosen == "gpu":
                frame = frame.to_pandas()
            frame = frame.reset_index(drop=True)
            oov = {}
            for col in schema:
                if _kind(col) == "categorical" and _categorical_options(col)["kind"] == "categorify":
                    buckets = _categorical_options(col).get("num_buckets") or 1
                    values = frame[col.name]
                    flat = np.concatenate([np.asarray(v) for v in values]) if col.is_list and len(values) \
                        else values.to_numpy()
                    oov[col.name] = int(((flat >= OOV_INDEX) & (flat < OOV_INDEX + buckets)).sum())
            _report_oov("transform", source, len(frame), oov)
            frame.attrs["oov"] = oov
            return frame
        out = Path(out_dir)
        _write(workflow, dataset, out)
    rows, oov, _ = _scan(out, schema, None)
    report = _report_oov("transform", source, rows, oov)
    (out / _REPORT).write_text(json.dumps(report, indent=2))
    return out, report
