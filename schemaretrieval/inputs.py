"""Turns a batch of features into one vector, as the schema's tags say.

Each tag maps to one way of reading a column through `INPUT_BLOCKS`, the one
table to replace when a feature type needs another treatment:

| tag         | what the column becomes                                     |
|-------------|-------------------------------------------------------------|
| categorical | an embedding looked up in its domain's table                |
| + list      | the mean of its ids' embeddings, padding (-1) masked out    |
| continuous  | its value, as one float                                     |

Columns that share a domain name (``domain: {name: genres}``) share one table.
"""

from __future__ import annotations

import keras
from keras import ops
from merlin.schema import Schema, Tags

from schemaretrieval import distributed
from schemaretrieval import schema as schema_lib

# Pad value of list columns in the batches of `schemaretrieval.data`.
LIST_PADDING = -1
# What a user id no training batch read reads (docs/quality.md, section 16).
DEFAULT_UNTRAINED_USER_IDS = "mean"


@keras.saving.register_keras_serializable(package="schemaretrieval")
class CategoricalEmbedding(keras.layers.Layer):
    """Embeds an id column, or mean-pools a padded list of ids.

    Args:
        input_dim, output_dim: the table's rows (ids) and width.
        untrained_rows: None, or "mean": outside training, an id whose row
            no training batch has read (a user new since training, mapped
            to the ETL's out-of-vocabulary id) reads the mean of the rows
            training has read, rather than its row's initial random values.
            The rows read are recorded in training (`trained_rows`) and
            saved with the model; until a first training step, every row
            reads itself. docs/quality.md, section 16, measured it.

    Example: ids 0 and 1 are trained, id 2 is not.

    >>> import numpy as np
    >>> layer = CategoricalEmbedding(input_dim=10, output_dim=4)
    >>> tuple(layer(np.array([[1, 2, -1]])).shape)
    (1, 4)
    >>> layer = CategoricalEmbedding(input_dim=3, output_dim=2, untrained_rows="mean")
    >>> layer.build(None)
    >>> _ = layer.table.embeddings.assign([[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]])
    >>> _ = layer(np.array([0, 1]), training=True)  # what a training step reads
    >>> np.asarray(layer(np.array([1, 2]))).tolist()
    [[3.0, 2.0], [2.0, 1.0]]
    """

    UNTRAINED_ROWS = (None, "mean")

    def __init__(self, input_dim: int, output_dim: int, untrained_rows: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if untrained_rows not in self.UNTRAINED_ROWS:
            raise ValueError(f"CategoricalEmbedding: untrained_rows must be one of {self.UNTRAINED_ROWS}, "
                             f"got {untrained_rows!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.untrained_rows = untrained_rows
        self.table = keras.layers.Embedding(input_dim, output_dim, name="table")

    def build(self, input_shape):
        self.table.build((None,))
        if self.untrained_rows is not None:
            # 1 for each row a training batch has read. Every replica records
            # the ids of all replicas, so the first replica's copy is the whole.
            self.trained_rows = self.add_weight(
                shape=(self.input_dim,), initializer="zeros", trainable=False, autocast=False,
                aggregation="only_first_replica", name="trained_rows")
        self.built = True

    def call(self, ids, training=None):
        vectors = self._lookup(ids, training)
        if len(ids.shape) == 1:
            return vectors
        mask = ops.cast(ops.greater_equal(ids, 0), self.compute_dtype)
        vectors = vectors * ops.expand_dims(mask, -1)
        # Rows with no ids pool to zeros rather than dividing by zero.
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        return ops.sum(vectors, axis=1) / count

    def _lookup(self, ids, training):
        """The rows of `ids`; padding (-1) reads row 0, which `call` masks out."""
        rows = ops.maximum(ids, 0)
        vectors = self.table(rows)
        if self.untrained_rows is None:
            return vectors
        if training:
            self._record(ids)
            return vectors
        trained = self.trained_rows
        known = ops.take(trained, rows) > 0

        def filled():
            reads = ops.sum(trained)
            # Before any training step nothing is recorded: every row reads itself.
            keep = ops.logical_or(known, reads == 0)
            # Not differentiated: an evaluation's loss trains nothing, and a
            # gradient through the mean would touch every row of the table.
            table = ops.stop_gradient(ops.convert_to_tensor(self.table.embeddings))
            mean = ops.matmul(ops.expand_dims(trained, 0), table)[0] / ops.maximum(reads, 1.0)
            return ops.where(ops.expand_dims(keep, -1), vectors, ops.cast(mean, vectors.dtype))

        # The mean, and the count of rows read, cost a pass over the table:
        # only for a batch that holds an id not known to be trained.
        return ops.cond(ops.all(known), lambda: vectors, filled)

    def _record(self, ids):
        ids = distributed.all_gather(ops.reshape(ids, (-1,)))
        reads = ops.scatter(ops.expand_dims(ops.cast(ops.maximum(ids, 0), "int32"), -1),
                            ops.cast(ops.greater_equal(ids, 0), "float32"), (self.input_dim,))
        self.trained_rows.assign(ops.maximum(self.trained_rows, ops.minimum(reads, 1.0)))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "untrained_rows": self.untrained_rows}


def domain_name(column) -> str:
    """The table a categorical column reads: its domain's name, else its own."""
    return column.properties.get("domain", {}).get("name") or column.name


def _categorical(column, tables):
    return tables[domain_name(column)]


def _continuous(column, tables):
    return None


# tag -> how a column of that tag is read. Replace an entry to change the
# treatment of a whole feature type.
INPUT_BLOCKS = {
    Tags.CATEGORICAL: _categorical,
    Tags.CONTINUOUS: _continuous,
}


@keras.saving.register_keras_serializable(package="schemaretrieval")
class InputBlock(keras.layers.Layer):
    """Reads the columns of `schema` from a feature dict into one vector.

    Embedding tables: one per categorical domain, of `cardinality` rows
    (domain max + 1) and `embedding_dim` columns (the schema's, or the rule
    in `schemaretrieval.schema.embedding_dim`). Continuous columns are
    appended as they are; normalise them in the ETL.

    `untrained_user_ids` is the table's `untrained_rows` for the domain of
    the column tagged user_id: by default ("mean") a user training never
    read reads the mean trained user; None reads its own untrained row.

    Example:

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> s = Schema([ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL],
    ...     dtype="int64", properties={"domain": {"min": 0, "max": 9}, "embedding_dim": 4})])
    >>> tuple(InputBlock(s)({"user_id": np.array([1, 2])}).shape)
    (2, 4)
    """

    def __init__(self, schema: Schema, untrained_user_ids: str | None = DEFAULT_UNTRAINED_USER_IDS, **kwargs):
        super().__init__(**kwargs)
        if untrained_user_ids not in CategoricalEmbedding.UNTRAINED_ROWS:
            # checked here too: a schema without a user-id column would never pass it on
            raise ValueError(f"InputBlock: untrained_user_ids must be one of {CategoricalEmbedding.UNTRAINED_ROWS}, "
                             f"got {untrained_user_ids!r}")
        self.schema = schema
        self.untrained_user_ids = untrained_user_ids
        schema_lib.require_domains(schema)
        # Columns sharing a domain share a table with rows for every id of
        # any of them, so it is sized by the largest domain max among them.
        shared = {}
        for column in schema:
            if Tags.CATEGORICAL in column.tags and Tags.TARGET not in column.tags:
                shared.setdefault(domain_name(column), []).append(column)
        user_id = schema_lib.user_id_column(schema)
        self.tables = {}
        for name, columns in shared.items():
            widest = max(columns, key=schema_lib.cardinality)
            dims = {int(c.properties["embedding_dim"]) for c in columns if c.properties.get("embedding_dim")}
            if len(dims) > 1:
                raise schema_lib.SchemaError(
                    "<schema>", f"columns sharing domain {name!r} ask for different embedding_dim {sorted(dims)}; "
                    "expected one table width", column=columns[-1].name, key="embedding_dim")
            dim = dims.pop() if dims else schema_lib.embedding_dim(widest)
            users = any(c.name == user_id for c in columns)
            self.tables[name] = CategoricalEmbedding(
                schema_lib.cardinality(widest), dim, untrained_rows=untrained_user_ids if users else None,
                name=f"embedding_{name}"
            )
        self.readers = []
        for column in schema:
            kind = [tag for tag in INPUT_BLOCKS if tag in column.tags and Tags.TARGET not in column.tags]
            if not kind:
                continue  # targets and other non-feature columns
            self.readers.append((column.name, INPUT_BLOCKS[kind[0]](column, self.tables)))
        if not self.readers:
            raise ValueError(f"InputBlock: no categorical or continuous column in {schema.column_names}")

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.readers]

    def build(self, input_shape=None):
        for table in self.tables.values():
            table.build(None)
        self.built = True

    def call(self, features):
        missing = [name for name in self.column_names if name not in features]
        if missing:
            raise KeyError(f"InputBlock: the batch has no column(s) {missing}; it has {sorted(features)}")
        parts = []
        for name, layer in self.readers:
            value = features[name]
            if layer is None:
                parts.append(ops.cast(ops.reshape(value, (-1, 1)), self.compute_dtype))
            else:
                parts.append(layer(value))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "schema": schema_lib.schema_to_dict(self.schema),
                "untrained_user_ids": self.untrained_user_ids}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Saved before the option existed: those users read their own rows,
        # and the file has no trained_rows to load.
        config.setdefault("untrained_user_ids", None)
        config["schema"] = schema_lib.schema_from_dict(config["schema"])
        return cls(**config)
