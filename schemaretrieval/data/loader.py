"""Merlin Models' data loader over the one batch builder: `Loader` and its transform `ToTarget`.

``Loader(dataset, batch_size, shuffle=True)`` takes what Merlin's
``mm.Loader`` takes (a ``merlin.io.Dataset``, a parquet path or glob, a list
of files; here also a DataFrame with ``schema=``) and yields Merlin's
``(features, targets)`` batches: ``features`` a dict of tensors of the
schema's columns that are not targets, ``targets`` None, the one target
tensor, or a dict of them. The batches come from `sr.data.Batches`, the
library's one batch builder: the same validation (ids in their domains, no
NaN, list lengths) and the same streaming of parquet larger than memory.
``loader.map(fn)`` adds a transform, called as ``fn(features, targets)``
on each batch; `ToTarget` moves feature columns to the targets, as in
Merlin's retrieval notebook::

    eval_loader = mm.Loader(valid, batch_size=1024).map(mm.ToTarget(schema, "item_id"))

A `TwoTowerModelV2`'s ``fit`` / ``evaluate`` and a top-k encoder's
``evaluate`` take a `Loader` (or the ``merlin.io.Dataset`` itself).
"""

from __future__ import annotations

import os

import pandas as pd
from merlin.schema import Schema, Tags

from schemaretrieval.arguments import integer
from schemaretrieval.data.batches import Batches
from schemaretrieval.data.read import is_merlin_dataset, merlin_table
from schemaretrieval.schema import columns, require_schema

__all__ = ["Loader", "ToTarget", "keras_input"]

# Merlin's arguments this loader takes but does not implement, with Merlin's defaults.
_UNSUPPORTED = {"feature_columns": None, "cat_names": None, "cont_names": None, "buffer_size": 0.1,
                "device": None, "parts_per_chunk": 1, "reader_kwargs": None, "global_size": None,
                "global_rank": None, "sparse_names": None, "sparse_max": None, "sparse_as_dense": False}


def _select(schema: Schema, targets) -> list[str]:
    """Column names of ``schema`` named or tagged by ``targets`` (names, tags, ColumnSchemas, Schemas)."""
    names = []
    for target in targets:
        found = columns.selected_columns(schema, target, "ToTarget: a target")
        if not found:
            raise ValueError(f"ToTarget: {target!r} names no column of the schema {schema.column_names}")
        names.extend(n for n in found if n not in names)
    return names


class ToTarget:
    """Moves columns from a batch's features to its targets (Merlin's ``mm.ToTarget``).

    Args:
        schema: the schema of the batches.
        *target: the columns: names, `Tags`, ColumnSchemas or a Schema.
        one_hot: the target as a one-hot row of its domain's size, as in Merlin.

    With one target and no targets before, the targets become that tensor;
    otherwise a dict by column name, as Merlin's does.

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("user_id"), ColumnSchema("item_id", tags=[Tags.ITEM_ID],
    ...                                                          properties={"domain": {"min": 0, "max": 3}})])
    >>> features, targets = ToTarget(schema, "item_id")({"user_id": np.array([5]), "item_id": np.array([2])})
    >>> sorted(features), targets.tolist()
    (['user_id'], [2])
    >>> ToTarget(schema, Tags.ITEM_ID, one_hot=True)({"item_id": np.array([2])})[1].numpy().tolist()
    [[0.0, 0.0, 1.0, 0.0]]
    """

    def __init__(self, schema: Schema, *target, one_hot: bool = False):
        require_schema(schema, "ToTarget")
        if not target:
            raise ValueError("ToTarget: name at least one target column")
        self.schema = schema
        self.target = target
        self.target_columns = _select(schema, target)
        self.one_hot = bool(one_hot)

    def _one_hot(self, name, values):
        import tensorflow as tf

        domain = self.schema[name].properties.get("domain") or {}
        if domain.get("max") is None:
            raise ValueError(f"ToTarget: one_hot=True needs the domain of {name!r} in the schema")
        return tf.one_hot(tf.cast(tf.reshape(values, [-1]), tf.int64), int(domain["max"]) + 1)

    def __call__(self, inputs, targets=None):
        features = {}
        for name, values in inputs.items():
            if name not in self.target_columns:
                features[name] = values
                continue
            value = self._one_hot(name, values) if self.one_hot else values
            if isinstance(targets, dict):
                targets = {**targets, name: targets.get(name, value)}
            else:
                targets = value
        return features, targets

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        """``input_schema`` with the target columns tagged ``Tags.TARGET``.

        >>> from merlin.schema import ColumnSchema
        >>> s = Schema([ColumnSchema("item_id")])
        >>> Tags.TARGET in ToTarget(s, "item_id").compute_output_schema(s)["item_id"].tags
        True
        """
        return Schema([col.with_tags([Tags.TARGET]) if col.name in self.target_columns else col
                       for col in input_schema])


