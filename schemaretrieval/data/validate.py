"""Validated model inputs from a table: ``to_arrays``, and ``drop_bad_rows`` on the same rules.

* scalar categorical -> int64 ``[n]``, inside the schema's domain;
* continuous -> float32 ``[n]``, finite;
* list categorical -> int64 ``[n, L]`` padded with ``PAD`` (-1).

Every error names the source (file or ``<DataFrame>``), the column, the row
and what was expected; nothing is silently dropped, cast or truncated.
``drop_bad_rows`` leaves out, and counts, the rows ``to_arrays`` would
reject for their values, by the same checks (`outside_domain` among them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from merlin.schema import ColumnSchema, Schema

from schemaretrieval.schema import columns
from schemaretrieval.schema.columns import CATEGORICAL, PAD

__all__ = ["to_arrays", "drop_bad_rows", "outside_domain", "id_array"]


def outside_domain(ids: np.ndarray, col: ColumnSchema):
    """(mask of ``ids`` outside the column's domain, what was expected): the one check of ids
    against the embedding table every reader shares (>= 0 when the schema gives no domain).

    >>> mask, expected = outside_domain(np.array([0, 5, 12]), ColumnSchema("x", properties={"domain": {"min": 0, "max": 9}}))
    >>> mask.tolist(), expected
    ([False, False, True], "the schema's domain [0, 9]")
    """
    dom = columns.domain(col)
    if dom is None:
        return ids < 0, "ids >= 0 (the schema gives no domain)"
    lo, hi = dom
    return (ids < lo) | (ids > hi), f"the schema's domain [{lo}, {hi}]"


def id_array(values, col: ColumnSchema, what: str) -> np.ndarray:
    """``values`` as int64 ids of ``col``, or a ValueError naming ``what``: NaN, fractional and
    non-numeric ids, and ids outside the domain, are never cast.

    >>> id_array([3.0, 4.0], ColumnSchema("x", properties={"domain": {"min": 0, "max": 9}}), "user ids").tolist()
    [3, 4]
    >>> id_array([3, 10], ColumnSchema("x", properties={"domain": {"min": 0, "max": 9}}), "user ids")
    Traceback (most recent call last):
    ...
    ValueError: user ids: column 'x': value 10 at row 1 is outside the schema's domain [0, 9] (1 offending value)
    """
    return _check_ids(_to_numeric(values, what, col.name), col, what)


def _fail(source, name, message):
    raise ValueError(f"{source}: column {name!r}: {message}")


def _first(mask: np.ndarray, rows=None) -> tuple[int, int]:
    """(position, row) of the first True of ``mask``; ``rows`` maps positions to the caller's rows."""
    pos = int(np.argmax(mask))
    return pos, (pos if rows is None else int(rows[pos]))


def _rows_note(mask: np.ndarray, rows=None) -> str:
    count = int(mask.sum())
    return f"{count} row{'s' if count != 1 else ''}, first at row {_first(mask, rows)[1]}"


def _to_numeric(values, source, name, rows=None):
    """1-D numeric numpy array from any 1-D input; non-numeric -> error.

    ``rows`` maps positions of ``values`` to row numbers for messages.
    """
    if isinstance(values, pd.Series):
        if pd.api.types.is_extension_array_dtype(values.dtype):
            if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
                return values.to_numpy(dtype=np.float64, na_value=np.nan)
            values = values.astype(object)
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind in "mM":  # pd.to_numeric would give nanoseconds, a number no one chose
        _fail(source, name, f"expected numbers, found {arr.dtype} values; convert them to the number "
                            "the feature means (e.g. days since an event) before training")
    if arr.dtype.kind == "O" or arr.dtype.kind in "US":
        series = pd.Series(arr, dtype=object if arr.dtype.kind == "O" else None)
        try:
            numeric = pd.to_numeric(series, errors="coerce")
        except TypeError:
            numeric = None
        if numeric is not None:
            numeric = numeric.to_numpy(dtype=np.float64)
            bad = np.isnan(numeric) & ~pd.isna(series).to_numpy()
        else:  # e.g. lists inside a scalar column
            bad = ~np.fromiter(
                (isinstance(v, (int, float, np.number, bool)) or v is None for v in arr),
                dtype=bool, count=len(arr),
            )
        if bad.any():
            pos, row = _first(bad, rows)
            _fail(source, name,
                  f"expected numbers, found the non-numeric value {arr[pos]!r} at row {row} "
                  f"({int(bad.sum())} such value{'s' if bad.sum() != 1 else ''})")
        return numeric
    _fail(source, name, f"expected numbers, found values of dtype {arr.dtype}")


def _check_ids(ids, col, source, rows=None, what="value"):
    """int64 ids from numeric values, checked against the column's domain."""
    name = col.name
    if ids.dtype.kind == "f":
        missing = np.isnan(ids)
        if missing.any():
            _fail(source, name, f"expected integer ids, found missing / NaN values ({_rows_note(missing, rows)})")
        inf = np.isinf(ids)
        if inf.any():
            _fail(source, name, f"expected integer ids, found infinite values ({_rows_note(inf, rows)})")
        frac = ids != np.floor(ids)
        if frac.any():
            pos, row = _first(frac, rows)
            _fail(source, name, f"expected integer ids, found {ids[pos]!r} at row {row}")
    if ids.dtype.kind in "fu":  # beyond int64, the cast below would wrap them to other (negative) ids
        huge = np.abs(ids) >= 2.0**63 if ids.dtype.kind == "f" else ids > np.iinfo(np.int64).max
        if huge.any():
            pos, row = _first(huge, rows)
            _fail(source, name, f"expected integer ids, found {ids[pos].item()!r} at row {row}, beyond int64")
    ids = ids.astype(np.int64, copy=False)
    bad, expected = outside_domain(ids, col)
    if bad.any():
        pos, row = _first(bad, rows)
        _fail(source, name,
              f"{what} {int(ids[pos])} at row {row} is outside {expected} "
              f"({int(bad.sum())} offending value{'s' if bad.sum() != 1 else ''})")
    return ids


def _scalar_column(values, col, kind, source):
    if isinstance(values, np.ndarray) and values.ndim != 1:
        _fail(source, col.name, f"expected one value per row, got an array of shape {values.shape}")
    numeric = _to_numeric(values, source, col.name)
    if numeric.ndim != 1:
        _fail(source, col.name, f"expected one value per row, got shape {numeric.shape}")
    if kind == CATEGORICAL:
        if pd.api.types.is_bool_dtype(getattr(values, "dtype", None)):  # would train as ids 0 and 1
            _fail(source, col.name, "expected integer ids, found True/False values (a bool column); give the ids "
                                    "as integers")
        return _check_ids(numeric, col, source)
    with np.errstate(over="ignore"):  # values beyond float32 become inf: reported below
        out = numeric.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        _fail(source, col.name,
              f"expected finite numbers, found NaN or inf (after conversion to float32) in "
              f"{_rows_note(bad)}")
    return out


def _ragged_parts(values, source, name):
    """(flat values, row lengths) of a column holding one sequence per row."""
    import pyarrow as pa

    if isinstance(values, pd.Series):
        values = values.to_numpy()
    values = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if values.dtype != object:
        values = values.astype(object)
    missing = pd.isna(values)
    if missing.any():
        _fail(source, name,
              f"expected a list of ids per row, found missing values (None / NaN) in "
              f"{_rows_note(missing)}; use an empty list for a row without ids")
    arr = None
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        arr = None
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return _parse_strings(values, source, name)
    if arr is None or not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        is_seq = np.fromiter(
            (isinstance(v, (list, tuple, np.ndarray)) for v in values), dtype=bool, count=len(values)
        )
        if not is_seq.all():
            pos = int(np.argmax(~is_seq))
            _fail(source, name,
                  f"expected a list of ids per row, found {values[pos]!r} at row {pos}")
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        flat = np.concatenate([np.asarray(v, dtype=object).ravel() for v in values]) \
            if len(values) else np.zeros(0)
        return flat, lengths
    lengths = arr.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    flat_arr = arr.flatten()
    if pa.types.is_integer(flat_arr.type) or pa.types.is_floating(flat_arr.type):
        flat = flat_arr.to_numpy(zero_copy_only=False)  # a null becomes NaN: reported later
    else:  # booleans, text, mixed: judged value by value in _to_numeric
        flat = np.asarray(flat_arr.to_pylist(), dtype=object)
    return flat, lengths


def _parse_strings(values, source, name):
    """Lists written as text (csv): '[1, 2]', '1 2', '1|2' or '1;2'."""
    text = pd.Series(values, dtype=object)
    not_str = ~text.map(type).isin([str]).to_numpy()
    if not_str.any():
        pos = int(np.argmax(not_str))
        _fail(source, name, f"expected a list of ids per row, found {values[pos]!r} at row {pos}")
    text = text.str.strip().str.replace(r"^[\[\(]|[\]\)]$", "", regex=True).str.strip()
    tokens = text.str.split(r"[\s,;|]+", regex=True).explode()
    tokens = tokens[tokens.notna() & (tokens != "")]
    lengths = np.bincount(tokens.index.to_numpy(dtype=np.int64), minlength=len(text)).astype(np.int64)
    return tokens.to_numpy(dtype=object), lengths


def _padded_list(values, col, source):
    """int64 [n, L] padded with PAD from sequences or an already padded 2-D array."""
    name = col.name
    vmin, vmax = columns.value_count(col)
    if isinstance(values, np.ndarray) and values.ndim == 2:
        numeric = _to_numeric(values.ravel(), source, name).reshape(values.shape)
        present = numeric != PAD
        lengths = present.sum(axis=1)
        flat = numeric[present]
        rows = np.nonzero(present)[0]
    else:
        if isinstance(values, np.ndarray) and values.ndim > 2:
            _fail(source, name, f"expected a list of ids per row, got an array of shape {values.shape}")
        flat, lengths = _ragged_parts(values, source, name)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        flat = _to_numeric(flat, source, name, rows=rows)
    n = len(lengths)
    if vmin is not None:
        too_short = lengths < vmin
        if too_short.any():
            pos = int(np.argmax(too_short))
            _fail(source, name,
                  f"row {pos} has {int(lengths[pos])} ids, fewer than the schema's value_count "
                  f"min {vmin} ({int(too_short.sum())} such rows); lower value_count.min if such rows are data")
    if vmax is not None:
        too_long = lengths > vmax
        if too_long.any():
            pos = int(np.argmax(too_long))
            _fail(source, name,
                  f"row {pos} has {int(lengths[pos])} ids, more than the schema's value_count "
                  f"max {vmax} ({int(too_long.sum())} such rows); raise value_count.max rather "
                  "than truncate")
        width = vmax
    else:
        width = max(1, int(lengths.max(initial=0)))
    dom = columns.domain(col)
    if dom is not None and dom[0] <= PAD <= dom[1]:
        _fail(source, name,
              f"the domain [{dom[0]}, {dom[1]}] contains the padding value {PAD} of list columns")
    ids = _check_ids(np.asarray(flat), col, source, rows=rows, what="id")
    out = np.full((n, width), PAD, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(len(ids)) - np.repeat(starts, lengths)
    out[rows, cols] = ids
    return out


def _num_rows(values) -> int:
    if isinstance(values, (pd.Series, np.ndarray)):
        return int(values.shape[0])
    return len(values)


def to_arrays(data, schema: Schema, *, source: str = "<DataFrame>") -> dict[str, np.ndarray]:
    """Validated numpy arrays for the schema's feature and target columns.

    Every categorical or continuous column of ``schema`` (by tags, or by a
    numeric dtype) is converted; other columns (e.g. text) and columns of
    ``data`` that the schema does not name are left out.

    * scalar categorical -> int64 ``[n]``, inside the schema's domain
      [min, max] (or >= 0 when the schema gives no domain);
    * continuous -> float32 ``[n]``, finite;
    * list categorical -> int64 ``[n, L]`` padded at the end with
      ``PAD`` (-1); ``L`` is the schema's value_count max when given,
      else the longest row. Rows may be lists / arrays, text such as
      ``"[1, 2]"`` or ``"1|2"`` (csv), or ``data`` may hold an already padded
      2-D array. A row longer than value_count max is an error.

    Args:
        data: a DataFrame, or a mapping of column name -> array / sequence.
        schema: the merlin Schema naming the columns.
        source: how errors name the data (a file name, say).

    Raises:
        ValueError naming ``source``, the column and what was expected for: a
        missing column, no rows, NaN / inf in a continuous column (with the
        count and the first row), an id outside the domain (with the value and
        the domain), a non-numeric value, a list longer than value_count max,
        or columns of different lengths.

    Example:

        >>> import numpy as np, pandas as pd
        >>> from merlin.schema import ColumnSchema, Schema, Tags

        >>> schema = Schema([
        ...     ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype=np.int64,
        ...                  properties={"domain": {"min": 0, "max": 9}}),
        ...     ColumnSchema("item_tags", tags=[Tags.ITEM, Tags.CATEGORICAL, Tags.LIST],
        ...                  dtype=np.int64, is_list=True, is_ragged=True,
        ...                  properties={"domain": {"min": 0, "max": 5},
        ...                              "value_count": {"min": 1, "max": 3}}),
        ...     ColumnSchema("price", tags=[Tags.ITEM, Tags.CONTINUOUS], dtype=np.float32),
        ... ])
        >>> frame = pd.DataFrame({"item_id": [3, 7], "item_tags": [[1], [2, 5]], "price": [0.5, 1.0]})
        >>> arrays = to_arrays(frame, schema)
        >>> arrays["item_tags"]
        array([[ 1, -1, -1],
               [ 2,  5, -1]])
        >>> arrays["item_id"].dtype, arrays["price"].dtype
        (dtype('int64'), dtype('float32'))
    """
    if isinstance(data, pd.DataFrame):
        available = list(data.columns)
    elif isinstance(data, Mapping):
        available = list(data.keys())
    else:
        raise TypeError(
            f"{source}: to_arrays expects a pandas DataFrame or a mapping of column -> array, "
            f"got {type(data).__name__}"
        )
    wanted = columns.feature_columns(schema)
    missing = [col.name for col in wanted if col.name not in available]
    if missing:
        raise ValueError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} {missing} required by the "
            f"schema; the data has columns {available}"
        )
    if not wanted:
        raise ValueError(f"{source}: the schema names no categorical or continuous column")
    n = None
    first_name = None
    out: dict[str, np.ndarray] = {}
    for col in wanted:
        values = data[col.name]
        rows = _num_rows(values)
        if n is None:
            n, first_name = rows, col.name
            if n == 0:
                raise ValueError(f"{source}: the data is empty (zero rows)")
        elif rows != n:
            _fail(source, col.name, f"has {rows} rows, expected {n} (as column {first_name!r})")
        kind = columns.kind(col)
        if columns.is_list(col):
            if kind != CATEGORICAL:
                _fail(source, col.name, "list columns must be categorical (continuous lists are "
                                        "not supported)")
            out[col.name] = _padded_list(values, col, source)
        else:
            out[col.name] = _scalar_column(values, col, kind, source)
    return out


