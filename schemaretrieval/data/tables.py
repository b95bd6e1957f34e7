"""From tables on disk or in memory to model inputs.

* ``read_table``: a parquet file, a directory of parquet files or a csv file.
* ``to_arrays``: the schema's columns as validated numpy arrays (categorical
  -> int64 ``[n]``, continuous -> float32 ``[n]``, list categorical -> int64
  ``[n, L]`` padded with ``PAD_VALUE`` = -1).
* ``to_tf_dataset``: batches of ``{column: tensor}`` from those arrays.
* ``candidate_table`` / ``interactions``: the item side of the data, one row
  per item, and the (user id, item id) pairs used to exclude seen items.

Every error names the source (file or ``<DataFrame>``), the column and what
was expected; nothing is silently dropped or truncated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval.schema import candidate_schema, item_id_column, user_id_column

__all__ = [
    "PAD_VALUE",
    "as_frame",
    "read_table",
    "to_arrays",
    "to_tf_dataset",
    "candidate_table",
    "interactions",
]

#: Padding of list categorical columns in ``to_arrays`` (ids are >= 0).
PAD_VALUE = -1

_CATEGORICAL = "categorical"
_CONTINUOUS = "continuous"
_DATAFRAME = "<DataFrame>"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv",)
_ACCEPTED = "a .parquet file, a directory of .parquet files, or a .csv file"


# --------------------------------------------------------------------------
# Reading the schema (private; shared with synthetic.py)
# --------------------------------------------------------------------------

def _is_list_column(col: ColumnSchema) -> bool:
    return bool(col.is_list) or Tags.LIST in col.tags


def _column_numpy_dtype(col: ColumnSchema):
    """The column's numpy dtype, or None when the schema gives none."""
    dtype = col.dtype
    try:
        if dtype is None or dtype.element_type.value == "unknown":
            return None
        return np.dtype(dtype.to_numpy)
    except Exception:  # a dtype that merlin cannot map to numpy
        return None


def _column_kind(col: ColumnSchema):
    """'categorical', 'continuous' or None (e.g. a text column).

    The tags decide; without either tag a time column is neither, otherwise a
    numeric dtype decides (integers are categorical, floats continuous), and a
    target without a dtype is continuous.
    """
    if Tags.CATEGORICAL in col.tags:
        return _CATEGORICAL
    if Tags.CONTINUOUS in col.tags:
        return _CONTINUOUS
    if Tags.TIME in col.tags:  # raw times feed splits; the ETL derives the model's time features
        return None
    dtype = _column_numpy_dtype(col)
    if dtype is not None:
        if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
            return _CATEGORICAL
        if np.issubdtype(dtype, np.floating):
            return _CONTINUOUS
    if Tags.TARGET in col.tags and dtype is None:
        return _CONTINUOUS
    return None


def _column_domain(col: ColumnSchema):
    """(min, max) of the column's domain, or None when the schema has none."""
    dom = col.properties.get("domain") if col.properties else None
    if dom is None:
        return None
    if isinstance(dom, Mapping):
        lo, hi = dom.get("min"), dom.get("max")
    else:
        lo, hi = getattr(dom, "min", None), getattr(dom, "max", None)
    if hi is None:
        return None
    return (0 if lo is None else lo), hi


def _column_value_count(col: ColumnSchema):
    """(min, max) list length; each is None when the schema does not give it."""
    vc = col.properties.get("value_count") if col.properties else None
    if vc is None:
        return None, None
    if isinstance(vc, Mapping):
        lo, hi = vc.get("min"), vc.get("max")
    else:
        lo, hi = getattr(vc, "min", None), getattr(vc, "max", None)
    # merlin writes 0 for "not known"
    return (int(lo) if lo else None), (int(hi) if hi else None)


def _id_column(schema: Schema, entity: Tags) -> str:
    """Name of the one column tagged user_id / item_id; ValueError when there is none."""
    if entity == Tags.ITEM:
        return item_id_column(schema)
    name = user_id_column(schema)
    if name is None:
        raise ValueError(
            f"the schema has no column tagged 'user_id'; its columns are {schema.column_names}"
        )
    return name


# --------------------------------------------------------------------------
# read_table
# --------------------------------------------------------------------------

