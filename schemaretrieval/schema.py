"""The YAML schema: loading, saving, validation, and the tag helpers the library uses.

A schema is a plain ``merlin.schema.Schema``; this module only converts between
it and our YAML (or merlin's own ``schema.pbtxt`` / ``schema.json``), checks it,
and answers the questions the rest of the library asks (which column is the
item id, how many embeddings a column needs, which columns feed which tower).
See docs/schema.md for the YAML reference.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import pathlib

import merlin.dtypes as md
import yaml
from merlin.schema import ColumnSchema, Schema, Tags
from merlin.schema.io import proto_utils, schema_bp
from merlin.schema.io.tensorflow_metadata import TensorflowMetadata
from merlin.schema.tags import COMPOUND_TAGS, TAG_COLLISIONS

__all__ = [
    "SchemaError",
    "load_schema",
    "save_schema",
    "schema_from_dict",
    "schema_to_dict",
    "validate_for_retrieval",
    "require_domains",
    "cardinality",
    "embedding_dim",
    "item_id_column",
    "user_id_column",
    "query_schema",
    "candidate_schema",
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
_MERLIN_FORMATS = {
    ".pbtxt": (TensorflowMetadata.from_proto_text, TensorflowMetadata.to_proto_text),
    ".json": (TensorflowMetadata.from_json, TensorflowMetadata.to_json),
}
_MERLIN_FILE_NAMES = ("schema.pbtxt", "schema.json")
_UNSUPPORTED = "unsupported file type; expected .yaml, .yml, .pbtxt, .json or a directory"


class SchemaError(ValueError):
    """A schema that cannot be used: says where (source, line, column, key) and what was expected.

    The message reads ``<source>[: line N][: column 'c'][, key 'k']: <problem; expectation>``;
    the parts are also kept as attributes for code that wants to react to them.

    >>> try:
    ...     schema_from_dict({"columns": {"item_id": {"tags": ["itme"], "dtype": "int64"}}})
    ... except SchemaError as err:
    ...     print(err.column, err.key)
    item_id tags
    """

    def __init__(self, source, message, column=None, key=None, line=None):
        self.source, self.message = str(source), message
        self.column, self.key, self.line = column, key, line
        where = [self.source]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}" + (f", key {key!r}" if key is not None else ""))
        elif key is not None:
            where.append(f"key {key!r}")
        super().__init__(": ".join(where + [message]))

    def __reduce__(self):
        # Dask workers pickle exceptions; the default would call __init__ with the full text.
        return type(self), (self.source, self.message, self.column, self.key, self.line)


# ---------------------------------------------------------------------------- files


def load_schema(path) -> Schema:
    """Read a schema from our YAML, or from merlin's ``schema.pbtxt`` / ``schema.json``.

    ``path`` is a ``.yaml``/``.yml`` file, a ``.pbtxt`` or ``.json`` file written by
    merlin/NVTabular, or a directory holding ``schema.pbtxt`` or ``schema.json``
    (as an NVTabular output directory does). Every source goes through the same
    checks as :func:`schema_from_dict`; problems raise :class:`SchemaError` naming
    the file, the column and the key. The YAML's ``name`` is kept as ``schema.name``.

    >>> schema = load_schema("schemas/synthetic.yaml")
    >>> schema["item_tags"].is_list, cardinality(schema["item_id"])
    (True, 3000)
    """
    path = pathlib.Path(path)
    if path.is_dir():
        found = [path / name for name in _MERLIN_FILE_NAMES if (path / name).is_file()]
        if not found:
            raise SchemaError(path, f"directory holds no {' or '.join(_MERLIN_FILE_NAMES)}")
        path = found[0]
    source, suffix = str(path), path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _read_yaml(path.read_text(), source)
        if data is None:
            raise SchemaError(source, "the file is empty; expected a mapping with `columns:`")
        return schema_from_dict(data, source)
    if suffix in _MERLIN_FORMATS:
        read, _ = _MERLIN_FORMATS[suffix]
        try:
            metadata = read(path.read_text())
            merlin_schema = metadata.to_merlin_schema()
        except Exception as exc:  # protobuf, json and merlin all raise their own types
            raise SchemaError(source, f"not a readable merlin schema file ({exc})") from exc
        return schema_from_dict(_dict_from_merlin_files(metadata, merlin_schema), source)
    raise SchemaError(source, _UNSUPPORTED)


def save_schema(schema: Schema, path) -> None:
    """Write ``schema`` as our YAML (``.yaml``/``.yml``) or as merlin's files.

    ``.pbtxt`` and ``.json`` write that merlin file; a directory (existing, or a
    path without a suffix) gets a ``schema.pbtxt`` as NVTabular writes it. The
    schema is checked first, so whatever is written loads back with :func:`load_schema`.

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "schema.pbtxt")
    >>> save_schema(load_schema("schemas/synthetic.yaml"), out)
    >>> schema_to_dict(load_schema(out)) == schema_to_dict(load_schema("schemas/synthetic.yaml"))
    True
    """
    path = pathlib.Path(path)
    data = schema_to_dict(schema)
    schema = schema_from_dict(data, str(path))
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        # default_flow_style=None writes leaf lists/mappings inline: tags: [item, categorical]
        path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
        return
    if path.is_dir() or not suffix:
        path.mkdir(parents=True, exist_ok=True)
        path, suffix = path / _MERLIN_FILE_NAMES[0], ".pbtxt"
    if suffix not in _MERLIN_FORMATS:
        raise SchemaError(path, _UNSUPPORTED)
    _, write = _MERLIN_FORMATS[suffix]
    path.write_text(write(_merlin_files_metadata(schema)))


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which YAML otherwise resolves by keeping the last."""

    def __init__(self, stream, source):
        super().__init__(stream)
        self.source = source
        self.paths = {}  # id(mapping node) -> keys leading to it, so an error can name the column

    def construct_mapping(self, node, deep=False):
        path = self.paths.get(id(node), ())
        first_line = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                seen = key in first_line
            except TypeError:  # unhashable key: SafeLoader reports it below
                continue
            if seen:
                raise _duplicate_key(self.source, path, key, line, first_line[key])
            first_line[key] = line
            self.paths[id(value_node)] = path + (key,)
        return super().construct_mapping(node, deep=deep)


