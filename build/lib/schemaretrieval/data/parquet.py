"""Parquet read a row group at a time: the footers, the size a table takes in memory, and columns.

What lets every reader of a large table stay within bounded memory: the
batches (`batches.Batches` streams a table larger than
``in_memory_max_bytes()``), the catalog, item counts and exclusions.

>>> import os, tempfile
>>> import pandas as pd
>>> path = os.path.join(tempfile.mkdtemp(), "part.parquet")
>>> pd.DataFrame({"item_id": [3, 3, 5]}).to_parquet(path)
>>> [group.num_rows for group in row_groups(path)], item_counts(path, "item_id", 6).tolist()
([3], [0, 0, 0, 2, 0, 1])
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from schemaretrieval.data.read import parquet_files

__all__ = [
    "DEFAULT_IN_MEMORY_MAX_BYTES",
    "IN_MEMORY_MAX_BYTES_ENV",
    "RowGroup",
    "row_groups",
    "in_memory_bytes",
    "in_memory_max_bytes",
    "iter_tables",
    "read_columns",
    "item_counts",
]

#: A table whose arrays take more than this many bytes in memory is streamed.
DEFAULT_IN_MEMORY_MAX_BYTES = 1 << 30
#: Environment variable that overrides ``DEFAULT_IN_MEMORY_MAX_BYTES`` (bytes, an integer).
IN_MEMORY_MAX_BYTES_ENV = "SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES"


@dataclass(frozen=True)
class RowGroup:
    """One row group of one parquet file.

    >>> RowGroup("part.parquet", 0, 100, 800, 0).num_rows
    100
    """

    path: str
    index: int
    num_rows: int
    values: int  # leaf values of every column (a list column counts each element)
    first_row: int  # of its file


def row_groups(path) -> list[RowGroup]:
    """Every row group of a parquet file or directory (name order), read from the footers
    alone; [] for anything else. An unreadable file is an error naming it.

    >>> row_groups("no/such/path")
    []
    """
    import pyarrow.parquet as pq

    groups = []
    for file in parquet_files(path):
        if file.stat().st_size == 0:
            raise ValueError(f"{file}: an empty file")
        try:
            meta = pq.ParquetFile(file).metadata
        except Exception as err:  # pyarrow's errors do not always say which file
            raise ValueError(f"cannot read parquet file {str(file)!r}: {err}") from err
        first = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            values = sum(rg.column(c).num_values for c in range(rg.num_columns))
            groups.append(RowGroup(str(file), i, rg.num_rows, values, first))
            first += rg.num_rows
    return groups


def in_memory_bytes(path) -> int:
    """What the table's arrays take in memory: 8 bytes per value (ids are int64), a
    list column's elements and offsets included. Read from the footers: parquet's
    declared sizes are encoded and compressed, several times smaller.

    >>> import os, tempfile
    >>> import pandas as pd
    >>> path = os.path.join(tempfile.mkdtemp(), "part.parquet")
    >>> pd.DataFrame({"user_id": [1, 2], "tags": [[1, 2, 3], [4]]}).to_parquet(path)
    >>> in_memory_bytes(path)  # 2 ids, 4 list elements, 2 offsets
    64
    """
    groups = row_groups(path)
    return 8 * sum(g.values for g in groups) + 8 * _list_rows(path, groups)


def _list_rows(path, groups) -> int:
    """Rows times the list columns: the offsets a list column adds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(path)
    if not files:
        return 0
    schema = pq.read_schema(files[0])
    lists = sum(1 for field in schema if pa.types.is_list(field.type) or pa.types.is_large_list(field.type))
    return lists * sum(g.num_rows for g in groups)


def in_memory_max_bytes() -> int:
    """The size above which tables are streamed: ``$SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES``
    when set, else ``DEFAULT_IN_MEMORY_MAX_BYTES`` (1 GiB).

    >>> in_memory_max_bytes() > 0
    True
    """
    value = os.environ.get(IN_MEMORY_MAX_BYTES_ENV)
    if value is None or value.strip() == "":
        return DEFAULT_IN_MEMORY_MAX_BYTES
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(f"{IN_MEMORY_MAX_BYTES_ENV} must be a number of bytes, got {value!r}") from None


def iter_tables(path, names):
    """Each row group of a parquet file or directory as a pyarrow Table of the columns ``names``.

    >>> list(iter_tables("no/such/path", ["item_id"]))
    []
    """
    import pyarrow.parquet as pq

    for group in row_groups(path):
        yield pq.ParquetFile(group.path).read_row_group(group.index, columns=list(names))


def read_columns(path, names) -> dict[str, np.ndarray]:
    """The given scalar columns of a parquet file or directory as numpy arrays, read one
    row group at a time (memory: those columns only).

    >>> import os, tempfile
    >>> import pandas as pd
    >>> path = os.path.join(tempfile.mkdtemp(), "part.parquet")
    >>> pd.DataFrame({"user_id": [1, 2], "item_id": [7, 8]}).to_parquet(path)
    >>> read_columns(path, ["item_id"])["item_id"].tolist()
    [7, 8]
    """
    parts = {name: [] for name in names}
    for table in iter_tables(path, names):
        for name in names:
            parts[name].append(table.column(name).to_numpy())
    return {name: np.concatenate(chunks) if chunks else np.zeros(0) for name, chunks in parts.items()}


def item_counts(path, column: str, minlength: int = 0) -> np.ndarray:
    """Occurrences of each id of ``column`` (``np.bincount``), read one row group at a time
    (the module's example counts a file).

    >>> item_counts("no/such/path", "item_id", 3).tolist()
    [0, 0, 0]
    """
    counts = np.zeros(minlength, dtype=np.int64)
    for table in iter_tables(path, [column]):
        ids = table.column(column).to_numpy().astype(np.int64)
        part = np.bincount(ids, minlength=len(counts))
        if len(part) > len(counts):
            counts = np.pad(counts, (0, len(part) - len(counts)))
        counts += part
    return counts