class Loader:
    """Batches of a data set for Keras, in Merlin's ``(features, targets)`` form (see the module docstring).

    Args (Merlin's, in Merlin's order):
        paths_or_dataset: a ``merlin.io.Dataset``, a parquet file, directory
            or glob, a list of files, or a DataFrame (with ``schema=``).
        batch_size: rows per batch.
        transform: a transform to `map` at once.
        label_names: the target columns; default the schema's columns
            tagged ``Tags.TARGET``.
        engine: "parquet" or "csv" for paths (None: parquet).
        shuffle: a new order every epoch (Merlin's default, True).
        seed_fn: a callable returning the seed of the order.
        drop_last: leave out each epoch's last, smaller batch.
        multi_label_as_dict: several targets as a dict (Merlin's default; False is not supported).
        schema: the schema to read with; default the dataset's.

    Merlin's ``feature_columns``, ``cat_names``, ``cont_names``,
    ``buffer_size``, ``device``, ``parts_per_chunk``, ``reader_kwargs``,
    ``global_size``, ``global_rank``, ``sparse_names``, ``sparse_max`` and
    ``sparse_as_dense`` are accepted at their defaults; another value is a
    NotImplementedError (list columns come dense, padded with -1).

    >>> import numpy as np, pandas as pd
    >>> from merlin.io import Dataset
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype="int64",
    ...                               properties={"domain": {"min": 0, "max": 9}}),
    ...                  ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype="int64",
    ...                               properties={"domain": {"min": 0, "max": 9}})])
    >>> data = Dataset(pd.DataFrame({"user_id": np.arange(5), "item_id": np.arange(5)}), schema=schema)
    >>> loader = Loader(data, batch_size=2, shuffle=False).map(ToTarget(schema, "item_id"))
    >>> len(loader), [(sorted(x), y.numpy().tolist()) for x, y in loader][0]
    (3, (['user_id'], [0, 1]))
    >>> Loader(data, batch_size=2, device="gpu")
    Traceback (most recent call last):
    ...
    NotImplementedError: Loader: device='gpu' is not supported (Merlin's default None is)
    """

    def __init__(self, paths_or_dataset, batch_size, transform=None, label_names=None, feature_columns=None,
                 cat_names=None, cont_names=None, engine=None, shuffle=True, seed_fn=None, buffer_size=0.1,
                 device=None, parts_per_chunk=1, reader_kwargs=None, global_size=None, global_rank=None,
                 drop_last=False, sparse_names=None, sparse_max=None, multi_label_as_dict=True,
                 sparse_as_dense=False, schema=None):
        given = {"feature_columns": feature_columns, "cat_names": cat_names, "cont_names": cont_names,
                 "buffer_size": buffer_size, "device": device, "parts_per_chunk": parts_per_chunk,
                 "reader_kwargs": reader_kwargs, "global_size": global_size, "global_rank": global_rank,
                 "sparse_names": sparse_names, "sparse_max": sparse_max, "sparse_as_dense": sparse_as_dense}
        for name, value in given.items():
            if value != _UNSUPPORTED[name]:
                raise NotImplementedError(f"Loader: {name}={value!r} is not supported "
                                          f"(Merlin's default {_UNSUPPORTED[name]!r} is)")
        if not multi_label_as_dict:
            raise NotImplementedError("Loader: multi_label_as_dict=False is not supported; targets come as a dict")
        if engine not in (None, "parquet", "csv"):
            raise ValueError(f"Loader: engine must be None, 'parquet' or 'csv', got {engine!r}")
        if seed_fn is not None and not callable(seed_fn):
            raise TypeError(f"Loader: seed_fn must be a callable returning an int, got {type(seed_fn).__name__}")
        self.dataset = self._dataset(paths_or_dataset, engine, schema)
        if schema is not None:
            self.dataset.schema = schema
        self.schema = self.dataset.schema
        if not self.schema.column_names:
            raise ValueError("Loader: the data set has no schema; give schema= (e.g. sr.load_schema(etl_out))")
        self.label_names = list(label_names) if label_names is not None else \
            self.schema.select_by_tag(Tags.TARGET).column_names
        missing = [n for n in self.label_names if n not in self.schema.column_names]
        if missing:
            raise ValueError(f"Loader: label_names {missing} are not columns of the schema {self.schema.column_names}")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed_fn = seed_fn
        self.drop_last = bool(drop_last)
        self._map_fns = []
        self.batches = Batches(merlin_table(self.dataset), self.schema, batch_size, shuffle=self.shuffle,
                               seed=None if seed_fn is None else int(seed_fn()), drop_remainder=self.drop_last)
        if transform is not None:
            self.map(transform)

    @staticmethod
    def _dataset(data, engine, schema):
        import pandas as pd
        from merlin.io import Dataset

        if is_merlin_dataset(data):
            return data
        if isinstance(data, pd.DataFrame):
            if schema is None:
                raise ValueError("Loader: a DataFrame needs schema= (the columns' tags and domains)")
            return Dataset(data, schema=schema)
        if isinstance(data, (str, os.PathLike)):
            data = os.fspath(data)
        elif not (isinstance(data, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in data)):
            raise TypeError("Loader: paths_or_dataset must be a merlin.io.Dataset, a path, a glob, a list of "
                            f"files or a DataFrame, got {type(data).__name__}")
        return Dataset(data, engine=engine or "parquet")

    def map(self, fn) -> "Loader":
        """Adds a transform ``fn(features, targets) -> (features, targets)`` (Merlin's ``map``); returns the loader."""
        if not callable(fn):
            raise TypeError(f"Loader.map: expected a callable, got {type(fn).__name__}")
        self._map_fns.append(fn)
        return self

    @property
    def transforms(self) -> list:
        """The transforms added by `map`, in order."""
        return list(self._map_fns)

    @property
    def input_schema(self) -> Schema:
        return self.schema

    @property
    def output_schema(self) -> Schema:
        """The schema after the transforms (each needs ``compute_output_schema``, as in Merlin)."""
        schema = self.schema
        for fn in self._map_fns:
            if not hasattr(fn, "compute_output_schema"):
                raise ValueError(f"Loader: the transform {fn!r} has no compute_output_schema")
            schema = fn.compute_output_schema(schema)
        return schema

    def __len__(self) -> int:
        return self.batches.steps

    def _split(self, batch):
        features = {k: v for k, v in batch.items() if k not in self.label_names}
        labels = [batch[name] for name in self.label_names]
        targets = None if not labels else labels[0] if len(labels) == 1 else dict(zip(self.label_names, labels))
        for fn in self._map_fns:
            out = fn(features, targets)
            features, targets = (out, targets) if isinstance(out, dict) else (out[0], out[1])
        return features, targets

    def to_tf_dataset(self):
        """The ``tf.data.Dataset`` of ``(features, targets)`` batches; each iteration an epoch."""
        return self.batches.dataset().map(self._split)

    def __iter__(self):
        return iter(self.to_tf_dataset())

    def peek(self):
        """The first batch, as Merlin's ``peek``."""
        return next(iter(self))


