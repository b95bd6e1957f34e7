"""Schema files: our YAML, and merlin's ``schema.pbtxt`` / ``schema.json``.

A schema is a plain ``merlin.schema.Schema``; this module reads and writes it.
Every source goes through the checks of `validation.schema_from_dict`, so a
problem raises `SchemaError` naming the file, the line, the column and the key.
See docs/schema.md for the YAML reference.
"""

from __future__ import annotations

import pathlib

import merlin.dtypes as md
import yaml
from merlin.schema import Schema
from merlin.schema.io import proto_utils, schema_bp
from merlin.schema.io.tensorflow_metadata import TensorflowMetadata

from schemaretrieval.schema.errors import SchemaError, did_you_mean, require_schema
from schemaretrieval.schema.validation import schema_from_dict, schema_to_dict

__all__ = ["load_schema", "save_schema"]

_MERLIN_FORMATS = {
    ".pbtxt": (TensorflowMetadata.from_proto_text, TensorflowMetadata.to_proto_text),
    ".json": (TensorflowMetadata.from_json, TensorflowMetadata.to_json),
}
_MERLIN_FILE_NAMES = ("schema.pbtxt", "schema.json")
_UNSUPPORTED = "unsupported file type; expected .yaml, .yml, .pbtxt, .json or a directory"


def load_schema(path) -> Schema:
    """Read a schema from our YAML, or from merlin's ``schema.pbtxt`` / ``schema.json``.

    ``path`` is a ``.yaml``/``.yml`` file, a ``.pbtxt`` or ``.json`` file written by
    merlin/NVTabular, or a directory holding ``schema.pbtxt`` or ``schema.json``
    (as an NVTabular output directory does). Every source goes through the same
    checks as `schema_from_dict`; problems raise `SchemaError` naming
    the file, the column and the key. The YAML's ``name`` is kept as ``schema.name``.

    >>> schema = load_schema("schemas/synthetic.yaml")
    >>> schema["item_tags"].is_list, schema["item_id"].properties["domain"]["max"]
    (True, 2999)
    """
    path = pathlib.Path(path)
    if path.is_dir():
        found = [path / name for name in _MERLIN_FILE_NAMES if (path / name).is_file()]
        if not found:
            raise SchemaError(path, f"directory holds no {' or '.join(_MERLIN_FILE_NAMES)}")
        path = found[0]
    source, suffix = str(path), path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _read_yaml(_read_text(path, source), source)
        if data is None:
            raise SchemaError(source, "the file is empty; expected a mapping with `columns:`")
        return schema_from_dict(data, source)
    if suffix in _MERLIN_FORMATS:
        read, _ = _MERLIN_FORMATS[suffix]
        text = _read_text(path, source)
        if suffix == ".json":
            _check_json_keys(text, source)
        try:
            metadata = read(text)
            merlin_schema = metadata.to_merlin_schema()
        except Exception as exc:  # protobuf, json and merlin all raise their own types
            raise SchemaError(source, f"not a readable merlin schema file ({exc})") from exc
        _check_features_once(metadata, source)
        return schema_from_dict(_dict_from_merlin_files(metadata, merlin_schema), source)
    raise SchemaError(source, _UNSUPPORTED)


def save_schema(schema: Schema, path) -> None:
    """Write ``schema`` as our YAML (``.yaml``/``.yml``) or as merlin's files.

    ``.pbtxt`` and ``.json`` write that merlin file; a directory (existing, or a
    path without a suffix) gets a ``schema.pbtxt`` as NVTabular writes it. The
    schema is checked first, so whatever is written loads back with `load_schema`.

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "schema.pbtxt")
    >>> save_schema(load_schema("schemas/synthetic.yaml"), out)
    >>> schema_to_dict(load_schema(out)) == schema_to_dict(load_schema("schemas/synthetic.yaml"))
    True
    """
    path = pathlib.Path(path)
    data = schema_to_dict(require_schema(schema, "save_schema"))
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


def _read_text(path, source):
    """The file's text, or a SchemaError naming the line and byte that are not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise SchemaError(source, f"not UTF-8 text: byte 0x{byte:02x} at offset {exc.start} does not decode; "
                          "save the file as UTF-8", line=raw[:exc.start].count(b"\n") + 1) from None


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


def _check_features_once(metadata, source):
    """merlin keeps the last of a feature listed twice, as YAML would a column: an error, as for YAML."""
    seen = set()
    for feature in metadata.proto_schema.feature:
        if feature.name in seen:
            raise SchemaError(source, "feature listed twice; merlin would silently keep only the last one",
                              column=feature.name)
        seen.add(feature.name)


def _check_json_keys(text, source):
    """The JSON reader drops a key it does not know (``intDomian``: the column loses its domain):
    each feature's keys must be the schema proto's, in either of its spellings."""
    import dataclasses
    import json

    def spellings(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        return set(names) | {n.split("_")[0] + "".join(w.title() for w in n.split("_")[1:]) for n in names}

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SchemaError(source, f"not a readable merlin schema file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("feature", []), list):
        return  # the reader says what is wrong
    known = {"schema": spellings(schema_bp.Schema), "feature": spellings(schema_bp.Feature)}
    for key in data:
        if key not in known["schema"]:
            raise SchemaError(source, f"unknown key{did_you_mean(key, sorted(known['schema']))}; merlin's "
                                      "reader would drop it", key=key)
    for feature in data.get("feature", []):
        for key in feature if isinstance(feature, dict) else ():
            if key not in known["feature"]:
                raise SchemaError(source, f"unknown key{did_you_mean(key, sorted(known['feature']))}; "
                                          "merlin's reader would drop it", column=feature.get("name"), key=key)


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
