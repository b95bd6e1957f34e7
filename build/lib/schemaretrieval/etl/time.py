"""Time features a time column derives in the ETL: hour, day of week, month, normalised times.

A time column holds numbers since 1970-01-01 UTC (in its ``unit``) or
datetime64 values; its ``transform:`` (see `options.time_options`) names the
features, which become new columns ``<column>_<feature>``: ids for hour (0-23,
24 missing), day of week (0 Monday, 7 missing) and month (0-11, 12 missing),
floats for the normalised times (missing -> 0). docs/etl.md says when they help.

>>> import pandas as pd
>>> hour(pd.Series([0, 3600 * 25, None], name="t")).tolist()
[0, 1, 24]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from merlin.schema import ColumnSchema

from schemaretrieval.etl.options import TIME_FEATURES, TIME_UNITS, ETLError, derived_name, time_options

__all__ = ["hour", "day_of_week", "month"]


def epoch_seconds(col, unit="s"):
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
    return col.astype("float64") * TIME_UNITS[unit]


def hour(col, unit="s"):
    """Hour of the day, 0-23 UTC; 24 for a missing time.

    >>> hour(pd.Series([3600 * 5, None])).tolist()
    [5, 24]
    """
    sec = epoch_seconds(col, unit)
    return (np.floor(sec / 3600.0) % 24).fillna(24).astype("int64")  # 24: missing


def day_of_week(col, unit="s"):
    """Day of the week, 0 Monday .. 6 Sunday; 7 for a missing time.

    >>> day_of_week(pd.Series([0, 86400 * 4, None])).tolist()  # 1970-01-01 was a Thursday
    [3, 0, 7]
    """
    sec = epoch_seconds(col, unit)
    return ((np.floor(sec / 86400.0) + 3) % 7).fillna(7).astype("int64")  # 1970-01-01 was a Thursday


def month(col, unit="s"):
    """Month, 0 January .. 11 December; 12 for a missing time.

    >>> month(pd.Series([0, 86400 * 40, None])).tolist()
    [0, 1, 12]
    """
    sec = epoch_seconds(col, unit)
    whole = np.floor(sec.fillna(0)).astype("int64")
    if type(col).__module__.startswith("cudf"):
        import cudf

        months = cudf.to_datetime(whole, unit="s").dt.month
    else:
        months = pd.to_datetime(whole, unit="s").dt.month
    return (months - 1).where(sec.notna(), 12).astype("int64")


def seconds(col, unit="s"):
    """float64 seconds since 1970-01-01 UTC; missing -> NaN."""
    return epoch_seconds(col, unit)


@dataclass(frozen=True)
class TimeFeature:
    """``fn(col, unit)`` as a one-argument callable (NVTabular's LambdaOp counts the arguments).

    >>> TimeFeature(seconds, "ms")(pd.Series([2000])).tolist()
    [2.0]
    """

    fn: object
    unit: str

    def __call__(self, col):
        return self.fn(col, self.unit)


def time_nodes(col: ColumnSchema):
    """Workflow nodes of a time column's derived features (tagged from its ``transform:``)."""
    from nvtabular import ops

    from schemaretrieval.etl.workflow import DerivedFeature, to_float32

    opts = time_options(col)
    if opts is None:
        return []
    nodes = []
    for feature in opts["features"]:
        _, ids = TIME_FEATURES[feature]
        name = derived_name(col.name, feature)
        rename = ops.Rename(name=name)
        if ids is not None:
            fn = {"hour": hour, "day_of_week": day_of_week, "month": month}[feature]
            node = ([col.name] >> DerivedFeature(TimeFeature(fn, opts["unit"]), dtype=np.int64,
                                                properties={"domain": {"min": 0, "max": ids - 1, "name": name}})
                    >> rename >> ops.AddTags(["categorical", *opts["tags"]]))
        else:
            node = [col.name] >> DerivedFeature(TimeFeature(seconds, opts["unit"]), dtype=np.float64)
            node = node >> (ops.Normalize(out_dtype=np.float32) if feature == "normalize" else ops.NormalizeMinMax())
            node = (node >> ops.FillMissing(fill_val=0.0) >> ops.LambdaOp(to_float32, dtype=np.float32)
                    >> rename >> ops.AddTags(["continuous", *opts["tags"]]))
        nodes.append(node)
    return nodes


def derived_columns(col: ColumnSchema) -> list[ColumnSchema]:
    """The output schema's columns for a time column's derived features."""
    opts = time_options(col)
    if opts is None:
        return []
    out = []
    for feature in opts["features"]:
        name = derived_name(col.name, feature)
        _, ids = TIME_FEATURES[feature]
        props = {"derived_from": {"column": col.name, "feature": feature, "unit": opts["unit"]}}
        if ids is not None:
            props["domain"] = {"min": 0, "max": ids - 1, "name": name}
            out.append(ColumnSchema(name, tags=["categorical", *opts["tags"]], properties=props, dtype="int64"))
        else:
            out.append(ColumnSchema(name, tags=["continuous", *opts["tags"]], properties=props, dtype="float32"))
    return out