def read_table(path) -> pd.DataFrame:
    """Read a parquet file, a directory of parquet files, or a csv file.

    A directory's ``*.parquet`` / ``*.pq`` files are read in name order and
    concatenated (index reset).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an empty file, a table with zero rows, a directory without
            parquet files, or an extension other than .parquet / .pq / .csv.

    Example:
        >>> import os, tempfile
        >>> import pandas as pd
        >>> path = os.path.join(tempfile.mkdtemp(), "events.csv")
        >>> pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).to_csv(path, index=False)
        >>> read_table(path).shape
        (2, 2)
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"read_table: {str(path)!r} does not exist (expected {_ACCEPTED})")
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in _PARQUET_SUFFIXES
        )
        if not files:
            raise ValueError(
                f"read_table: directory {str(path)!r} holds no .parquet files (expected {_ACCEPTED})"
            )
        frames = [_read_parquet(p) for p in files]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frame) == 0:
            raise ValueError(f"read_table: the parquet files in {str(path)!r} hold zero rows")
        return frame
    suffix = path.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    elif suffix in _CSV_SUFFIXES:
        if path.stat().st_size == 0:
            raise ValueError(f"read_table: {str(path)!r} is an empty file")
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"read_table: {str(path)!r} is an empty csv file ({err})") from None
    else:
        raise ValueError(
            f"read_table: cannot read {str(path)!r}: unknown extension {path.suffix!r}; "
            f"accepted: {_ACCEPTED}"
        )
    if len(frame) == 0:
        raise ValueError(f"read_table: {str(path)!r} has zero rows")
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise ValueError(f"read_table: {str(path)!r} is an empty file")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's errors do not always say which file
        raise ValueError(f"read_table: cannot read parquet file {str(path)!r}: {err}") from err


# --------------------------------------------------------------------------
# to_arrays
# --------------------------------------------------------------------------

def _fail(source, name, message):
    raise ValueError(f"{source}: column {name!r}: {message}")


def _rows_note(mask: np.ndarray) -> str:
    count = int(mask.sum())
    first = int(np.argmax(mask))
    return f"{count} row{'s' if count != 1 else ''}, first at row {first}"


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
    if arr.dtype.kind == "O" or arr.dtype.kind in "USM":
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
            pos = int(np.argmax(bad))
            row = pos if rows is None else int(rows[pos])
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
            where = _rows_note(missing) if rows is None else f"first at row {int(rows[np.argmax(missing)])}"
            _fail(source, name, f"expected integer ids, found missing / NaN values ({where})")
        inf = np.isinf(ids)
        if inf.any():
            where = _rows_note(inf) if rows is None else f"first at row {int(rows[np.argmax(inf)])}"
            _fail(source, name, f"expected integer ids, found infinite values ({where})")
        frac = ids != np.floor(ids)
        if frac.any():
            pos = int(np.argmax(frac))
            row = pos if rows is None else int(rows[pos])
            _fail(source, name, f"expected integer ids, found {ids[pos]!r} at row {row}")
    ids = ids.astype(np.int64, copy=False)
    dom = _column_domain(col)
    if dom is not None:
        lo, hi = dom
        bad = (ids < lo) | (ids > hi)
        expected = f"the schema's domain [{lo}, {hi}]"
    else:
        bad = ids < 0
        expected = "ids >= 0 (the schema gives no domain)"
    if bad.any():
        pos = int(np.argmax(bad))
        row = pos if rows is None else int(rows[pos])
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
    if kind == _CATEGORICAL:
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
    """int64 [n, L] padded with PAD_VALUE from sequences or an already padded 2-D array."""
    name = col.name
    vmin, vmax = _column_value_count(col)
    if isinstance(values, np.ndarray) and values.ndim == 2:
        numeric = _to_numeric(values.ravel(), source, name).reshape(values.shape)
        present = numeric != PAD_VALUE
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
    dom = _column_domain(col)
    if dom is not None and dom[0] <= PAD_VALUE <= dom[1]:
        _fail(source, name,
              f"the domain [{dom[0]}, {dom[1]}] contains the padding value {PAD_VALUE} of list columns")
    ids = _check_ids(np.asarray(flat), col, source, rows=rows, what="id")
    out = np.full((n, width), PAD_VALUE, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(len(ids)) - np.repeat(starts, lengths)
    out[rows, cols] = ids
    return out


def _num_rows(values) -> int:
    if isinstance(values, (pd.Series, np.ndarray)):
        return int(values.shape[0])
    return len(values)


def to_arrays(data, schema: Schema, *, source: str = _DATAFRAME) -> dict[str, np.ndarray]:
    """Validated numpy arrays for the schema's feature and target columns.

    Every categorical or continuous column of ``schema`` (by tags, or by a
    numeric dtype) is converted; other columns (e.g. text) and columns of
    ``data`` that the schema does not name are left out.

    * scalar categorical -> int64 ``[n]``, inside the schema's domain
      [min, max] (or >= 0 when the schema gives no domain);
    * continuous -> float32 ``[n]``, finite;
    * list categorical -> int64 ``[n, L]`` padded at the end with
      ``PAD_VALUE`` (-1); ``L`` is the schema's value_count max when given,
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
    wanted = [col for col in schema if _column_kind(col) is not None]
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
        kind = _column_kind(col)
        if _is_list_column(col):
            if kind != _CATEGORICAL:
                _fail(source, col.name, "list columns must be categorical (continuous lists are "
                                        "not supported)")
            out[col.name] = _padded_list(values, col, source)
        else:
            out[col.name] = _scalar_column(values, col, kind, source)
    return out


