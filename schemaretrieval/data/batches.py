"""The one way a table becomes model inputs: batches of ``{column: tensor}``, epoch by epoch.

`Batches` holds a table (a DataFrame, a mapping of arrays, or a parquet /
csv path) for one schema and batch size and gives each epoch's batches:

* **in memory** for a table that fits (`parquet.in_memory_bytes` at most
  `parquet.in_memory_max_bytes()`, 1 GiB): validated once by
  `validate.to_arrays`, batches cut whole from the column tensors;
* **streamed** from parquet row group by row group otherwise (or with
  ``streaming=True``): each piece validated by the same `to_arrays` (errors
  name the file, the row group and the rows), gathered in a buffer of
  ``shuffle_buffer`` rows that is served as whole batches. Memory holds one
  buffer, not the table. Rows only move within a buffer and between
  adjacent ones, so a shuffle is as good as the buffer is large against the
  row groups.

Either way every row comes once per epoch, every batch but the epoch's last
is full, and the order of epoch ``e`` is a function of ``(seed, e)`` alone:
``epoch(e, skip=s)`` is the same epoch without its first ``s`` batches, which
is how a run resumes mid-epoch (`schemaretrieval.training.fit`).
``dataset()`` is the form Keras takes: each iteration over it is a new epoch.

>>> import numpy as np, pandas as pd
>>> from merlin.schema import ColumnSchema, Schema, Tags
>>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
...                               dtype=np.int64, properties={"domain": {"min": 0, "max": 9}})])
>>> batches = Batches(pd.DataFrame({"item_id": np.arange(10)}), schema, batch_size=4, shuffle=True, seed=0)
>>> batches.num_rows, batches.steps
(10, 3)
>>> first = [b["item_id"].numpy().tolist() for b in batches.epoch(0)]
>>> [len(b) for b in first], sorted(sum(first, [])) == list(range(10))
([4, 4, 2], True)
>>> [b["item_id"].numpy().tolist() for b in batches.epoch(0, skip=1)] == first[1:]
True
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re

import numpy as np
from merlin.schema import Schema

from schemaretrieval.arguments import integer
from schemaretrieval.data import parquet
from schemaretrieval.data.read import parquet_files, read_frame
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.schema import columns
from schemaretrieval.schema.columns import CATEGORICAL, CONTINUOUS, PAD

__all__ = [
    "stream_errors_raised",
    "DEFAULT_SHUFFLE_BUFFER",
    "DEFAULT_READ_ROWS",
    "Batches",
    "streams",
    "to_tf_dataset",
    "example_batch",
]

#: Rows gathered (and shuffled together) before they are cut into batches, when streaming.
DEFAULT_SHUFFLE_BUFFER = 262_144
#: Rows read from a row group at a time, when streaming.
DEFAULT_READ_ROWS = 65_536


def _is_path(data) -> bool:
    return isinstance(data, (str, os.PathLike))


def streams(data, streaming="auto") -> bool:
    """Whether `Batches` streams ``data``: ``True`` (parquet only), ``False``, or ``"auto"``:
    a parquet file or directory whose arrays would take more than
    ``parquet.in_memory_max_bytes()``. DataFrames, mappings and csv are read whole.

    >>> import pandas as pd
    >>> streams(pd.DataFrame({"x": [1]}))
    False
    """
    if streaming is False:
        return False
    if streaming is True:
        if not _is_path(data) or not parquet_files(data):
            raise ValueError(
                f"streaming=True reads parquet (a file or a directory of .parquet files); got "
                f"{data if _is_path(data) else type(data).__name__!r}")
        return True
    if streaming != "auto":
        raise ValueError(f"streaming must be True, False or 'auto', got {streaming!r}")
    if not _is_path(data) or not parquet_files(data):
        return False
    return parquet.in_memory_bytes(data) > parquet.in_memory_max_bytes()


def _check_batch_size(batch_size) -> int:
    return integer(batch_size, "Batches", "batch_size")


class Batches:
    """The batches of one table for one schema (see the module docstring).

    Args:
        data: a DataFrame, a mapping of column -> array, or a path accepted
            by `read.read_table` (parquet file or directory, csv).
        schema: the merlin Schema naming the columns (its categorical and
            continuous columns are read; see `validate.to_arrays`).
        batch_size: rows per batch.
        shuffle: a new order of the rows every epoch.
        seed: the seed of every epoch's order (None: drawn once).
        drop_remainder: leave out each epoch's last, smaller batch.
        streaming: True, False or "auto" (see `streams`).
        shuffle_buffer, read_rows: the streamed path's buffer and piece size.
        source: how errors name an in-memory ``data`` (the file it came from).

    >>> import numpy as np, pandas as pd
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype=np.int64,
    ...                               properties={"domain": {"min": 0, "max": 9}})])
    >>> batches = Batches(pd.DataFrame({"item_id": np.arange(10)}), schema, batch_size=3)
    >>> batches.streamed, [len(b["item_id"]) for b in batches.epoch(0, skip=2)]
    (False, [3, 1])
    """

    def __init__(self, data, schema: Schema, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                 drop_remainder: bool = False, streaming="auto", shuffle_buffer: int | None = None,
                 read_rows: int | None = None, source: str | None = None):
        self.schema = schema
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(np.random.SeedSequence().entropy % (1 << 62)) if seed is None else int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.streamed = streams(data, streaming)
        if not columns.feature_columns(schema):
            raise ValueError("Batches: the schema names no categorical or continuous column")
        if self.streamed:
            self.source = os.fspath(data)
            self.groups = [g for g in parquet.row_groups(data) if g.num_rows]
            self.num_rows = sum(g.num_rows for g in self.groups)
            if self.num_rows == 0:
                raise ValueError(f"{self.source}: the parquet holds zero rows")
            self.buffer_rows = max(int(shuffle_buffer or DEFAULT_SHUFFLE_BUFFER), self.batch_size)
            self.read_rows = int(read_rows or DEFAULT_READ_ROWS)
        else:
            if _is_path(data):
                data, source = read_frame(data, "Batches")
            self.source = source or "<DataFrame>"
            self.arrays = to_arrays(data, schema, source=self.source)
            self.num_rows = len(next(iter(self.arrays.values())))
        full, rest = divmod(self.num_rows, self.batch_size)
        self.steps = full + (1 if rest and not self.drop_remainder else 0)

    def rows(self, first: int, last: int) -> int:
        """The rows of an epoch's steps ``first`` to ``last - 1``: every batch is full but the last.

        >>> import pandas as pd
        >>> from merlin.schema import ColumnSchema, Tags
        >>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
        ...                               dtype=np.int64, properties={"domain": {"min": 0, "max": 9}})])
        >>> batches = Batches(pd.DataFrame({"item_id": np.arange(10)}), schema, batch_size=4)
        >>> batches.rows(0, 2), batches.rows(1, 3)  # batches of 4, 4 and 2 rows
        (8, 6)
        """
        total = self.num_rows if not self.drop_remainder else self.num_rows - self.num_rows % self.batch_size
        return min(last * self.batch_size, total) - min(first * self.batch_size, total)

    # -- epochs -----------------------------------------------------------------------

    def epoch(self, epoch: int, skip: int = 0):
        """The ``tf.data.Dataset`` of epoch ``epoch``'s batches, the first ``skip`` left out."""
        if self.streamed:
            ds = self._streamed(lambda: np.random.default_rng([self.seed, int(epoch)]))
            return ds.skip(int(skip)) if skip else ds
        import tensorflow as tf

        return self._in_memory(self._order(tf.constant([self.seed, int(epoch)], tf.int64)), int(skip))

    def dataset(self):
        """Every iteration a new epoch (for Keras's ``fit``, ``evaluate`` and ``predict``)."""
        import tensorflow as tf

        if self.streamed:
            epochs = itertools.count()
            return self._streamed(lambda: np.random.default_rng([self.seed, next(epochs)]))
        if not self.shuffle:
            return self._in_memory(None, 0)
        self._constants()  # eagerly: made first inside flat_map's function, they would stay in its graph
        # One seed per iteration, reproducible from `seed`: a new permutation each epoch.
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).take(1)
        ds = seeds.flat_map(lambda s: self._in_memory(self._order(tf.stack([s, tf.constant(0, tf.int64)])), 0))
        return ds.apply(tf.data.experimental.assert_cardinality(self.steps))

    # -- in memory --------------------------------------------------------------------

    def _order(self, seed):
        import tensorflow as tf

        if not self.shuffle:
            return None
        # Shuffling the row indices with Dataset.shuffle took 6x as long on 1M rows.
        return tf.random.experimental.stateless_shuffle(tf.range(self.num_rows, dtype=tf.int64), seed=seed)

    def _constants(self):
        import tensorflow as tf

        if not hasattr(self, "_tensors"):
            self._tensors = {name: tf.constant(values) for name, values in self.arrays.items()}
        return self._tensors

    def _in_memory(self, order, skip):
        import tensorflow as tf

        tensors, n, size = self._constants(), self.num_rows, self.batch_size

        def take(b):
            start = b * size
            stop = tf.minimum(start + size, n)
            if order is None:
                return {name: t[start:stop] for name, t in tensors.items()}
            return {name: tf.gather(t, order[start:stop]) for name, t in tensors.items()}

        ds = tf.data.Dataset.range(skip, self.steps).map(take, num_parallel_calls=tf.data.AUTOTUNE,
                                                          deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    # -- streamed ---------------------------------------------------------------------

    def _streamed(self, new_rng):
        import tensorflow as tf

        def generate():  # one call per iteration over the dataset, i.e. per epoch
            yield from self._chunks(new_rng())

        chunks = tf.data.Dataset.from_generator(
            generate, output_signature=(_signature(self.schema), tf.TensorSpec([None], tf.int64)))
        size, shuffle, drop = self.batch_size, self.shuffle, self.drop_remainder

        def batches(chunk, order):
            # The shuffle's gather runs here, in TensorFlow, not in the Python generator.
            n = tf.shape(order, out_type=tf.int64)[0]
            count = n // size if drop else (n + size - 1) // size

            def take(b):
                start = b * size
                stop = tf.minimum(start + size, n)
                if shuffle:
                    return {name: tf.gather(t, order[start:stop]) for name, t in chunk.items()}
                return {name: t[start:stop] for name, t in chunk.items()}

            return tf.data.Dataset.range(count).map(take, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        ds = chunks.flat_map(batches).apply(tf.data.experimental.assert_cardinality(self.steps))
        return ds.prefetch(tf.data.AUTOTUNE)

    def _chunks(self, rng):
        """The epoch's rows as (arrays, order): ``order`` lists the rows to serve, a whole
        number of batches but for the epoch's last chunk; the rest (fewer than a batch)
        is carried to the next chunk."""
        groups = rng.permutation(len(self.groups)) if self.shuffle else range(len(self.groups))
        pending: list[dict] = []
        buffered = 0

        def cut(final):
            nonlocal pending, buffered
            rows = _concat(pending)
            keep = buffered if final else (buffered // self.batch_size) * self.batch_size
            order = rng.permutation(buffered) if self.shuffle else np.arange(buffered)
            rest = order[keep:]
            pending = [{name: values[rest] for name, values in rows.items()}] if len(rest) else []
            buffered = len(rest)
            return rows, order[:keep]

        for g in groups:
            for piece in _pieces(self.groups[g], self.schema, self.read_rows):
                pending.append(piece)
                buffered += len(next(iter(piece.values())))
                if buffered >= self.buffer_rows:
                    rows, order = cut(final=False)
                    if len(order):
                        yield rows, order
        if buffered:
            yield cut(final=True)


def _signature(schema: Schema):
    import tensorflow as tf

    spec = {}
    for col in columns.feature_columns(schema):
        if columns.is_list(col):  # as wide as the buffer's longest row (or value_count max)
            spec[col.name] = tf.TensorSpec([None, None], tf.int64)
        else:
            spec[col.name] = tf.TensorSpec([None], tf.int64 if columns.kind(col) == CATEGORICAL else tf.float32)
    return spec


def _list_column(array):
    """A list column of an arrow batch as to_arrays takes it: an already padded int64
    [n, L] when that is exact (no nulls, integer values, none equal to the padding),
    else the rows as Python objects (to_arrays judges and reports them)."""
    import pyarrow as pa

    if (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) and array.null_count == 0:
        values = array.values if array.offset == 0 else array.flatten()
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        if array.offset == 0 and pa.types.is_integer(values.type) and values.null_count == 0:
            flat = values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
            if not (flat == PAD).any():
                lengths = np.diff(offsets)
                width = max(1, int(lengths.max(initial=0)))
                out = np.full((len(lengths), width), PAD, dtype=np.int64)
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


def _pieces(group: parquet.RowGroup, schema: Schema, read_rows: int):
    """Validated arrays of one row group, ``read_rows`` rows at a time."""
    import pyarrow.parquet as pq

    wanted = columns.feature_columns(schema)
    file = pq.ParquetFile(group.path)
    present = set(file.schema_arrow.names)
    names = [col.name for col in wanted if col.name in present]
    start = group.first_row
    for batch in file.iter_batches(batch_size=read_rows, row_groups=[group.index], columns=names,
                                   use_threads=False):
        stop = start + batch.num_rows
        source = f"{group.path} (row group {group.index}, rows {start}..{stop - 1} of the file)"
        data = {col.name: _list_column(batch.column(col.name)) if columns.is_list(col)
                else _scalar_column(batch.column(col.name)) for col in wanted if col.name in present}
        yield to_arrays(data, schema, source=source)
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
                     np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=PAD) for p in parts]
        out[name] = np.concatenate(parts)
    return out


def to_tf_dataset(data, schema: Schema, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                  drop_remainder: bool = False, streaming="auto", shuffle_buffer: int | None = None,
                  source: str | None = None):
    """``Batches(...).dataset()``: a ``tf.data.Dataset`` of ``{column: tensor}`` batches whose
    every iteration is an epoch (a new order with ``shuffle=True``, reproducible from ``seed``).

    >>> import numpy as np, pandas as pd
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
    ...                               dtype=np.int64, properties={"domain": {"min": 0, "max": 9}})])
    >>> ds = to_tf_dataset(pd.DataFrame({"item_id": np.arange(10)}), schema, batch_size=4)
    >>> [batch["item_id"].shape[0] for batch in ds]
    [4, 4, 2]
    """
    return Batches(data, schema, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                   streaming=streaming, shuffle_buffer=shuffle_buffer, source=source).dataset()


def example_batch(schema: Schema) -> dict[str, np.ndarray]:
    """One row of in-domain values for every feature column of ``schema``: the smallest id
    of each domain, 0.0 for continuous columns, a one-id list for list columns. Builds a
    model's weights before they are loaded.

    >>> from schemaretrieval.schema import load_schema
    >>> sorted(example_batch(load_schema("schemas/synthetic.yaml")))[:3]
    ['item_category', 'item_id', 'item_price']
    """
    batch = {}
    for col in columns.feature_columns(schema):
        if columns.kind(col) == CATEGORICAL:
            dom = columns.domain(col)
            low = dom[0] if dom else 0
            batch[col.name] = np.full((1, 1) if columns.is_list(col) else (1,), low, dtype=np.int64)
        elif columns.kind(col) == CONTINUOUS:
            batch[col.name] = np.zeros((1,), dtype=np.float32)
    return batch


@contextlib.contextmanager
def stream_errors_raised():
    """A streamed table's bad batch raised as its own ValueError (naming the file, row group, column
    and row): tf.data wraps what the generator raises in a graph's InvalidArgumentError, which a
    caller would not take for bad input.

    >>> import tensorflow as tf
    >>> def rows():
    ...     raise ValueError("t.parquet: column 'x': expected finite numbers")
    ...     yield {"x": [1.0]}
    >>> data = tf.data.Dataset.from_generator(rows, output_signature={"x": tf.TensorSpec([1])})
    >>> with stream_errors_raised():
    ...     _ = list(data)
    Traceback (most recent call last):
    ...
    ValueError: t.parquet: column 'x': expected finite numbers
    """
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.findall(r"ValueError: (.+)", str(error))
        if not found:
            raise
        raise ValueError(found[-1].strip()) from None
