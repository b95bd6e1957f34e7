"""The YAML schema's content checked into a ``merlin.schema.Schema``, and back.

``schema_from_dict`` checks every key of every column (tags, dtype, domain,
value_count, embedding_dim, transform, properties) and raises `SchemaError`
naming the column and key, with a did-you-mean for misspelt names.
``validate_for_retrieval``, ``require_domains`` and ``check_towers`` are the
checks a model build runs: one item id, a query side, domains for every
embedding table, and every column read by a tower or refused.
See docs/schema.md for the YAML reference.
"""

from __future__ import annotations

import copy
import functools

import merlin.dtypes as md
from merlin.schema import ColumnSchema, Schema, Tags
from merlin.schema.tags import COMPOUND_TAGS, TAG_COLLISIONS

from schemaretrieval.schema import columns
from schemaretrieval.schema.errors import SchemaError, did_you_mean

__all__ = [
    "COLUMN_KEYS",
    "DTYPES",
    "KNOWN_TAGS",
    "schema_from_dict",
    "schema_to_dict",
    "validate_for_retrieval",
    "require_domains",
    "check_towers",
]

COLUMN_KEYS = ("tags", "dtype", "domain", "value_count", "embedding_dim", "transform", "properties")
DTYPES = {
    "int32": md.int32,
    "int64": md.int64,
    "float32": md.float32,
    "float64": md.float64,
    "string": md.string,
    "bool": md.boolean,
}
KNOWN_TAGS = sorted(tag.value for tag in Tags)
# The order tags are written in: who the column belongs to, then what it holds.
# Tags are a set in merlin, so a fixed order is what makes YAML -> Schema -> YAML stable.
_TAG_ORDER = {
    tag: i
    for i, tag in enumerate(
        "user_id item_id session_id user item session context id "
        "target regression classification binary_classification multi_class_classification "
        "binary multi_class categorical continuous embedding text_tokenized text tokenized "
        "time list sequence".split()
    )
}
_FEATURE_TYPES = {"categorical", "continuous", "embedding"}
_UNTYPED_OK = {"target", "time", "text"}
# Property names with their own YAML key, or that merlin's file writer uses itself.
_RESERVED_PROPERTIES = set(COLUMN_KEYS) | {"_dims", "is_list", "is_ragged", "dtype_item_size"}


def schema_from_dict(d: dict, source: str = "<dict>") -> Schema:
    """Build and check a merlin Schema from the YAML's content as plain python.

    ``d`` is ``{"name": ..., "columns": {column: {key: value}}}`` with the column
    keys tags, dtype, domain, value_count, embedding_dim, transform and properties
    (docs/schema.md). Besides the shape of every key, two rules are enforced:
    tags must not clash as merlin defines it (categorical / continuous / embedding
    are exclusive, an id is never continuous), and every column needs a feature
    type, one of the tags categorical, continuous or embedding, unless it is tagged
    target, time or text (those are read by the loss, the ETL or a tokenizer, not
    embedded as they are). ``source`` names the origin in every :class:`SchemaError`.

    >>> schema = schema_from_dict({"columns": {
    ...     "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
    ...                 "domain": {"min": 0, "max": 99}}}})
    >>> sorted(tag.value for tag in schema["item_id"].tags)
    ['categorical', 'id', 'item']
    """
    if not isinstance(d, dict):
        raise SchemaError(source, f"the top level is a {type(d).__name__}; "
                                  "expected a mapping with `columns:`")
    for key in d:
        if key not in ("name", "columns"):
            raise SchemaError(source, f"unknown top-level key{did_you_mean(key, ('name', 'columns'))}; "
                                      "expected only `name` and `columns`", key=key)
    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise SchemaError(source, f"expected a string, got {name!r}", key="name")
    columns = d.get("columns")
    if not isinstance(columns, dict) or not columns:
        got = "missing" if "columns" not in d else f"got {columns!r}"
        raise SchemaError(source, f"{got}; expected a mapping from column name to its tags, dtype, ...",
                          key="columns")
    schema = Schema([_column_from_dict(source, col, spec) for col, spec in columns.items()])
    schema.name = name  # merlin's Schema has no name; kept so YAML -> Schema -> YAML is identical
    return schema


