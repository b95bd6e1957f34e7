"""Reads a batch's columns into one vector, as the schema's tags say: `InputBlock`.

Each tag maps to one reader through the registry's ``"input"`` kind, the one
table to extend or replace when a feature type needs another treatment:

| tag         | reader             | what the column becomes                                  |
|-------------|--------------------|----------------------------------------------------------|
| categorical | `CategoricalReader`| an embedding looked up in its domain's table             |
| + list      |                    | the mean of its ids' embeddings, padding (-1) masked out |
| continuous  | `ContinuousReader` | its value, as one float                                  |

A column whose tags no reader covers is refused when the block is built
(`schema.check_towers` says which tags those are and why). Columns that share
a domain name (``domain: {name: genres}``) share one table.

A reader of one's own: a class registered with ``@sr.registry.register("input",
"<tag>")`` whose ``__init__(column, tables)`` sets it up and whose
``__call__(values)`` returns ``[batch, width]``.
"""

from __future__ import annotations

import keras
from keras import ops
from merlin.schema import Schema, Tags

from schemaretrieval import registry
from schemaretrieval import schema as schema_lib
from schemaretrieval.arguments import machine_memory
from schemaretrieval.layers.embeddings import DEFAULT_UNTRAINED_USER_IDS, CategoricalEmbedding
from schemaretrieval.schema import columns

__all__ = ["InputBlock", "InputBlockV2", "CategoricalReader", "ContinuousReader", "check_table_fits"]


@registry.register("input", Tags.CATEGORICAL.value)
class CategoricalReader:
    """A categorical column: its domain's embedding table (the mean of a list's rows).

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema
    >>> table = CategoricalEmbedding(10, 4)
    >>> reader = CategoricalReader(ColumnSchema("item_id", properties={"domain": {"max": 9}}), {"item_id": table})
    >>> tuple(reader(np.array([1, 2])).shape)
    (2, 4)
    """

    def __init__(self, column, tables):
        self.table = tables[columns.domain_name(column)]

    def __call__(self, values):
        return self.table(values)


@registry.register("input", Tags.CONTINUOUS.value)
class ContinuousReader:
    """A continuous column: its value as one float (normalise it in the ETL).

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema
    >>> tuple(ContinuousReader(ColumnSchema("age"), {})(np.array([0.5, 1.0])).shape)
    (2, 1)
    """

    def __init__(self, column, tables):
        self.dtype = "float32"

    def __call__(self, values):
        return ops.cast(ops.reshape(values, (-1, 1)), self.dtype)


def _reader_tag(column):
    """The first registered reader's tag among the column's tags (the table's order), or None."""
    names = registry.names("input")
    for name in names:
        if Tags(name) in column.tags:
            return name
    return None


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
        schema_lib.check_towers(schema)
        # Columns sharing a domain share a table with rows for every id of
        # any of them, so it is sized by the largest domain max among them.
        shared = {}
        for column in schema:
            if Tags.CATEGORICAL in column.tags and Tags.TARGET not in column.tags:
                shared.setdefault(columns.domain_name(column), []).append(column)
        user_id = schema_lib.user_id_column(schema)
        self.tables = {}
        for name, sharing in shared.items():
            widest = max(sharing, key=schema_lib.cardinality)
            dims = {int(c.properties["embedding_dim"]) for c in sharing if c.properties.get("embedding_dim")}
            if len(dims) > 1:
                raise schema_lib.SchemaError(
                    "<schema>", f"columns sharing domain {name!r} ask for different embedding_dim {sorted(dims)}; "
                    "expected one table width", column=sharing[-1].name, key="embedding_dim")
            dim = dims.pop() if dims else schema_lib.embedding_dim(widest)
            users = any(c.name == user_id for c in sharing)
            rows = schema_lib.cardinality(widest)
            check_table_fits(rows, dim, widest.name)
            self.tables[name] = CategoricalEmbedding(
                rows, dim, untrained_rows=untrained_user_ids if users else None, name=f"embedding_{name}"
            )
        self.readers = []
        for column in schema:
            tag = _reader_tag(column)
            if tag is None or Tags.TARGET in column.tags:
                continue  # labels, raw times and display text: check_towers let them through as such
            self.readers.append((column.name, registry.lookup("input", tag)(column, self.tables)))
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
        parts = [ops.cast(read(features[name]), self.compute_dtype) for name, read in self.readers]
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


