"""Every candidate item with its features: `Catalog`, the one name for the catalog.

The catalog is what is ranked (evaluation, serving), what catalog samplers
draw from, and what the candidate tower embeds. Build it from:

* interactions: ``Catalog.from_interactions(data, schema)`` keeps one row
  per item id (the first occurrence's features) and counts each item's rows;
  a parquet path is read row group by row group (memory: the catalog);
* a table with one row per item: ``Catalog(table, schema)``;
* the item-id domain: ``Catalog.of_domain(schema)``, every id, for a
  candidate tower that reads nothing but the id.

Rows are sorted by item id. ``frame`` is the table, ``ids`` the item ids,
``counts`` the interactions per item when known; ``lookup(ids)`` and
``gather(rows)`` give the candidate tower's feature dict inside a graph.

>>> import pandas as pd
>>> from schemaretrieval.schema import load_schema
>>> schema = load_schema("schemas/synthetic.yaml")
>>> frame = pd.DataFrame({"user_id": [0, 1, 2], "item_id": [5, 2, 5], "item_category": [1, 0, 1],
...                       "item_tags": [[1], [2, 3], [1]], "item_price": [0.5, 0.1, 0.5]})
>>> catalog = Catalog.from_interactions(frame, schema)
>>> catalog.ids.tolist(), catalog.counts.tolist(), list(catalog.frame.columns)
([2, 5], [1.0, 2.0], ['item_id', 'item_category', 'item_tags', 'item_price'])
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops
from merlin.schema import Schema

from schemaretrieval.arguments import counts as check_counts
from schemaretrieval.data import parquet
from schemaretrieval.data.read import read_frame, require_columns
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.schema import columns, require_schema

__all__ = ["Catalog", "as_catalog"]


class Catalog:
    """Every item with its features (see the module docstring).

    Args:
        table: one row per item with the candidate-side columns (a
            DataFrame, a mapping of arrays, or a path).
        schema: the schema (whole or candidate side); its item-id column
            identifies the rows.
        counts: interactions per row of ``table`` (None when unknown).

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"}}})
    >>> catalog = Catalog({"item_id": [7, 3]}, schema, counts=[1, 5])
    >>> catalog.ids.tolist(), catalog.counts.tolist(), catalog.counts_by_id(9).tolist()
    ([3, 7], [5.0, 1.0], [0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    """

    def __init__(self, table, schema: Schema, counts=None):
        require_schema(schema, "Catalog")
        self.id_column = columns.item_id_column(schema)
        self.schema = columns.candidate_schema(schema)
        frame, source = read_frame(table, "Catalog") if not isinstance(table, dict) else (pd.DataFrame(table), "Catalog")
        require_columns(frame, self.schema.column_names, source, "the catalog")
        ids = frame[self.id_column].to_numpy()
        if pd.Index(ids).has_duplicates:
            raise ValueError(f"{source}: item ids of column {self.id_column!r} repeat; a catalog has one row per "
                             "item (Catalog.from_interactions(data, schema) builds one from interactions)")
        order = np.argsort(ids, kind="stable")
        self.frame = frame[self.schema.column_names].iloc[order].reset_index(drop=True)
        self.ids = self.frame[self.id_column].to_numpy()
        if counts is not None:
            counts = check_counts(counts, "Catalog", "counts", length=len(ids), positive_total=False)[order]
        self.counts = counts
        self._tensors = None

    @classmethod
    def from_interactions(cls, data, schema: Schema) -> "Catalog":
        """One row per item of ``data`` (the first occurrence's features), with each item's count.
        ``data`` may be a list of tables (train and held-out rows): their items together."""
        require_schema(schema, "Catalog.from_interactions")
        item_id = columns.item_id_column(schema)
        names = columns.candidate_schema(schema).column_names
        if isinstance(data, (list, tuple)):
            parts = [cls.from_interactions(part, schema) for part in data]
            frame = pd.concat([part.frame for part in parts], ignore_index=True)
            counts = pd.concat([pd.Series(part.counts, index=part.ids) for part in parts]).groupby(level=0).sum()
            frame = frame.loc[~frame[item_id].duplicated(keep="first")]
            return cls(frame, schema, counts.reindex(frame[item_id].to_numpy()).to_numpy())
        candidates = columns.candidate_schema(schema)
        if isinstance(data, (str, os.PathLike)) and parquet.row_groups(data):
            parts, counts, start = [], {}, 0
            for table in parquet.iter_tables(data, names):
                frame = table.to_pandas()
                require_columns(frame, names, os.fspath(data), "the catalog", allow_empty=True)
                if len(frame):  # checked here, where a bad value's row is the file's (as Batches names it)
                    to_arrays(frame, candidates, source=f"{os.fspath(data)} (rows {start}..{start + len(frame) - 1} "
                                                        "of the file)")
                start += len(frame)
                ids = frame[item_id].to_numpy()
                for value, count in zip(*np.unique(ids, return_counts=True)):
                    counts[value] = counts.get(value, 0) + int(count)
                parts.append(frame.loc[~frame[item_id].duplicated(keep="first")])
            if not parts:
                raise ValueError(f"{os.fspath(data)}: the data is empty (zero rows)")
            frame = pd.concat(parts, ignore_index=True)
            frame = frame.loc[~frame[item_id].duplicated(keep="first")]
            return cls(frame, schema, [counts[i] for i in frame[item_id].to_numpy()])
        frame, source = read_frame(data, "Catalog.from_interactions")
        require_columns(frame, names, source, "the catalog")
        to_arrays(frame[names], candidates, source=source)  # the caller's rows: the catalog's are one per item
        ids = frame[item_id]
        counts = ids.value_counts(sort=False)
        first = frame.loc[~ids.duplicated(keep="first"), names]
        return cls(first, schema, counts.reindex(first[item_id].to_numpy()).to_numpy())

    @classmethod
    def of_domain(cls, schema: Schema) -> "Catalog":
        """Every id of the item-id domain, for a candidate tower that reads only the id.

        >>> from schemaretrieval.schema import schema_from_dict
        >>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"],
        ...     "dtype": "int64", "domain": {"min": 0, "max": 3}}}})
        >>> Catalog.of_domain(schema).ids.tolist()
        [0, 1, 2, 3]
        """
        require_schema(schema, "Catalog.of_domain")
        item_id = columns.item_id_column(schema)
        others = [name for name in columns.candidate_schema(schema).column_names if name != item_id]
        if others:
            raise ValueError(
                f"a catalog of every id of the item-id domain has no features, and the candidate side also reads "
                f"{others}; give the catalog: Catalog.from_interactions(all_interactions, schema)")
        lo, hi = columns.domain(schema[item_id]) or (None, None)
        if hi is None:
            columns.cardinality(schema[item_id])  # raises, naming the column
        return cls(pd.DataFrame({item_id: np.arange(int(lo), int(hi) + 1)}), schema)

    def __len__(self) -> int:
        return len(self.ids)

    # -- in a graph (the catalog samplers) ------------------------------------------------

    def tensors(self):
        """(row of each id, the candidate tower's feature arrays) as tensors, made once: call it
        eagerly (a sampler does when it is given the catalog), so that no graph owns them."""
        if self._tensors is None:
            arrays = to_arrays(self.frame, self.schema, source="the catalog")
            ids = self.ids.astype("int64")
            row_of_id = np.full(int(ids.max()) + 1, -1, dtype="int32")
            row_of_id[ids] = np.arange(len(ids))
            self._tensors = (ops.convert_to_tensor(row_of_id),
                             {name: ops.convert_to_tensor(values) for name, values in arrays.items()})
        return self._tensors

    def rows(self, ids):
        """Row of each id [M] (-1 for ids not in the catalog)."""
        row_of_id, _ = self.tensors()
        ids = ops.cast(ids, "int64")  # not int32: an id past 2**31 would wrap onto another item's row
        inside = ops.logical_and(ids >= 0, ids < ops.shape(row_of_id)[0])
        found = ops.take(row_of_id, ops.where(inside, ids, 0))
        return ops.where(inside, found, -1)

    def gather(self, rows):
        """The candidate tower's feature dict of the given rows [M]."""
        _, features = self.tensors()
        rows = ops.cast(rows, "int32")
        return {name: ops.take(values, rows, axis=0) for name, values in features.items()}

    def lookup(self, ids):
        """The feature dict of the given item ids [M]; an id not in the catalog is a ValueError
        naming it (an InvalidArgumentError in a graph), not the first row's features."""
        rows = self.rows(ids)
        if tf.executing_eagerly():
            missing = np.asarray(rows) < 0
            if missing.any():
                raise ValueError(f"Catalog.lookup: item id {np.asarray(ids).ravel()[np.argmax(missing)]!r} is not in "
                                 f"the catalog ({int(missing.sum())} of {missing.size} ids are not)")
        else:
            with tf.control_dependencies([tf.debugging.assert_non_negative(
                    rows, message="Catalog.lookup: an item id is not in the catalog")]):
                rows = tf.identity(rows)
        return self.gather(rows)

    def counts_by_id(self, size: int) -> np.ndarray:
        """The counts indexed by item id, ``size`` long (0 for ids not in the catalog)."""
        if self.counts is None:
            raise ValueError("the catalog has no item counts; build it with Catalog.from_interactions(train, schema)")
        out = np.zeros(max(int(size), int(self.ids.max()) + 1))
        out[self.ids.astype("int64")] = self.counts
        return out


def as_catalog(candidates, schema: Schema) -> Catalog:
    """``candidates`` as a `Catalog`: a Catalog passes, a table with one row per item is
    wrapped, and None is every id of the item-id domain (`Catalog.of_domain`).

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"],
    ...     "dtype": "int64", "domain": {"min": 0, "max": 2}}}})
    >>> len(as_catalog(None, schema))
    3
    """
    if isinstance(candidates, Catalog):
        return candidates
    if candidates is None:
        return Catalog.of_domain(schema)
    return Catalog(candidates, schema)