def _column_from_dict(source, name, spec):
    if not isinstance(name, str):
        raise SchemaError(source, f"column names must be strings, got {name!r}", key="columns")
    err = functools.partial(SchemaError, source, column=name)
    if not isinstance(spec, dict):
        raise err(f"expected a mapping with `tags:` and `dtype:`, got {spec!r}")
    for key in spec:
        if key not in COLUMN_KEYS:
            raise err(f"unknown key{did_you_mean(key, COLUMN_KEYS)}; allowed keys: {', '.join(COLUMN_KEYS)}",
                      key=str(key))
    tags = _check_tags(spec.get("tags"), err)
    dtype = spec.get("dtype")
    if not (isinstance(dtype, str) and dtype in DTYPES):
        got = "missing" if dtype is None else f"unknown dtype {dtype!r}"
        raise err(f"{got}; allowed dtypes: {', '.join(DTYPES)}", key="dtype")

    properties = {}
    if "domain" in spec:
        properties["domain"] = _check_domain(spec["domain"], dtype, err)
    is_list = "list" in tags
    if "value_count" in spec:
        if not is_list:
            raise err("only list columns have a value_count; expected the tag `list` or no value_count",
                      key="value_count")
        properties["value_count"] = _check_bounds(
            spec["value_count"], "value_count", "non-negative integers", _is_count, err)
    if "embedding_dim" in spec:
        dim = spec["embedding_dim"]
        if not (_is_int(dim) and dim > 0):
            raise err(f"expected a positive integer, got {dim!r}", key="embedding_dim")
        if "categorical" not in tags:
            raise err("only categorical columns are embedded; expected the tag `categorical`",
                      key="embedding_dim")
        properties["embedding_dim"] = dim
    if "transform" in spec:
        properties["transform"] = _plain(spec["transform"], "transform", err)
    extra = spec.get("properties", {})
    if not isinstance(extra, dict):
        raise err(f"expected a mapping, got {extra!r}", key="properties")
    for key in extra:
        if key in _RESERVED_PROPERTIES:
            raise err(f"{key!r} is reserved; expected other names (give {key} as its own key)",
                      key="properties")
    properties.update(_plain(extra, "properties", err))

    value_count = properties.get("value_count")
    is_ragged = is_list and (value_count is None or value_count["min"] != value_count["max"])
    return ColumnSchema(name, tags=list(tags), properties=properties, dtype=DTYPES[dtype],
                        is_list=is_list, is_ragged=is_ragged)


def _check_tags(tags, err):
    if not isinstance(tags, list) or not tags:
        raise err(f"expected a non-empty list of tags such as [item, categorical], got {tags!r}", key="tags")
    for tag in tags:
        if not (isinstance(tag, str) and tag in _TAG_ORDER):
            raise err(f"unknown tag{did_you_mean(tag, KNOWN_TAGS)} (known tags: {', '.join(KNOWN_TAGS)})",
                      key="tags")
    atoms = {part.value for tag in tags for part in COMPOUND_TAGS.get(Tags(tag), [Tags(tag)])}
    for tag, clashes in TAG_COLLISIONS.items():
        for other in clashes:
            if tag.value in atoms and other.value in atoms:
                raise err(f"clashing tags {tag.value!r} and {other.value!r}: expected at most one of "
                          "categorical, continuous, embedding, and no id that is continuous or an embedding",
                          key="tags")
    if not atoms & _FEATURE_TYPES and not atoms & _UNTYPED_OK:
        raise err("no feature type; expected one of the tags categorical, continuous or embedding "
                  "(only target, time and text columns may go without)", key="tags")
    return set(tags)


def _check_domain(domain, dtype, err):
    if dtype.startswith("int"):
        bounds = _check_bounds(domain, "domain", "integers", _is_int, err, allow_name=True)
    elif dtype.startswith("float"):
        bounds = _check_bounds(domain, "domain", "numbers", _is_number, err, allow_name=True)
        bounds.update(min=float(bounds["min"]), max=float(bounds["max"]))
    else:
        raise err(f"a {dtype} column has no domain; expected a numeric dtype or no domain", key="domain")
    return bounds


def _check_bounds(value, key, what, is_valid, err, allow_name=False):
    allowed = {"min", "max", "name"} if allow_name else {"min", "max"}
    shape = "{min: ..., max: ...%s}" % (", name: ..." if allow_name else "")
    if (not isinstance(value, dict) or not {"min", "max"} <= set(value) or set(value) - allowed
            or not (is_valid(value["min"]) and is_valid(value["max"]))
            or not isinstance(value.get("name", ""), str)):
        raise err(f"expected {shape} with {what}, got {value!r}", key=key)
    if value["min"] > value["max"]:
        raise err(f"min {value['min']!r} > max {value['max']!r}; expected min <= max", key=key)
    return dict(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value):
    return _is_int(value) and value >= 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value, key, err):
    """A copy of ``value``, which must be what both JSON (Keras configs) and merlin's files hold."""
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise err(f"expected string keys in mappings, got {k!r}", key=key)
        return {k: _plain(v, key, err) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, key, err) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise err(f"expected plain values (mappings, lists, strings, numbers, booleans), "
              f"got {type(value).__name__} {value!r}", key=key)