def InputBlockV2(schema: Schema | None = None, categorical=Tags.CATEGORICAL, continuous=Tags.CONTINUOUS, pre=None,
                 post=None, aggregation="concat", tag_to_block=None, **branches) -> InputBlock:
    """Merlin Models' name for the schema-driven input block: an `InputBlock` of ``schema``.

    Merlin's arguments in Merlin's order. Categorical columns become
    embeddings (widths from the schema's ``embedding_dim``, else Merlin's
    rule), continuous columns their value, concatenated: Merlin's defaults.
    Any other value of ``categorical``, ``continuous``, ``pre``, ``post``,
    ``aggregation``, ``tag_to_block`` or extra ``**branches`` is a
    NotImplementedError: here a tag's treatment is chosen in one place, the
    registry's "input" readers (``sr.registry.register("input", tag)``),
    and blocks after the inputs go to the `Encoder`.

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> s = Schema([ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL],
    ...     dtype="int64", properties={"domain": {"min": 0, "max": 9}, "embedding_dim": 4})])
    >>> tuple(InputBlockV2(s)({"user_id": np.array([1, 2])}).shape)
    (2, 4)
    >>> InputBlockV2(s, aggregation="stack")
    Traceback (most recent call last):
    ...
    NotImplementedError: InputBlockV2: aggregation='stack' is not supported (only Merlin's default 'concat'); register a reader of a tag with sr.registry.register("input", tag), or add blocks to the Encoder
    """
    if schema is None:
        raise ValueError("InputBlockV2: schema is required (the columns to read)")
    schema_lib.require_schema(schema, "InputBlockV2")
    defaults = {"categorical": (categorical, Tags.CATEGORICAL), "continuous": (continuous, Tags.CONTINUOUS),
                "pre": (pre, None), "post": (post, None), "aggregation": (aggregation, "concat"),
                "tag_to_block": (tag_to_block, None)}
    hint = 'register a reader of a tag with sr.registry.register("input", tag), or add blocks to the Encoder'
    for name, (value, default) in defaults.items():
        if value != default:
            raise NotImplementedError(f"InputBlockV2: {name}={value!r} is not supported "
                                      f"(only Merlin's default {default!r}); {hint}")
    if branches:
        raise NotImplementedError(f"InputBlockV2: extra branches {sorted(branches)} are not supported; {hint}")
    return InputBlock(schema)


def check_table_fits(rows: int, dim: int, column: str) -> None:
    """A table larger than this machine's memory is a SchemaError naming its column, not an
    out-of-memory error inside TensorFlow that names a shape.

    >>> check_table_fits(1_000, 64, "item_id")
    >>> check_table_fits(10**12, 64, "item_id")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemaretrieval.schema.errors.SchemaError: <schema>: column 'item_id', key 'domain': domain max 999,999,999,999 ...
    """
    size = rows * dim * 4
    memory = machine_memory()
    if memory is not None and size > memory:  # None: no sysconf (Windows): TensorFlow's own error stands
        raise schema_lib.SchemaError(
            "<schema>", f"domain max {rows - 1:,} makes an embedding table of {rows:,} x {dim} float32 "
            f"({size / 2**30:,.1f} GiB), more than this machine's {memory / 2**30:,.1f} GiB of memory; encode the "
            "ids with the ETL (a vocabulary of the ids it sees) or hash them (transform: {num_buckets: N})",
            column=column, key="domain")