def keras_input(x, schema: Schema, batch_size, where: str, default_batch_size: int):
    """(Keras's input, its batch_size) for Keras's ``evaluate`` or ``predict`` on any of the library's
    inputs: a `Loader` its tf.data batches, a ``merlin.io.Dataset`` or a table (DataFrame, path)
    batches from ``schema`` in the rows' order (``batch_size`` rows, else ``default_batch_size``);
    Keras's own inputs pass as they are.

    >>> import pandas as pd
    >>> from schemaretrieval.schema import schema_from_dict
    >>> s = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
    ...                                               "domain": {"min": 0, "max": 9}}}})
    >>> data, size = keras_input(pd.DataFrame({"item_id": [3, 4, 5]}), s, 2, "predict", 128)
    >>> [batch["item_id"].numpy().tolist() for batch in data], size
    ([[3, 4], [5]], None)
    """
    if batch_size is not None:
        batch_size = integer(batch_size, where, "batch_size")
    if isinstance(x, Loader):
        x = x.to_tf_dataset()
    if is_merlin_dataset(x):
        x = merlin_table(x)
    if isinstance(x, (pd.DataFrame, str)) or hasattr(x, "__fspath__"):
        x, batch_size = Batches(x, schema, default_batch_size if batch_size is None else batch_size).dataset(), None
    return x, batch_size
