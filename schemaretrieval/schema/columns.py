"""What a column of the schema means to the library: its kind, domain, ids, list shape and tower.

Every module asks these questions here, so that one answer serves the data
checks, the embedding tables, the ETL and the export.

Ids: NVTabular's Categorify reserves ``0`` (padding), ``NULL_INDEX`` (1, a
missing value) and ``OOV_INDEX`` (2, a value not seen in training); list
columns in batches are padded with ``PAD`` (-1), so that id 0 stays a real id.

Towers: columns tagged ``user``, ``context`` or ``session`` (``user_id`` and
``session_id`` included) feed the query tower, ``item`` (``item_id``
included) the candidate tower; targets feed neither.

>>> from schemaretrieval.schema import load_schema
>>> schema = load_schema("schemas/synthetic.yaml")
>>> kind(schema["item_tags"]), is_list(schema["item_tags"]), domain(schema["item_tags"])
('categorical', True, (0, 99))
>>> query_schema(schema).column_names
['user_id', 'user_age', 'user_country']
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval.schema.errors import SchemaError, require_schema

__all__ = [
    "PAD",
    "NULL_INDEX",
    "OOV_INDEX",
    "CATEGORICAL",
    "CONTINUOUS",
    "QUERY_TAGS",
    "CANDIDATE_TAGS",
    "kind",
    "is_list",
    "domain",
    "value_count",
    "numpy_dtype",
    "cardinality",
    "embedding_dim",
    "domain_name",
    "item_id_column",
    "user_id_column",
    "require_user_id_column",
    "query_schema",
    "candidate_schema",
    "feature_columns",
    "selected_columns",
]

#: Padding of list columns in batches (ids are >= 0).
PAD = -1
#: Categorify's id of a missing value.
NULL_INDEX = 1
#: Categorify's first out-of-vocabulary id (values not seen in training).
OOV_INDEX = 2

CATEGORICAL = "categorical"
CONTINUOUS = "continuous"
#: The tags whose columns the query tower reads.
QUERY_TAGS = (Tags.USER, Tags.CONTEXT, Tags.SESSION)
#: The tags whose columns the candidate tower reads.
CANDIDATE_TAGS = (Tags.ITEM,)


def is_list(col: ColumnSchema) -> bool:
    """Whether the column holds a list of values per row.

    >>> is_list(ColumnSchema("tags", tags=[Tags.LIST, Tags.CATEGORICAL], dtype="int64", is_list=True))
    True
    """
    return bool(col.is_list) or Tags.LIST in col.tags


def numpy_dtype(col: ColumnSchema):
    """The column's numpy dtype, or None when the schema gives none.

    >>> numpy_dtype(ColumnSchema("x", dtype="float32"))
    dtype('float32')
    """
    dtype = col.dtype
    try:
        if dtype is None or dtype.element_type.value == "unknown":
            return None
        return np.dtype(dtype.to_numpy)
    except Exception:  # a dtype that merlin cannot map to numpy
        return None


def kind(col: ColumnSchema) -> str | None:
    """'categorical', 'continuous' or None (a text column, a raw time).

    The tags decide; without either tag a time column is neither, otherwise a
    numeric dtype decides (integers are categorical, floats continuous), and a
    target without a dtype is continuous.

    >>> kind(ColumnSchema("rating", tags=[Tags.TARGET], dtype="float32"))
    'continuous'
    >>> kind(ColumnSchema("timestamp", tags=[Tags.TIME], dtype="int64")) is None
    True
    """
    if Tags.CATEGORICAL in col.tags:
        return CATEGORICAL
    if Tags.CONTINUOUS in col.tags:
        return CONTINUOUS
    if Tags.TIME in col.tags:  # raw times feed splits; the ETL derives the model's time features
        return None
    dtype = numpy_dtype(col)
    if dtype is not None:
        if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
            return CATEGORICAL
        if np.issubdtype(dtype, np.floating):
            return CONTINUOUS
    if Tags.TARGET in col.tags and dtype is None:
        return CONTINUOUS
    return None


def domain(col: ColumnSchema):
    """(min, max) of the column's domain, or None when the schema gives no max.

    >>> domain(ColumnSchema("x", properties={"domain": {"min": 0, "max": 9}}))
    (0, 9)
    """
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


def value_count(col: ColumnSchema):
    """(min, max) list length; each None when the schema does not give it (merlin writes 0 for that).

    >>> value_count(ColumnSchema("x", is_list=True, properties={"value_count": {"min": 1, "max": 4}}))
    (1, 4)
    """
    vc = col.properties.get("value_count") if col.properties else None
    if vc is None:
        return None, None
    if isinstance(vc, Mapping):
        lo, hi = vc.get("min"), vc.get("max")
    else:
        lo, hi = getattr(vc, "min", None), getattr(vc, "max", None)
    return (int(lo) if lo else None), (int(hi) if hi else None)


def _no_domain(source, column):
    return SchemaError(source, "categorical column without a domain max; run the ETL first "
                               "(sr.etl.fit_transform fills domains from the data) or give "
                               "`domain: {min: 0, max: N}`", column=column, key="domain")


def cardinality(col: ColumnSchema, source: str = "<schema>") -> int:
    """Number of distinct ids of a categorical column: domain max + 1 (ids run 0..max).

    >>> cardinality(ColumnSchema("country", properties={"domain": {"min": 0, "max": 19}}))
    20
    """
    maximum = (col.properties.get("domain") or {}).get("max")
    if maximum is None:
        raise _no_domain(source, col.name)
    return int(maximum) + 1


def embedding_dim(col: ColumnSchema) -> int:
    """Embedding width of a categorical column.

    The column's ``embedding_dim`` when given; otherwise Merlin Models' rule:
    ``2 * cardinality ** 0.25`` rounded up to an integer, then up to a multiple
    of 8, and at least 8 (cardinality 20 -> 8, 3000 -> 16, 1_000_000 -> 64).

    >>> embedding_dim(ColumnSchema("item_id", properties={"domain": {"min": 0, "max": 2999}}))
    16
    """
    if col.properties.get("embedding_dim") is not None:
        return int(col.properties["embedding_dim"])
    n = cardinality(col)
    # smallest integer d >= 2 * n ** 0.25, i.e. d ** 4 >= 16 * n, settled in integers
    # so that a perfect fourth power (n = 4096 -> 16) is not pushed up by float rounding
    dim = math.ceil(2 * n**0.25)
    while (dim - 1) ** 4 >= 16 * n:
        dim -= 1
    while dim**4 < 16 * n:
        dim += 1
    return max(8, -(-dim // 8) * 8)


def domain_name(col: ColumnSchema) -> str:
    """The embedding table a categorical column reads: its domain's name, else its own.

    >>> domain_name(ColumnSchema("liked_genres", properties={"domain": {"max": 18, "name": "genres"}}))
    'genres'
    """
    return (col.properties.get("domain") or {}).get("name") or col.name


def _single_column(schema, tag, source):
    names = schema.select_by_tag(tag).column_names
    if len(names) > 1:
        raise SchemaError(source, f"a second column tagged {tag.value} (the first is {names[0]!r}); "
                                  "expected exactly one", column=names[1], key="tags")
    return names[0] if names else None


def item_id_column(schema: Schema, source: str = "<schema>") -> str:
    """Name of the one column tagged item_id; `SchemaError` if there is none or several.

    >>> item_id_column(Schema([ColumnSchema("sku", tags=[Tags.ITEM_ID])]))
    'sku'
    """
    name = _single_column(schema, Tags.ITEM_ID, source)
    if name is None:
        raise SchemaError(source, "no column is tagged item_id; expected exactly one, e.g. "
                                  "`item_id: {tags: [item_id, categorical], dtype: int64}`", key="tags")
    return name


def user_id_column(schema: Schema, source: str = "<schema>") -> str | None:
    """Name of the column tagged user_id, or None; `SchemaError` if several.

    >>> user_id_column(Schema([ColumnSchema("sku", tags=[Tags.ITEM_ID])])) is None
    True
    """
    return _single_column(schema, Tags.USER_ID, source)


def require_user_id_column(schema: Schema, what: str) -> str:
    """The user-id column, for ``what`` that matches rows to users; an error naming ``what`` without one.

    >>> require_user_id_column(Schema([ColumnSchema("sku", tags=[Tags.ITEM_ID])]), "exclude=")
    Traceback (most recent call last):
    ...
    schemaretrieval.schema.errors.SchemaError: <schema>: key 'tags': exclude= matches rows to users by the column tagged user_id, and the schema has none (its columns: ['sku'])
    """
    name = user_id_column(schema)
    if name is None:
        raise SchemaError("<schema>", f"{what} matches rows to users by the column tagged user_id, and the schema "
                                      f"has none (its columns: {schema.column_names})", key="tags")
    return name


def _on_side(schema: Schema, tags) -> Schema:
    names = [col.name for col in schema
             if any(tag in col.tags for tag in tags) and Tags.TARGET not in col.tags]
    return schema.select_by_name(names) if names else Schema([])


def query_schema(schema: Schema) -> Schema:
    """Columns the query tower reads: tagged user, context or session (ids included), targets excluded.

    >>> s = Schema([ColumnSchema("user_id", tags=[Tags.USER_ID]), ColumnSchema("hour", tags=[Tags.CONTEXT]),
    ...             ColumnSchema("item_id", tags=[Tags.ITEM_ID])])
    >>> query_schema(s).column_names
    ['user_id', 'hour']
    """
    return _on_side(require_schema(schema, "query_schema"), QUERY_TAGS)


def candidate_schema(schema: Schema) -> Schema:
    """Columns the candidate tower reads: tagged item (item_id included), targets excluded.

    >>> s = Schema([ColumnSchema("user_id", tags=[Tags.USER_ID]), ColumnSchema("item_id", tags=[Tags.ITEM_ID])])
    >>> candidate_schema(s).column_names
    ['item_id']
    """
    return _on_side(require_schema(schema, "candidate_schema"), CANDIDATE_TAGS)


def feature_columns(schema: Schema) -> list[ColumnSchema]:
    """The columns batches carry: every categorical or continuous column (targets included).

    >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL]),
    ...             ColumnSchema("title", tags=[Tags.ITEM, Tags.TEXT], dtype="str")])
    >>> [col.name for col in feature_columns(s)]
    ['item_id']
    """
    return [col for col in schema if kind(col) is not None]


def selected_columns(schema: Schema, selector, what: str) -> list[str]:
    """The columns of ``schema`` a Merlin selector names: a column name, a `Tags` (or its
    string), a ColumnSchema or a Schema; ``what`` names the argument in the TypeError.
    Merlin's APIs take any of these wherever they ask for columns (an index, a target).

    >>> schema = Schema([ColumnSchema("item_id", tags=[Tags.ITEM, Tags.ID]), ColumnSchema("title")])
    >>> selected_columns(schema, Tags.ITEM_ID, "index"), selected_columns(schema, "title", "index")
    (['item_id'], ['title'])
    >>> selected_columns(schema, "nope", "index")
    []
    >>> selected_columns(schema, 3, "index")
    Traceback (most recent call last):
    ...
    TypeError: index: expected a column name, Tags, ColumnSchema or Schema, got int
    """
    if isinstance(selector, Schema):
        return selector.column_names
    if isinstance(selector, ColumnSchema):
        return [selector.name]
    if isinstance(selector, Tags):
        return schema.select_by_tag(selector).column_names
    if isinstance(selector, str):
        if selector in schema.column_names:
            return [selector]
        if selector in {tag.value for tag in Tags}:
            return schema.select_by_tag(Tags(selector)).column_names
        return []
    raise TypeError(f"{what}: expected a column name, Tags, ColumnSchema or Schema, got {type(selector).__name__}")
