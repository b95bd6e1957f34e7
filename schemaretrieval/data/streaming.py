"""Batches from parquet that does not fit in memory, row group by row group.

``to_tf_dataset`` takes this path by itself for a parquet file or directory
whose row groups add up to more than ``in_memory_max_bytes()`` uncompressed
bytes (1 GiB unless ``SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES`` says otherwise);
``streaming=True`` / ``False`` forces one path. So ``model.fit("out/train")``
works for any size of ETL output.

How an epoch is read:

* the parquet files' row groups are the unit of order: in name / file order
  without shuffle, in a fresh permutation per epoch with ``shuffle=True``
  (the permutations are reproducible from ``seed``);
* each row group is read in pieces of at most ``read_rows`` rows
  (``ParquetFile.iter_batches``), only the schema's columns, and converted by
  ``tables.to_arrays`` (the same validation as the in-memory path; errors name
  the file, the row group and the rows);
* pieces gather in a buffer of ``shuffle_buffer`` rows, which is served in a
  fresh permutation (with ``shuffle=True``) as whole batches; the rows of the
  last, partial batch stay in the buffer for the next fill, so every batch but
  the epoch's last is full and every row comes exactly once per epoch, as on
  the in-memory path;
* the buffer goes to TensorFlow as one tensor per column with its serving
  order, and batches are gathered there (one Python step per buffer, not per
  batch; the gather runs outside the GIL).

Memory holds one buffer (plus the piece being read and the prefetched batches),
not the table. Rows only move within a buffer and between adjacent buffers, so
a shuffle is as good as ``shuffle_buffer`` is large against the row groups: a
table sorted by user reads as runs of a few users per buffer.

Measured by ``benchmarks/data_throughput.py`` (see docs/etl.md): this reader
beside the in-memory path and beside ``merlin.dataloader.tensorflow.Loader``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from merlin.schema import Schema

from schemaretrieval.data import tables

__all__ = [
    "DEFAULT_IN_MEMORY_MAX_BYTES",
    "IN_MEMORY_MAX_BYTES_ENV",
    "RowGroup",
    "candidate_table",
    "in_memory_max_bytes",
    "item_counts",
    "parquet_row_groups",
    "stream_tf_dataset",
    "use_streaming",
]

#: Parquet above this many uncompressed bytes is streamed by ``to_tf_dataset``.
DEFAULT_IN_MEMORY_MAX_BYTES = 1 << 30
#: Environment variable that overrides ``DEFAULT_IN_MEMORY_MAX_BYTES`` (bytes, an integer).
IN_MEMORY_MAX_BYTES_ENV = "SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES"
#: Rows gathered (and shuffled together) before they are cut into batches.
DEFAULT_SHUFFLE_BUFFER = 262_144
#: Rows read from a row group at a time.
DEFAULT_READ_ROWS = 65_536


@dataclass(frozen=True)
class RowGroup:
    """One row group of one parquet file."""

    path: str
    index: int
    num_rows: int
    total_byte_size: int  # uncompressed
    first_row: int  # of its file


def _parquet_files(path) -> list[Path]:
    path = Path(os.fspath(path))
    if path.is_dir():
        return sorted(p for p in path.iterdir()
                      if p.is_file() and p.suffix.lower() in tables._PARQUET_SUFFIXES)
    if path.is_file() and path.suffix.lower() in tables._PARQUET_SUFFIXES:
        return [path]
    return []


def parquet_row_groups(path) -> list[RowGroup]:
    """Every row group of a parquet file or directory (``*.parquet`` / ``*.pq``,
    name order), read from the footers alone; empty for anything else."""
    import pyarrow.parquet as pq

    groups = []
    for file in _parquet_files(path):
        if file.stat().st_size == 0:
            raise ValueError(f"{file}: an empty file")
        try:
            meta = pq.ParquetFile(file).metadata
        except Exception as err:  # pyarrow's errors do not always say which file
            raise ValueError(f"cannot read parquet file {str(file)!r}: {err}") from err
        first = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            groups.append(RowGroup(str(file), i, rg.num_rows, rg.total_byte_size, first))
            first += rg.num_rows
    return groups


def in_memory_max_bytes() -> int:
    """The size above which parquet is streamed: ``$SCHEMARETRIEVAL_IN_MEMORY_MAX_BYTES``
    when set, else ``DEFAULT_IN_MEMORY_MAX_BYTES`` (1 GiB)."""
    value = os.environ.get(IN_MEMORY_MAX_BYTES_ENV)
    if value is None or value.strip() == "":
        return DEFAULT_IN_MEMORY_MAX_BYTES
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(f"{IN_MEMORY_MAX_BYTES_ENV} must be a number of bytes, got {value!r}") from None


def use_streaming(data, streaming="auto") -> bool:
    """Whether ``to_tf_dataset`` streams ``data``.

    ``streaming``: ``True`` (parquet only), ``False``, or ``"auto"``: a parquet
    file or directory whose row groups hold more than ``in_memory_max_bytes()``
    uncompressed bytes. DataFrames, mappings and csv are always in memory.
    """
    if streaming is False:
        return False
    is_path = isinstance(data, (str, os.PathLike))
    if streaming is True:
        if not is_path or not _parquet_files(data):
            raise ValueError(
                f"streaming=True reads parquet (a file or a directory of .parquet files); got "
                f"{data if is_path else type(data).__name__!r}")
        return True
    if streaming != "auto":
        raise ValueError(f"streaming must be True, False or 'auto', got {streaming!r}")
    if not is_path:
        return False
    size = sum(g.total_byte_size for g in parquet_row_groups(data))
    return size > in_memory_max_bytes()


# ------------------------------------------------------------------------- reading pieces


def _wanted(schema: Schema):
    return [col for col in schema if tables._column_kind(col) is not None]


def _list_column(array, col):
    """A list column of an arrow batch as to_arrays takes it: an already padded
    int64 [n, L] when that is exact (no nulls, integer values, none equal to the
    padding), else the rows as Python objects (to_arrays judges and reports them)."""
    import pyarrow as pa

    if (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) and array.null_count == 0:
        values = array.values if array.offset == 0 else array.flatten()
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        if array.offset == 0 and pa.types.is_integer(values.type) and values.null_count == 0:
            flat = values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
            if not (flat == tables.PAD_VALUE).any():
                lengths = np.diff(offsets)
                width = max(1, int(lengths.max(initial=0)))
                out = np.full((len(lengths), width), tables.PAD_VALUE, dtype=np.int64)
                rows = np.repeat(np.arange(len(lengths)), lengths)
                cols = np.arange(len(flat)) - np.repeat(offsets[:-1] - offsets[0], lengths)
                out[rows, cols] = flat
                return out
    return np.asarray(array.to_pandas(), dtype=object) if len(array) else np.empty(0, dtype=object)


def _scalar_column(array):
    import pyarrow as pa

    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        return array.to_numpy(zero_copy_only=False)  # a null becomes NaN: to_arrays reports it
    return array.to_pandas()


def _pieces(group: RowGroup, schema: Schema, read_rows: int):
    """Validated arrays of one row group, ``read_rows`` rows at a time."""
    import pyarrow.parquet as pq

    wanted = _wanted(schema)
    file = pq.ParquetFile(group.path)
    present = set(file.schema_arrow.names)
    columns = [col.name for col in wanted if col.name in present]
    start = group.first_row
    for batch in file.iter_batches(batch_size=read_rows, row_groups=[group.index], columns=columns,
                                   use_threads=False):
        stop = start + batch.num_rows
        source = f"{group.path} (row group {group.index}, rows {start}..{stop - 1} of the file)"
        data = {}
        for col in wanted:
            if col.name not in present:
                continue
            array = batch.column(col.name)
            data[col.name] = _list_column(array, col) if tables._is_list_column(col) else _scalar_column(array)
        yield tables.to_arrays(data, schema, source=source)
        start = stop


def _concat(pieces: list[dict]) -> dict:
    if len(pieces) == 1:
        return pieces[0]
    out = {}
    for name, first in pieces[0].items():
        parts = [piece[name] for piece in pieces]
        if first.ndim == 2:
            width = max(p.shape[1] for p in parts)
            parts = [p if p.shape[1] == width else
                     np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=tables.PAD_VALUE)
                     for p in parts]
        out[name] = np.concatenate(parts)
    return out


def _take(arrays: dict, index) -> dict:
    return {name: values[index] for name, values in arrays.items()}


def _epoch_chunks(groups, schema, batch_size, shuffle, rng, buffer_rows, read_rows):
    """The epoch's rows as (dict of arrays, order): ``order`` lists the rows to serve, in
    the order to serve them, a whole number of batches but for the epoch's last chunk.
    The rows left out of ``order`` (fewer than a batch) are carried to the next chunk."""
    groups_order = rng.permutation(len(groups)) if shuffle else range(len(groups))
    pending: list[dict] = []
    buffered = 0

    def cut(final):
        nonlocal pending, buffered
        rows = _concat(pending)
        keep = buffered if final else (buffered // batch_size) * batch_size
        order = rng.permutation(buffered) if shuffle else np.arange(buffered)
        rest = order[keep:]
        pending = [_take(rows, rest)] if len(rest) else []
        buffered = len(rest)
        return rows, order[:keep]

    for g in groups_order:
        for piece in _pieces(groups[g], schema, read_rows):
            pending.append(piece)
            buffered += len(next(iter(piece.values())))
            if buffered >= buffer_rows:
                rows, order = cut(final=False)
                if len(order):
                    yield rows, order
    if buffered:
        yield cut(final=True)


# ------------------------------------------------------------------------- the dataset


def _signature(schema: Schema):
    import tensorflow as tf

    spec = {}
    for col in _wanted(schema):
        kind = tables._column_kind(col)
        if tables._is_list_column(col):  # as wide as the buffer's longest row (or value_count max)
            spec[col.name] = tf.TensorSpec([None, None], tf.int64)
        else:
            spec[col.name] = tf.TensorSpec([None], tf.int64 if kind == tables._CATEGORICAL else tf.float32)
    return spec


def stream_tf_dataset(
    path,
    schema: Schema,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    shuffle_buffer: int | None = None,
    read_rows: int | None = None,
):
    """A ``tf.data.Dataset`` of ``{column: tensor}`` batches read from parquet
    row group by row group (see the module docstring).

    Args:
        path: a parquet file or a directory of parquet files.
        schema, batch_size, shuffle, seed, drop_remainder: as ``tables.to_tf_dataset``.
        shuffle_buffer: rows gathered and shuffled together (default 262,144;
            raised to ``batch_size`` when smaller).
        read_rows: rows read from a row group at a time (default 65,536).

    Each iteration over the dataset is an epoch: every row once (the last,
    partial batch left out with ``drop_remainder``), row groups and rows in a
    new order per epoch with ``shuffle=True``, reproducible from ``seed``.
    List columns are ``[batch, L]`` padded with -1, ``L`` the longest row of
    the buffer (or the schema's value_count max).
    """
    import tensorflow as tf

    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"to_tf_dataset: batch_size must be an int >= 1, got {batch_size!r}")
    batch_size = int(batch_size)
    source = os.fspath(path)
    if not Path(source).exists():
        raise FileNotFoundError(f"{source!r} does not exist (expected parquet: a file or a directory of "
                                ".parquet files)")
    groups = [g for g in parquet_row_groups(path) if g.num_rows]
    total = sum(g.num_rows for g in groups)
    if total == 0:
        raise ValueError(f"{source}: the parquet holds zero rows" if _parquet_files(path)
                         else f"{source}: no .parquet files to stream")
    if not _wanted(schema):
        raise ValueError(f"{source}: the schema names no categorical or continuous column")
    buffer_rows = max(int(shuffle_buffer or DEFAULT_SHUFFLE_BUFFER), batch_size)
    read_rows = int(read_rows or DEFAULT_READ_ROWS)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (1 << 63))
    epochs = itertools.count()

    def generate():
        # one call per iteration over the dataset, i.e. per epoch
        rng = np.random.default_rng([seed, next(epochs)])
        yield from _epoch_chunks(groups, schema, batch_size, shuffle, rng, buffer_rows, read_rows)

    chunks = tf.data.Dataset.from_generator(
        generate, output_signature=(_signature(schema), tf.TensorSpec([None], tf.int64)))

    def batches(chunk, order):
        # the shuffle's gather runs here, in TensorFlow, not in the Python generator
        n = tf.shape(order, out_type=tf.int64)[0]
        count = n // batch_size if drop_remainder else (n + batch_size - 1) // batch_size

        def take(b):
            start = b * batch_size
            stop = tf.minimum(start + batch_size, n)
            if shuffle:
                index = order[start:stop]
                return {name: tf.gather(t, index) for name, t in chunk.items()}
            return {name: t[start:stop] for name, t in chunk.items()}

        return tf.data.Dataset.range(count).map(take, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    ds = chunks.flat_map(batches)
    num_batches = total // batch_size if drop_remainder else -(-total // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    return ds.prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------- the catalog, streamed


def _row_groups_of(path, names):
    """Each row group of a parquet file or directory, as a pyarrow Table of
    the columns ``names`` only."""
    import pyarrow.parquet as pq

    for group in parquet_row_groups(path):
        yield pq.ParquetFile(group.path).read_row_group(group.index, columns=list(names))


def candidate_table(path, schema: Schema) -> pd.DataFrame:
    """``tables.candidate_table`` of a parquet file or directory, reading only
    the candidate columns one row group at a time (memory: the catalog)."""
    from schemaretrieval.schema import candidate_schema

    item_id = tables._id_column(schema, tables.Tags.ITEM)
    names = candidate_schema(schema).column_names
    parts = []
    seen = None
    for group in _row_groups_of(path, names):
        frame = group.to_pandas()
        ids = frame[item_id].to_numpy()
        first = ~pd.Series(ids).duplicated(keep="first").to_numpy()
        if seen is not None:
            first &= ~np.isin(ids, seen)
        if first.any():
            parts.append(frame.loc[first])
            seen = ids[first] if seen is None else np.concatenate([seen, ids[first]])
    if not parts:
        raise ValueError(f"{os.fspath(path)}: the data is empty (zero rows)")
    table = pd.concat(parts, ignore_index=True)
    order = np.argsort(table[item_id].to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def item_counts(path, column: str, minlength: int = 0) -> np.ndarray:
    """Occurrences of each id of ``column`` (``np.bincount``), read one row group at a time."""
    counts = np.zeros(minlength, dtype=np.int64)
    for group in _row_groups_of(path, [column]):
        ids = group.column(column).to_numpy().astype(np.int64)
        part = np.bincount(ids, minlength=len(counts))
        if len(part) > len(counts):
            counts = np.pad(counts, (0, len(part) - len(counts)))
        counts += part
    return counts


def read_columns(path, names) -> dict[str, np.ndarray]:
    """The given columns of a parquet file or directory as numpy arrays, read
    one row group at a time (memory: those columns only)."""
    parts = {name: [] for name in names}
    for group in _row_groups_of(path, names):
        for name in names:
            parts[name].append(group.column(name).to_numpy())
    return {name: np.concatenate(chunks) if chunks else np.zeros(0) for name, chunks in parts.items()}