def drop_bad_rows(frame: pd.DataFrame, schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows `to_arrays` would reject for their values, left out
    and counted: missing / non-finite / non-numeric values, categorical ids
    outside the schema's domain, a missing list, list elements outside the
    domain or lists longer than value_count max. Returns (kept rows, {column: rows dropped for it}).
    A missing column is not a bad row and still ends with an error.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> data = sr.data.synthetic(schema, 5, seed=0)
    >>> data.loc[1, "user_age"] = float("nan")
    >>> data.loc[3, "item_id"] = 3000  # the schema's domain is 0..2999
    >>> kept, dropped = drop_bad_rows(data, schema)
    >>> len(kept), dropped
    (3, {'user_age': 1, 'item_id': 1})
    >>> len(sr.data.to_arrays(kept, schema)["item_id"])  # what to_arrays would have rejected is gone
    3
    """
    bad = np.zeros(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for col in columns.feature_columns(schema):
        kind = columns.kind(col)
        if col.name not in frame.columns:
            continue
        values = frame[col.name]
        if columns.is_list(col):
            column_bad = np.fromiter((_bad_list(v, col) for v in values), dtype=bool, count=len(values))
        else:
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            column_bad = ~np.isfinite(numeric)
            if kind == CATEGORICAL:
                with np.errstate(invalid="ignore"):
                    column_bad |= numeric != np.floor(numeric)
                    column_bad |= outside_domain(numeric, col)[0]
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    column_bad |= ~np.isfinite(numeric.astype("float32"))
        new = column_bad & ~bad
        if new.any():
            counts[col.name] = int(new.sum())
        bad |= column_bad
    return frame.loc[~bad].reset_index(drop=True), counts


def _bad_list(value, col) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True  # to_arrays asks for an empty list rather than a missing one
    try:
        items = np.asarray(value, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        return not isinstance(value, str)  # text lists are parsed (and checked) by to_arrays
    if not np.isfinite(items).all() or (items != np.floor(items)).any():
        return True
    if outside_domain(items, col)[0].any():
        return True
    longest = columns.value_count(col)[1]
    return longest is not None and len(items) > longest
