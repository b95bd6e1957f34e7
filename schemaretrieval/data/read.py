"""Tables from disk or memory: ``read_table`` and the checks every reader shares.

* ``read_table(path)``: a parquet file, a directory of parquet files or a csv file.
* ``read_frame(data, what)``: a DataFrame as it is, or the table at a path,
  with the name errors give it (the file, or ``<DataFrame>``).
* ``require_columns``: the columns a caller needs, or an error naming them.
* ``check_csv_header(path)``: a csv file's header names each column once, and its first row fits it.
* ``merlin_table(dataset)``: what the batch builder reads of a ``merlin.io.Dataset``:
  the directory of its parquet files, or its rows as a DataFrame.

Every error names the file and what was expected.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DATAFRAME", "MERLIN_DATASET", "PARQUET_SUFFIXES", "CSV_SUFFIXES", "read_table", "read_frame", "as_frame",
           "require_columns", "require_present", "check_csv_header", "check_parquet_files", "parquet_files",
           "is_merlin_dataset", "merlin_table"]

#: How errors name data given as a DataFrame.
DATAFRAME = "<DataFrame>"
#: How errors name data given as a merlin.io.Dataset held in memory.
MERLIN_DATASET = "<merlin.io.Dataset>"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
_ACCEPTED = "a .parquet file, a directory of .parquet files, or a .csv file"
# merlin writes its schema beside the parquet files of a data set
_SCHEMA_FILES = ("schema.pbtxt", "schema.json", "schema.yaml")


def parquet_files(path) -> list[Path]:
    """The parquet files of a file or directory (``*.parquet`` / ``*.pq``, name order); [] for anything else.

    >>> parquet_files("no/such/dir")
    []

    A directory's other entries would be rows left unread: each is an error naming it,
    but for names beginning with ``_`` or ``.`` (``_metadata``, ``_SUCCESS``, ``.crc``
    files, as pyarrow and dask skip them) and merlin's schema files beside its parquet.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.parquet").write_bytes(b""), (folder / "_metadata").write_bytes(b"")
    >>> [p.name for p in parquet_files(folder)]
    ['a.parquet']
    >>> _ = (folder / "b.csv").write_text("user_id")
    >>> parquet_files(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...: the directory holds 'b.csv', which would not be read: its rows are its .parquet / .pq files...

    The output directory of the ETL is not a table (its item_counts.parquet is not
    rows): a ValueError says which of its directories to read.
    """
    path = Path(os.fspath(path))
    if path.is_dir() and (path / "schema.yaml").is_file() and (path / "train").is_dir():
        raise ValueError(f"{path} is the output directory of the ETL, not a table of rows: give {path / 'train'} "
                         f"(the training rows){' or ' + str(path / 'valid') if (path / 'valid').is_dir() else ''}; "
                         "sr.load_schema(that directory) reads its schema")
    if path.is_dir():
        entries = sorted(path.iterdir())
        files = [p for p in entries if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES]
        unread = [p.name + ("/" if p.is_dir() else "") for p in entries
                  if p not in files and p.name[:1] not in "_." and p.name not in _SCHEMA_FILES]
        if unread:
            more = f" and {len(unread) - 3} more" if len(unread) > 3 else ""
            raise ValueError(f"{path}: the directory holds {', '.join(map(repr, unread[:3]))}{more}, which would not "
                             "be read: its rows are its .parquet / .pq files (names beginning with '_' or '.' and "
                             "merlin's schema files are skipped); move the others out, or give a file")
        return files
    if path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES:
        return [path]
    return []


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
        files = parquet_files(path)
        if not files:
            raise ValueError(
                f"read_table: directory {str(path)!r} holds no .parquet files (expected {_ACCEPTED})"
            )
        check_parquet_files(files)  # pd.concat would fill a column one file lacks with NaN
        frames = [_read_parquet(p) for p in files]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frame) == 0:
            raise ValueError(f"read_table: the parquet files in {str(path)!r} hold zero rows")
        return frame
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    elif suffix in CSV_SUFFIXES:
        if path.stat().st_size == 0:
            raise ValueError(f"read_table: {str(path)!r} is an empty file")
        check_csv_header(path)
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"read_table: {str(path)!r} is an empty csv file ({err})") from None
        except pd.errors.ParserError as err:  # e.g. "Expected 3 fields in line 7, saw 4": names no file
            raise ValueError(f"read_table: cannot read csv file {str(path)!r}: {err}") from None
    else:
        raise ValueError(
            f"read_table: cannot read {str(path)!r}: unknown extension {path.suffix!r}; "
            f"accepted: {_ACCEPTED}"
        )
    if len(frame) == 0:
        raise ValueError(f"read_table: {str(path)!r} has zero rows")
    return frame


def check_csv_header(path, sep: str = ",") -> None:
    """A ValueError naming the file, and the column or the line, when the csv header names a
    column twice or the first row has more fields than the header.

    pandas would read a repeat as ``name.1`` and every reader would take the first; and a
    row of one field more than the header on every line makes pandas take the first field
    for the index, shifting every column onto its neighbour's values.

    Example:

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "events.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("user_id,item_id,item_id\\n1,2,3\\n")
        >>> check_csv_header(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...events.csv: column 'item_id' appears 2 times in the header; each column must be named once
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        reader = csv.reader(file, delimiter=sep)
        header = next(reader, [])
        first = next(reader, None)
    for name in dict.fromkeys(header):
        if header.count(name) > 1:
            raise ValueError(f"{os.fspath(path)}: column {name!r} appears {header.count(name)} times in the header; "
                             "each column must be named once")
    if first is not None and len(first) > len(header):
        raise ValueError(f"{os.fspath(path)}: line 2 has {len(first)} fields, the header {len(header)} "
                         f"({', '.join(header)}); each row must have one field per column")


def check_parquet_files(files) -> None:
    """A ValueError naming the file when the parquet files of one directory are not
    readable or differ in their columns or types (read from the footers, before any
    rows): concatenated, a column one file lacks would read NaN there, and dask and
    NVTabular fail later naming neither file.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"item_id": [1, 2]}).to_parquet(folder / "a.parquet")
    >>> pd.DataFrame({"item_id": ["x"]}).to_parquet(folder / "b.parquet")
    >>> check_parquet_files([folder / "a.parquet", folder / "b.parquet"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../b.parquet: column 'item_id' is string, and int64 in a.parquet; every file of a directory needs the same columns and types
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = None
    for file in files:
        try:
            columns = {field.name: str(field.type) for field in pq.read_schema(file)
                       if not field.name.startswith("__index_level_")}  # pandas's index: not data
        except (pa.ArrowException, OSError) as err:
            raise ValueError(f"{file}: not a readable parquet file ({err})") from None
        if first is None:
            first = (file, columns)
            continue
        for name in dict.fromkeys([*first[1], *columns]):
            if first[1].get(name) != columns.get(name):
                raise ValueError(f"{file}: column {name!r} is {columns.get(name, 'missing')}, and "
                                 f"{first[1].get(name, 'missing')} in {Path(first[0]).name}; every file of a "
                                 "directory needs the same columns and types")


def _read_parquet(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise ValueError(f"read_table: {str(path)!r} is an empty file")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's errors do not always say which file
        raise ValueError(f"read_table: cannot read parquet file {str(path)!r}: {err}") from err


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
        TypeError: exclude expects a DataFrame, a path or a merlin.io.Dataset, got list
    """
    return read_frame(data, what)[0]


def read_frame(data, what: str = "data") -> tuple[pd.DataFrame, str]:
    """``(frame, source)``: `as_frame`, with the name errors give the data (the path, or ``<DataFrame>``).

    >>> read_frame(pd.DataFrame({"x": [1]}))[1]
    '<DataFrame>'
    """
    if isinstance(data, (str, os.PathLike)):
        return read_table(data), os.fspath(data)
    if isinstance(data, pd.DataFrame):
        return data, DATAFRAME
    if is_merlin_dataset(data):
        table = merlin_table(data)
        return (read_table(table), os.fspath(table)) if isinstance(table, Path) else (table, MERLIN_DATASET)
    raise TypeError(f"{what} expects a DataFrame, a path or a merlin.io.Dataset, got {type(data).__name__}")


def is_merlin_dataset(data) -> bool:
    """Whether ``data`` is a ``merlin.io.Dataset`` (without importing merlin.io).

    >>> is_merlin_dataset(pd.DataFrame({"x": [1]}))
    False
    """
    return type(data).__name__ == "Dataset" and type(data).__module__.startswith("merlin.io") \
        and hasattr(data, "to_ddf")


def merlin_table(dataset):
    """What the batch builder reads of a ``merlin.io.Dataset``: the directory of its parquet
    files when the dataset is exactly that directory's files (so that a large one streams),
    else its rows, computed into a pandas DataFrame (cudf's moved to the host).

    >>> import os, tempfile
    >>> from merlin.io import Dataset
    >>> folder = tempfile.mkdtemp()
    >>> pd.DataFrame({"item_id": [1, 2]}).to_parquet(os.path.join(folder, "part_0.parquet"))
    >>> merlin_table(Dataset(os.path.join(folder, "*.parquet"))) == Path(folder)
    True
    >>> merlin_table(Dataset(pd.DataFrame({"item_id": [3]})))["item_id"].tolist()
    [3]
    """
    if not is_merlin_dataset(dataset):
        raise TypeError(f"merlin_table expects a merlin.io.Dataset, got {type(dataset).__name__}")
    engine = dataset.engine
    paths = getattr(engine, "paths", None)
    if type(engine).__name__ == "ParquetDatasetEngine" and paths:
        import glob

        files = sorted({Path(f).resolve() for p in paths for f in (glob.glob(os.fspath(p)) or [p])})
        folders = {f.parent for f in files}
        if len(folders) == 1 and all(f.is_file() for f in files) \
                and [f.resolve() for f in parquet_files(next(iter(folders)))] == files:
            return next(iter(folders))
    frame = dataset.to_ddf().compute()
    if not isinstance(frame, pd.DataFrame):  # cudf
        frame = frame.to_pandas()
    return frame.reset_index(drop=True)


def require_columns(frame, names, source, what, allow_empty=False):
    """The columns ``names`` of ``frame`` exist and it has rows, or a ValueError naming
    ``source``, ``what`` needs them for, and the columns the data has.

    >>> require_columns(pd.DataFrame({"x": [1]}), ["user_id"], "train.csv", "exclude=")
    Traceback (most recent call last):
    ...
    ValueError: train.csv: exclude= needs column ['user_id']; the data has columns ['x']
    """
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: {what} needs column{'s' if len(missing) > 1 else ''} {missing}; "
            f"the data has columns {list(frame.columns)}"
        )
    if len(frame) == 0 and not allow_empty:
        raise ValueError(f"{source}: the data is empty (zero rows)")


def require_present(values, where: str, what: str, expected: str = "") -> None:
    """No value of ``values`` is missing (None/NaN), or a ValueError naming ``where``, the
    count of ``what`` missing and the first position: a missing id or time would otherwise
    sort into no group, or after every other, without a word.

    >>> require_present(pd.Series([3, None, 4]), "leave_last_n_out", "user ids in column 'user_id'")
    Traceback (most recent call last):
    ...
    ValueError: leave_last_n_out: 1 missing user ids in column 'user_id' (None/NaN), first at position 1
    """
    missing = np.asarray(pd.isna(values))
    if missing.any():
        raise ValueError(f"{where}: {int(missing.sum())} missing {what} (None/NaN), first at position "
                         f"{int(np.argmax(missing))}{'; ' + expected if expected else ''}")