# --------------------------------------------------------------------------
# to_tf_dataset
# --------------------------------------------------------------------------

def _arrays_from(data, schema, source=None):
    if isinstance(data, (str, os.PathLike)):
        return to_arrays(read_table(data), schema, source=os.fspath(data))
    return to_arrays(data, schema, source=source or _DATAFRAME)


def to_tf_dataset(
    data,
    schema: Schema,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    streaming="auto",
    shuffle_buffer: int | None = None,
    source: str | None = None,
):
    """A ``tf.data.Dataset`` of ``{column: tensor}`` batches from ``to_arrays``.

    Parquet larger than ``streaming.in_memory_max_bytes()`` (1 GiB of
    uncompressed row groups, or ``$SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES``) is
    read row group by row group instead of whole (``streaming.stream_tf_dataset``:
    same validation, same rows per epoch, shuffled by row group and within a
    buffer of ``shuffle_buffer`` rows); ``streaming=True`` / ``False`` forces
    one path.

    Batches are cut whole from the column tensors (no per-row slicing): the
    dataset is one index range per batch, sliced from the columns, or with
    ``shuffle=True`` gathered through a fresh permutation of the rows each
    epoch (each iteration over the dataset is an epoch; the sequence of
    permutations is reproducible from ``seed``).

    Args:
        data: a DataFrame, a mapping of column -> array (already converted or
            not; validated either way), or a path accepted by ``read_table``.
        schema: the merlin Schema naming the columns.
        batch_size: rows per batch.
        shuffle: reshuffle the rows every epoch.
        seed: seed of the shuffle.
        drop_remainder: leave out the last, smaller batch.
        source: how errors name an in-memory ``data`` (the file it was read
            from, say); a path names itself.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from merlin.schema import ColumnSchema, Schema, Tags

        >>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
        ...                               dtype=np.int64, properties={"domain": {"min": 0, "max": 9}})])
        >>> ds = to_tf_dataset(pd.DataFrame({"item_id": np.arange(10)}), schema, batch_size=4)
        >>> [batch["item_id"].shape[0] for batch in ds]
        [4, 4, 2]
    """
    import tensorflow as tf

    from schemaretrieval.data import streaming as streaming_lib

    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"to_tf_dataset: batch_size must be an int >= 1, got {batch_size!r}")
    if streaming_lib.use_streaming(data, streaming):
        return streaming_lib.stream_tf_dataset(
            data, schema, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
            shuffle_buffer=shuffle_buffer)
    arrays = _arrays_from(data, schema, source)
    n = len(next(iter(arrays.values())))
    batch_size = int(batch_size)
    tensors = {name: tf.constant(values) for name, values in arrays.items()}

    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)

    def gather_batches(order):
        """Dataset of the batches of rows taken in ``order`` (None: row order)."""

        def take(b):
            start = b * batch_size
            stop = tf.minimum(start + batch_size, n)
            if order is None:
                return {name: t[start:stop] for name, t in tensors.items()}
            index = order[start:stop]
            return {name: tf.gather(t, index) for name, t in tensors.items()}

        return tf.data.Dataset.range(num_batches).map(
            take, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    if shuffle:
        # One permutation per epoch, from a seed that is redrawn each time the
        # dataset is iterated (reproducible from `seed`). Shuffling the row
        # indices with Dataset.shuffle took 6x as long on 1M rows.
        epoch_seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True).take(1)

        def epoch(epoch_seed):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64),
                seed=tf.stack([epoch_seed, tf.constant(0, tf.int64)]))
            return gather_batches(order)

        ds = epoch_seeds.flat_map(epoch)
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    else:
        ds = gather_batches(None)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# candidate_table / interactions
# --------------------------------------------------------------------------