def _duplicate_key(source, path, key, line, first_line):
    where = f"(first on line {first_line}); YAML would silently keep only the last one"
    if path == ("columns",):
        return SchemaError(source, f"column defined twice {where}", column=key, line=line)
    if path[:1] == ("columns",):
        dotted = ".".join(str(part) for part in path[2:] + (key,))
        return SchemaError(source, f"key given twice {where}", column=path[1], key=dotted, line=line)
    dotted = ".".join(str(part) for part in path + (key,))
    return SchemaError(source, f"key given twice {where}", key=dotted, line=line)


def _read_yaml(text, source):
    loader = _YamlLoader(text, source)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        raise SchemaError(source, message, line=mark.line + 1 if mark else None) from exc
    finally:
        loader.dispose()


def _merlin_files_metadata(schema):
    metadata = TensorflowMetadata.from_merlin_schema(schema)
    for feature, col in zip(metadata.proto_schema.feature, schema.column_schemas.values()):
        # merlin's writer leaves string and bool features untyped, so its reader gets
        # dtype "unknown" back; record them the tensorflow-metadata way instead.
        if col.dtype.element_type == md.string.element_type:
            feature.type = schema_bp.FeatureType.BYTES
        elif col.dtype.element_type == md.boolean.element_type:
            feature.type = schema_bp.FeatureType.INT
            # an empty BoolDomain is not serialised, hence the name
            feature.bool_domain = schema_bp.BoolDomain(name=col.name)
    name = getattr(schema, "name", None)
    if name:
        # merlin has no schema name; the schema-level annotation is ignored by its reader
        metadata.proto_schema.annotation = schema_bp.Annotation(
            extra_metadata=[schema_bp.Any().from_dict({"name": name})]
        )
    return metadata


def _dict_from_merlin_files(metadata, merlin_schema):
    data = schema_to_dict(merlin_schema)
    for feature in metadata.proto_schema.feature:
        if proto_utils.has_field(feature, "bool_domain"):
            data["columns"][feature.name]["dtype"] = "bool"
    for meta in metadata.proto_schema.annotation.extra_metadata:
        if meta.type_url.endswith("google.protobuf.Struct") and "name" in meta.to_dict():
            data = {"name": meta.to_dict()["name"], "columns": data["columns"]}
    # merlin keeps properties in a protobuf Struct, where every number is a float
    # (embedding_dim 16 comes back as 16.0); float columns' domains are made floats again
    # by schema_from_dict.
    return _whole_numbers_as_int(data)