def schema_to_dict(schema: Schema) -> dict:
    """The schema as the YAML's content in plain python (JSON-serialisable).

    The inverse of :func:`schema_from_dict`, used for Keras ``get_config``:
    ``schema_from_dict(schema_to_dict(s)) == s``. Tags are written with merlin's
    expansion undone ({user, id} -> user_id, {item, id} -> item_id) in a fixed
    order, list columns always carry the ``list`` tag, and every property without
    a key of its own lands under ``properties``.

    >>> from schemaretrieval.schema import load_schema
    >>> d = schema_to_dict(load_schema("schemas/synthetic.yaml"))
    >>> d["columns"]["item_tags"]
    {'tags': ['item', 'categorical', 'list'], 'dtype': 'int64', 'domain': {'min': 0, 'max': 99}, \
'value_count': {'min': 1, 'max': 4}}
    """
    data = {"name": schema.name} if getattr(schema, "name", None) else {}
    data["columns"] = {col.name: _column_to_dict(col) for col in schema}
    return data


def _column_to_dict(col):
    properties = copy.deepcopy(col.properties)
    spec = {"tags": _yaml_tags(col), "dtype": _dtype_name(col.dtype)}
    domain = properties.pop("domain", None)
    if domain:
        spec["domain"] = {k: domain[k] for k in ("min", "max", "name") if domain.get(k) is not None}
    value_count = properties.pop("value_count", None)
    # merlin gives every list column a value_count; max None means "lengths unknown"
    if value_count and value_count.get("max") is not None:
        spec["value_count"] = {"min": value_count.get("min") or 0, "max": value_count["max"]}
    if properties.get("embedding_dim") is not None:
        spec["embedding_dim"] = int(properties.pop("embedding_dim"))
    if "transform" in properties:
        spec["transform"] = properties.pop("transform")
    if properties:
        spec["properties"] = properties
    return spec


def _yaml_tags(col):
    names = {tag.value if isinstance(tag, Tags) else str(tag) for tag in col.tags}
    if col.is_list:
        names.add("list")
    atoms = set(names)
    for compound, parts in COMPOUND_TAGS.items():
        part_names = {part.value for part in parts}
        if part_names <= atoms:
            names = (names - part_names) | {compound.value}
    return sorted(names, key=lambda tag: (_TAG_ORDER.get(tag, len(_TAG_ORDER)), tag))


def _dtype_name(dtype):
    return next((name for name, known in DTYPES.items() if dtype.without_shape == known), dtype.name)


def validate_for_retrieval(schema: Schema, source: str = "<schema>") -> None:
    """Check that ``schema`` can feed a two-tower model: one item id, at least one query feature.

    Raises `SchemaError` when no column (or more than one) is tagged item_id,
    or when no column tagged user, context or session (their ids count) other
    than a target exists.

    >>> from schemaretrieval.schema import load_schema
    >>> validate_for_retrieval(load_schema("schemas/synthetic.yaml"))
    """
    columns.item_id_column(schema, source)
    if not columns.query_schema(schema).column_names:
        raise SchemaError(source, "no query-side column; expected at least one column tagged user, "
                                  "user_id, context or session that is not a target", key="tags")


def require_domains(schema: Schema, source: str = "<schema>") -> None:
    """Check that every categorical column holds ids an embedding table reads: a cardinality
    (a domain max), a domain from 0 or above, and an integer dtype.

    Hand-written YAML may leave domains out, and describe raw columns (a float
    year, string ids), until the ETL has seen the data and encoded them; a
    model cannot size or read its embedding tables without that.

    >>> from schemaretrieval.schema import load_schema
    >>> require_domains(load_schema("schemas/synthetic.yaml"))
    """
    for col in schema.select_by_tag(Tags.CATEGORICAL):
        domain = col.properties.get("domain") or {}
        if domain.get("max") is None:
            columns.cardinality(col, source)  # raises, naming the column
        if col.dtype.element_type.value == "float":
            raise SchemaError(source, f"a categorical column the towers read holds integer ids, got dtype "
                              f"{_dtype_name(col.dtype)}; run the ETL first (it encodes the column as int64 ids)",
                              column=col.name, key="dtype")
        if domain.get("min") is not None and domain["min"] < 0:
            # the table's rows run from 0: a negative id would read row 0, id 0's vector
            raise SchemaError(source, f"min {domain['min']!r} < 0; the ids of a categorical column are rows of its "
                              "embedding table, from 0 (the ETL encodes raw ids so)", column=col.name, key="domain")



