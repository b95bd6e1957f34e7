"""Raw inputs of the ETL as dask DataFrames of the schema's columns, checked as they are read.

A DataFrame, a csv/tsv file, a parquet file or a directory of parquet files
becomes a dask DataFrame of the schema's columns (the time features the
workflow derives are not read); continuous columns are cast to numbers and
text lists (``'A|B'``) split, each partition as it is computed. Every error
names the source (the file, or ``<DataFrame>``) and the column.

>>> import pandas as pd
>>> from schemaretrieval.schema import schema_from_dict
>>> schema = schema_from_dict({"columns": {"price": {"tags": ["item", "continuous"], "dtype": "float32"}}})
>>> read_input(pd.DataFrame({"price": ["1.5", "cheap"]}), schema, "cpu")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
schemaretrieval.etl.options.ETLError: <DataFrame>: column 'price', row 1: expected a number, found text; 1 such row(s) ...
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from merlin.schema import Schema

from schemaretrieval.data.read import DATAFRAME, check_csv_header, check_parquet_files, parquet_files
from schemaretrieval.etl.options import ETLError, categorical_options, etl_kind, is_derived
from schemaretrieval.etl.rows import check_columns, csv_parser_message, drop_bad_rows, inspect_rows, is_integer_column

__all__ = ["read_input", "default_partitions", "PARQUET_PARTITIONS"]

#: How parquet input is cut into partitions: row groups gathered up to 64 MiB
#: of parquet's uncompressed data. Dask's default ("infer") reads a file of
#: twenty 1M-row groups of 23 MB as one partition of 20M rows, 18.5 GB once
#: its text ids are pandas objects; 64 MiB is two such row groups.
PARQUET_PARTITIONS = {"split_row_groups": "adaptive", "blocksize": "64MiB"}


def default_partitions(rows: int) -> int:
    """Partitions of a DataFrame input: one per 500k rows, at most 8.

    >>> default_partitions(100), default_partitions(10_000_000)
    (1, 8)
    """
    return max(1, min(8, rows // 500_000 + 1))


def coerce_partition(df, numeric, lists, source, times=(), integers=()):
    """Continuous columns to numbers and text lists ('A|B') to lists, naming what fails; integer
    categorical columns read as text (a csv column with a bad row left out) to the numbers they hold,
    so that they are encoded as the same ids a DataFrame, `transform` or serving gives.

    The index is reset to 0..n-1: NVTabular 23.8's Categorify on CPU writes the
    null id at the *labels* of null rows into a positional array, which fails
    (IndexError) or mislabels rows in every partition but the first.
    """
    # A new frame on the same columns: ``df`` is the partition's own copy already
    # (the column selection copies, or a reader made it), so reset_index's copy of
    # every column (0.15 s a pass over 10M rows; fit and write are two passes)
    # buys nothing. Later steps replace columns, and merlin selects (copies) them
    # before any op changes them.
    df = df.copy(deep=False)
    df.index = pd.RangeIndex(len(df))
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
    for name in integers:  # `inspect_rows` has refused or left out the rows that hold no integer
        if df[name].dtype.kind == "O":
            df[name] = pd.to_numeric(df[name])
    for name in times:  # tz-aware datetimes -> UTC without a zone (merlin has no dtype for them)
        if getattr(df[name].dtype, "tz", None) is not None:
            df[name] = df[name].dt.tz_convert("UTC").dt.tz_localize(None)
    for name, sep in lists.items():
        values = df[name]
        if len(values) and values.map(lambda v: isinstance(v, str)).any():
            df[name] = values.map(lambda v: [t for t in v.split(sep) if t] if isinstance(v, str)
                                  else ([] if v is None or (isinstance(v, float) and np.isnan(v)) else v))
    return df


def read_input(data, schema: Schema, device: str, npartitions=None, on_bad_rows: str = "error"):
    """(dask DataFrame of the schema's columns, source name, the rows' report); errors name
    the source (see the module's example). Bad rows (`rows.inspect_rows`) are an error
    naming the first, or with ``on_bad_rows="skip"`` left out; the report counts them.

    >>> import pandas as pd
    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"genres": {"tags": ["item", "categorical", "list"], "dtype": "string"}}})
    >>> ddf, source, report = read_input(pd.DataFrame({"genres": ["a|b", "c", None]}), schema, "cpu",
    ...                                  on_bad_rows="skip")
    >>> ddf.compute()["genres"].tolist(), source, report["skipped"]
    ([['a', 'b'], ['c']], '<DataFrame>', 1)
    """
    import dask.dataframe as dd

    if isinstance(data, pd.DataFrame):
        source = DATAFRAME
        check_columns(data, source)
        if len(data) == 0:
            raise ETLError(f"{source}: the data is empty (zero rows)")
        parts = npartitions or default_partitions(len(data))
        # A fresh name, not dask's default token, which hashes every value (0.35 s a 10M-row frame)
        ddf = dd.from_pandas(data, npartitions=parts, sort=False, name=f"from_pandas-{uuid.uuid4().hex}")
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        source = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{source}: no such file or directory")
        if path.is_dir():
            try:
                files = parquet_files(path)
                if not files:
                    raise ETLError(f"{source}: the directory holds no .parquet files")
                check_parquet_files(files)
            except ValueError as err:
                raise ETLError(str(err)) from None
            ddf = dd.read_parquet([str(p) for p in files], **PARQUET_PARTITIONS)
        elif path.suffix.lower() in (".parquet", ".pq"):
            ddf = dd.read_parquet(str(path), **PARQUET_PARTITIONS)
        elif path.suffix.lower() in (".csv", ".tsv"):
            if path.stat().st_size == 0:
                raise ETLError(f"{source}: the file is empty")
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            try:
                check_csv_header(path, sep=sep)
            except ValueError as err:
                raise ETLError(str(err)) from None
            try:
                # string columns stay strings ('05201' keeps its zero); lists arrive as 'A|B'
                ddf = dd.read_csv(str(path), sep=sep,
                                  blocksize="64MB",
                                  dtype={c.name: "object" for c in schema
                                         if c.is_list or c.dtype.element_type.value == "string"})
            except pd.errors.EmptyDataError:
                raise ETLError(f"{source}: the file is empty") from None
            except pd.errors.ParserError as err:  # a row of more fields than the header, in dask's sample
                raise ETLError(f"{source}: cannot read the csv file: {csv_parser_message(err)}") from None
        else:
            raise ETLError(f"{source}: unknown file type {path.suffix!r}; expected .csv, .parquet "
                           "or a directory of .parquet files")
    else:
        raise TypeError(f"expected a DataFrame or a path, got {type(data).__name__}")
    schema = Schema([c for c in schema if not is_derived(c)])  # made by the workflow, not read
    missing = [c.name for c in schema if c.name not in ddf.columns]
    if missing:
        raise ETLError(f"{source}: column {missing[0]!r} named in the schema is missing from the data "
                       f"(missing: {missing}; the data has {list(ddf.columns)})")
    ddf = ddf[schema.column_names]
    rows = inspect_rows(ddf, schema, source, on_bad_rows)
    if rows["skipped"]:
        ddf = ddf.map_partitions(drop_bad_rows, schema, meta=ddf._meta)
    numeric = [c.name for c in schema if etl_kind(c) == "continuous"]
    lists = {c.name: categorical_options(c).get("separator", "|") for c in schema
             if etl_kind(c) == "categorical" and c.is_list}
    meta = ddf._meta.copy()
    for name in numeric:
        if meta[name].dtype.kind in "mM" or getattr(meta[name].dtype, "tz", None) is not None:
            # pd.to_numeric would give nanoseconds since 1970, a scale no transform expects
            raise ETLError(f"{source}: column {name!r} is continuous, found {meta[name].dtype} values; "
                           "give it the tag 'time' (docs/etl.md) or convert it to numbers first")
        if meta[name].dtype.kind not in "biuf":
            meta[name] = meta[name].astype("float64")
    times = [c.name for c in schema if etl_kind(c) == "time" and getattr(meta[c.name].dtype, "tz", None) is not None]
    for name in times:
        meta[name] = meta[name].dt.tz_convert("UTC").dt.tz_localize(None)
    integers = [c.name for c in schema if is_integer_column(c) and meta[c.name].dtype.kind == "O"]
    for name in integers:
        meta[name] = meta[name].astype("int64")
    ddf = ddf.map_partitions(coerce_partition, numeric, lists, source, times, integers, meta=meta).clear_divisions()
    if ddf.npartitions == 0 or (source != DATAFRAME and len(ddf.head(1, npartitions=-1)) == 0):
        raise ETLError(f"{source}: the data is empty (zero rows)")
    if device == "gpu":
        ddf = ddf.to_backend("cudf")
    return ddf, source, rows