def _whole_numbers_as_int(value):
    if isinstance(value, dict):
        return {k: _whole_numbers_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_int(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------- dict <-> Schema


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
            raise SchemaError(source, f"unknown top-level key{_did_you_mean(key, ('name', 'columns'))}; "
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
            raise err(f"unknown key{_did_you_mean(key, COLUMN_KEYS)}; allowed keys: {', '.join(COLUMN_KEYS)}",
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
            raise err(f"unknown tag{_did_you_mean(tag, KNOWN_TAGS)} (known tags: {', '.join(KNOWN_TAGS)})",
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


def _did_you_mean(word, choices):
    # two suggestions: a swap of letters ties ('itme' is as close to 'item' as to 'time')
    close = " or ".join(repr(c) for c in difflib.get_close_matches(str(word), choices, n=2))
    return f" {word!r} (did you mean {close}?)" if close else f" {word!r}"


def schema_to_dict(schema: Schema) -> dict:
    """The schema as the YAML's content in plain python (JSON-serialisable).

    The inverse of :func:`schema_from_dict`, used for Keras ``get_config``:
    ``schema_from_dict(schema_to_dict(s)) == s``. Tags are written with merlin's
    expansion undone ({user, id} -> user_id, {item, id} -> item_id) in a fixed
    order, list columns always carry the ``list`` tag, and every property without
    a key of its own lands under ``properties``.

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


# ---------------------------------------------------------------------------- checks for models


def validate_for_retrieval(schema: Schema, source: str = "<schema>") -> None:
    """Check that ``schema`` can feed a two-tower model: one item id, at least one query feature.

    Raises :class:`SchemaError` when no column (or more than one) is tagged item_id,
    or when no column tagged user (user_id counts) other than a target exists.

    >>> validate_for_retrieval(load_schema("schemas/synthetic.yaml"))
    """
    item_id_column(schema, source)
    if not query_schema(schema).column_names:
        raise SchemaError(source, "no query-side column; expected at least one column tagged user "
                                  "or user_id that is not a target", key="tags")


def require_domains(schema: Schema, source: str = "<schema>") -> None:
    """Check that every categorical column has a cardinality (a domain max).

    Hand-written YAML may leave domains out until the ETL has seen the data;
    a model cannot size its embedding tables without them.

    >>> require_domains(load_schema("schemas/synthetic.yaml"))
    """
    for col in schema.select_by_tag(Tags.CATEGORICAL):
        if (col.properties.get("domain") or {}).get("max") is None:
            raise _no_domain(source, col.name)


def _no_domain(source, column):
    return SchemaError(source, "categorical column without a domain max; run the ETL first "
                               "(sr.etl.fit_transform fills domains from the data) or give "
                               "`domain: {min: 0, max: N}`", column=column, key="domain")


# ---------------------------------------------------------------------------- helpers


def cardinality(col: ColumnSchema) -> int:
    """Number of distinct ids of a categorical column: domain max + 1 (ids run 0..max).

    >>> cardinality(load_schema("schemas/synthetic.yaml")["user_country"])
    20
    """
    maximum = (col.properties.get("domain") or {}).get("max")
    if maximum is None:
        raise _no_domain("<schema>", col.name)
    return int(maximum) + 1


def embedding_dim(col: ColumnSchema) -> int:
    """Embedding width of a categorical column.

    The column's ``embedding_dim`` when given; otherwise Merlin Models' rule:
    ``2 * cardinality ** 0.25`` rounded up to an integer, then up to a multiple
    of 8, and at least 8 (cardinality 20 -> 8, 3000 -> 16, 1_000_000 -> 64).

    >>> schema = load_schema("schemas/synthetic.yaml")
    >>> embedding_dim(schema["item_id"]), embedding_dim(schema["user_country"])
    (16, 8)
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


def _single_column(schema, tag, source):
    names = schema.select_by_tag(tag).column_names
    if len(names) > 1:
        raise SchemaError(source, f"a second column tagged {tag.value} (the first is {names[0]!r}); "
                                  "expected exactly one", column=names[1], key="tags")
    return names[0] if names else None


def item_id_column(schema: Schema, source: str = "<schema>") -> str:
    """Name of the one column tagged item_id; :class:`SchemaError` if there is none or several.

    >>> item_id_column(load_schema("schemas/synthetic.yaml"))
    'item_id'
    """
    name = _single_column(schema, Tags.ITEM_ID, source)
    if name is None:
        raise SchemaError(source, "no column is tagged item_id; expected exactly one, e.g. "
                                  "`item_id: {tags: [item_id, categorical], dtype: int64}`", key="tags")
    return name


def user_id_column(schema: Schema, source: str = "<schema>") -> str | None:
    """Name of the column tagged user_id, or None; :class:`SchemaError` if several.

    >>> user_id_column(load_schema("schemas/synthetic.yaml"))
    'user_id'
    """
    return _single_column(schema, Tags.USER_ID, source)


def query_schema(schema: Schema) -> Schema:
    """Columns the query tower reads: tagged user (user_id included), targets excluded.

    >>> query_schema(load_schema("schemas/synthetic.yaml")).column_names
    ['user_id', 'user_age', 'user_country']
    """
    return schema.select_by_tag(Tags.USER).excluding_by_tag(Tags.TARGET)


def candidate_schema(schema: Schema) -> Schema:
    """Columns the candidate tower reads: tagged item (item_id included), targets excluded.

    >>> candidate_schema(load_schema("schemas/synthetic.yaml")).column_names
    ['item_id', 'item_category', 'item_tags', 'item_price']
    """
    return schema.select_by_tag(Tags.ITEM).excluding_by_tag(Tags.TARGET)