# Tags whose columns no tower reads as they are: say which, and what to do instead.
_NOT_READ = {
    Tags.TEXT: "text is not embedded as it is; tokenize it in the ETL into a list of ids (tags [categorical, list])",
    Tags.TEXT_TOKENIZED: "tokenized text needs a sequence encoder, which no tower has; give it as a list of "
                         "ids (tags [categorical, list]) to read their mean",
    Tags.TOKENIZED: "tokenized values need a sequence encoder, which no tower has; give them as a list of "
                    "ids (tags [categorical, list]) to read their mean",
    Tags.EMBEDDING: "pretrained vectors are not read by a tower in this version; give ids (categorical) "
                    "or numbers (continuous)",
    Tags.SEQUENCE: "sequences need a sequence encoder, which no tower has; give a list of ids "
                   "(tags [categorical, list]) to read their mean",
    Tags.TIME: "a raw time is not a feature; derive features from it in the ETL (transform: {features: "
               "[hour, day_of_week, ...]}) or tag it categorical/continuous",
}


def check_towers(schema: Schema, source: str = "<schema>") -> None:
    """Every column is read by a tower, or is not a feature; anything else is a `SchemaError`.

    - Tagged ``user``, ``context`` or ``session`` (``user_id``, ``session_id``
      included): read by the query tower; tagged ``item`` (``item_id``): by
      the candidate tower. Such a column needs a tag some input reader reads
      (the registry's ``"input"`` kind: ``categorical``, a list of ids
      included, and ``continuous``, unless a user registers more).
    - Targets are read by no tower (they are labels, not features); neither
      are a raw ``time`` column and a ``text`` column tagged for no tower
      (the ETL derives time features; text is kept for display).
    - Refused, naming the column and the tag: a tower's column whose tags no
      reader reads (text, tokenized, embedding, sequence, a raw time); a
      continuous list; a column tagged for both towers; a column with a
      reader's tag but tagged for no tower (it would be read by neither).

    >>> check_towers(schema_from_dict({"columns": {
    ...     "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
    ...     "title": {"tags": ["item", "text"], "dtype": "string"}}}))
    Traceback (most recent call last):
    ...
    schemaretrieval.schema.errors.SchemaError: <schema>: column 'title', key 'tags': tag 'text' on the candidate tower's side: text is not embedded as it is; tokenize it in the ETL into a list of ids (tags [categorical, list])
    """
    from schemaretrieval import registry

    readable = {Tags(name) for name in registry.names("input")}
    for col in schema:
        if Tags.TARGET in col.tags:
            continue
        query = any(tag in col.tags for tag in columns.QUERY_TAGS)
        candidate = any(tag in col.tags for tag in columns.CANDIDATE_TAGS)
        read_as = [tag for tag in readable if tag in col.tags]
        if query and candidate:
            raise SchemaError(source, "tagged for both towers (user/context/session and item); expected one "
                                      "side per column (copy the column to feed both)", column=col.name, key="tags")
        if not (query or candidate):
            if read_as:
                raise SchemaError(
                    source, f"a {read_as[0].value} column tagged for no tower, so neither would read it; tag it "
                            "user, context or session (query tower) or item (candidate tower)",
                    column=col.name, key="tags")
            continue
        side = "query" if query else "candidate"
        if not read_as:
            for tag, why in _NOT_READ.items():
                if tag in col.tags:
                    raise SchemaError(source, f"tag {tag.value!r} on the {side} tower's side: {why}",
                                      column=col.name, key="tags")
            raise SchemaError(source, f"a {side} tower column needs a tag a reader reads: "
                                      f"{', '.join(sorted(t.value for t in readable))}", column=col.name, key="tags")
        if read_as == [Tags.CONTINUOUS] and columns.is_list(col):
            raise SchemaError(source, "a continuous list is not read by a tower; expected a list of ids "
                                      "(categorical) or one number per row", column=col.name, key="tags")