def as_frame(data, what: str = "data") -> pd.DataFrame:
    """`data` itself when it is a DataFrame, else the table at that path
    (see `read_table`); anything else is an error naming `what`.

    Example:
        >>> import os, tempfile
        >>> frame = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]})
        >>> as_frame(frame) is frame
        True
        >>> path = os.path.join(tempfile.mkdtemp(), "events.parquet")
        >>> frame.to_parquet(path)
        >>> as_frame(path).equals(frame)
        True
        >>> as_frame([1, 2], "exclude")
        Traceback (most recent call last):
        ...
        TypeError: exclude expects a DataFrame or a path, got list
    """
    return _frame_from(data, what)[0]


def _frame_from(data, what):
    if isinstance(data, (str, os.PathLike)):
        return read_table(data), os.fspath(data)
    if isinstance(data, pd.DataFrame):
        return data, _DATAFRAME
    raise TypeError(f"{what} expects a DataFrame or a path, got {type(data).__name__}")


def _require_columns(frame, names, source, what, allow_empty=False):
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: {what} needs column{'s' if len(missing) > 1 else ''} {missing}; "
            f"the data has columns {list(frame.columns)}"
        )
    if len(frame) == 0 and not allow_empty:
        raise ValueError(f"{source}: the data is empty (zero rows)")


def candidate_table(data, schema: Schema) -> pd.DataFrame:
    """One row per unique item id with the candidate-side columns.

    The columns are those tagged ``item`` and not ``target`` (the item id
    among them), in schema order; rows are sorted by item id, index reset.
    When an item's feature values differ between rows, the first occurrence
    in ``data`` is kept (no error, no warning).

    Example:
        >>> import numpy as np, pandas as pd
        >>> from merlin.schema import ColumnSchema, Schema, Tags

        >>> schema = Schema([
        ...     ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype=np.int64),
        ...     ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype=np.int64),
        ...     ColumnSchema("item_price", tags=[Tags.ITEM, Tags.CONTINUOUS], dtype=np.float32),
        ... ])
        >>> frame = pd.DataFrame({"user_id": [0, 1, 2], "item_id": [5, 2, 5],
        ...                       "item_price": [0.5, 0.1, 0.5]})
        >>> candidate_table(frame, schema)
           item_id  item_price
        0        2         0.1
        1        5         0.5
    """
    frame, source = _frame_from(data, "candidate_table")
    item_id = _id_column(schema, Tags.ITEM)
    names = candidate_schema(schema).column_names
    _require_columns(frame, names, source, "candidate_table")
    ids = frame[item_id]
    first = ~ids.duplicated(keep="first").to_numpy()
    table = frame.loc[first, names]
    order = np.argsort(ids.to_numpy()[first], kind="stable")
    return table.iloc[order].reset_index(drop=True)


def interactions(data, schema: Schema) -> pd.DataFrame:
    """The (user id, item id) column pairs of ``data``, index reset.

    Used to exclude a user's already seen items from a ranking.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from merlin.schema import ColumnSchema, Schema, Tags

        >>> schema = Schema([
        ...     ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype=np.int64),
        ...     ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype=np.int64),
        ...     ColumnSchema("rating", tags=[Tags.TARGET, Tags.CONTINUOUS], dtype=np.float32),
        ... ])
        >>> frame = pd.DataFrame({"user_id": [0, 1], "item_id": [5, 2], "rating": [1.0, 0.0]})
        >>> list(interactions(frame, schema).columns)
        ['user_id', 'item_id']
    """
    frame, source = _frame_from(data, "interactions")
    names = [_id_column(schema, Tags.USER), _id_column(schema, Tags.ITEM)]
    _require_columns(frame, names, source, "interactions")
    return frame[names].reset_index(drop=True)


def example_batch(schema: Schema) -> dict[str, np.ndarray]:
    """One row of in-domain values for every feature column of ``schema``:
    the smallest id of each domain, 0.0 for continuous columns, a one-id list
    for list columns. Builds a model's weights before they are loaded.

    Example:
        >>> from schemaretrieval.schema import load_schema
        >>> sorted(example_batch(load_schema("schemas/synthetic.yaml")))[:3]
        ['item_category', 'item_id', 'item_price']
    """
    batch = {}
    for col in schema:
        kind = _column_kind(col)
        if kind == _CATEGORICAL:
            low = _column_domain(col)[0] if _column_domain(col) else 0
            batch[col.name] = np.full((1, 1) if _is_list_column(col) else (1,), low, dtype=np.int64)
        elif kind == _CONTINUOUS:
            batch[col.name] = np.zeros((1,), dtype=np.float32)
    return batch
