import json
import pathlib
import pickle
import textwrap

import pytest
import yaml
from merlin.schema import Schema, Tags

from schemaretrieval.schema import (
    SchemaError,
    candidate_schema,
    cardinality,
    embedding_dim,
    item_id_column,
    load_schema,
    query_schema,
    require_domains,
    save_schema,
    schema_from_dict,
    schema_to_dict,
    user_id_column,
    validate_for_retrieval,
)

SYNTHETIC = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "synthetic.yaml"

# Every key, a list column of each kind, a float domain, a domain name, bool and
# string dtypes, a transform mapping and free properties: what must survive merlin's files.
FULL = """\
name: full
columns:
  user_id: {tags: [user_id, categorical], dtype: int64, domain: {min: 0, max: 99, name: user_id}, embedding_dim: 32}
  user_age: {tags: [user, continuous], dtype: float64, domain: {min: 0.5, max: 99.5}}
  user_flag: {tags: [user, categorical], dtype: bool}
  user_bio:
    tags: [user, text]
    dtype: string
    transform: {kind: tokenize, vocab: 1000, lowercase: true, scale: 0.5, steps: [a, 1, 2.5, null]}
  item_id:
    tags: [item_id, categorical]
    dtype: int32
    domain: {min: 0, max: 2999}
    properties: {source: catalog, freq_threshold: 3, nested: {a: [1, 2]}}
  item_tags: {tags: [item, categorical, list], dtype: int64, domain: {min: 0, max: 9}, value_count: {min: 0, max: 4}}
  item_fixed: {tags: [item, categorical, list], dtype: int64, domain: {min: 0, max: 9}, value_count: {min: 3, max: 3}}
  item_any_length: {tags: [item, categorical, list], dtype: int64}
  ts: {tags: [context, time], dtype: int64}
  rating: {tags: [target, continuous], dtype: float32, domain: {min: 0.0, max: 1.0}}
"""


def typed(d):
    """JSON text that tells 3 from 3.0, so round trips are compared type for type."""
    return json.dumps(d, sort_keys=True)


def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text, name="bad.yaml"):
    path = write(tmp_path, text, name)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(path) in str(info.value)
    return info.value


def column_yaml(spec, column="item_id"):
    """A valid schema with the column ``column`` replaced by ``spec``."""
    return f"""\
        columns:
          user_id: {{tags: [user_id, categorical], dtype: int64}}
          {column}: {spec}
        """


# ---------------------------------------------------------------- the bundled schema


def test_synthetic_columns_tags_domains():
    schema = load_schema(SYNTHETIC)
    assert schema.column_names == [
        "user_id", "user_age", "user_country", "item_id",
        "item_category", "item_tags", "item_price", "rating",
    ]
    assert schema.name == "synthetic"
    assert set(schema["user_id"].tags) == {Tags.USER, Tags.ID, Tags.CATEGORICAL}
    assert set(schema["item_tags"].tags) == {Tags.ITEM, Tags.CATEGORICAL, Tags.LIST}
    assert set(schema["rating"].tags) == {Tags.TARGET, Tags.CONTINUOUS}
    assert schema["item_id"].properties["domain"] == {"min": 0, "max": 2999}
    assert schema["user_age"].properties["domain"] == {"min": 0.0, "max": 1.0}
    assert schema["item_id"].dtype.name == "int64" and schema["user_age"].dtype.name == "float32"
    assert [cardinality(schema[c]) for c in ("user_id", "user_country", "item_id", "item_tags")] == [
        2000, 20, 3000, 100]
    assert [c for c in schema.column_names if schema[c].is_list] == ["item_tags"]
    assert schema["item_tags"].is_ragged
    assert schema["item_tags"].properties["value_count"] == {"min": 1, "max": 4}


def test_synthetic_towers_and_ids():
    schema = load_schema(SYNTHETIC)
    assert query_schema(schema).column_names == ["user_id", "user_age", "user_country"]
    assert candidate_schema(schema).column_names == [
        "item_id", "item_category", "item_tags", "item_price"]
    assert item_id_column(schema) == "item_id"
    assert user_id_column(schema) == "user_id"
    validate_for_retrieval(schema)
    require_domains(schema)


def test_synthetic_round_trips_to_identical_yaml(tmp_path):
    original = yaml.safe_load(SYNTHETIC.read_text())
    assert schema_to_dict(load_schema(SYNTHETIC)) == original
    save_schema(load_schema(SYNTHETIC), tmp_path / "again.yaml")
    assert yaml.safe_load((tmp_path / "again.yaml").read_text()) == original


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("target", ["schema.pbtxt", "schema.json", "outdir", "copy.yml"])
def test_round_trip_through_files(tmp_path, target):
    source = write(tmp_path, FULL, "full.yaml")
    original = yaml.safe_load(FULL)
    schema = load_schema(source)
    assert typed(schema_to_dict(schema)) == typed(original)

    save_schema(schema, tmp_path / target)
    again = load_schema(tmp_path / target)
    assert again == schema
    assert typed(schema_to_dict(again)) == typed(original)


def test_merlin_files_are_what_merlin_writes(tmp_path):
    schema = load_schema(write(tmp_path, FULL, "full.yaml"))
    save_schema(schema, tmp_path / "schema.pbtxt")
    text = (tmp_path / "schema.pbtxt").read_text()
    # merlin's own layout: tags and properties live in the feature annotations
    assert 'tag: "categorical"' in text and 'key: "transform"' in text
    assert "float_domain" in text and "value_count" in text


def test_directory_prefers_pbtxt_and_reads_json(tmp_path):
    schema = load_schema(SYNTHETIC)
    save_schema(schema, tmp_path / "schema.json")
    assert load_schema(tmp_path) == schema
    save_schema(schema, tmp_path / "schema.pbtxt")
    assert load_schema(tmp_path) == schema


def test_dict_round_trip_is_json_serialisable_and_exact():
    original = yaml.safe_load(FULL)
    schema = schema_from_dict(original)
    d = schema_to_dict(schema)
    assert json.loads(json.dumps(d)) == d
    assert typed(d) == typed(original)
    assert schema_from_dict(json.loads(json.dumps(d))) == schema


def test_merlin_made_schema_collapses_tags_and_tags_lists():
    # as NVTabular builds them: expanded tags, a list column without the list tag, no name
    from merlin.schema import ColumnSchema
    merlin = Schema([
        ColumnSchema("item_id", tags=["categorical", "id", "item"], dtype="int64",
                     properties={"domain": {"min": 0, "max": 9}}),
        ColumnSchema("genres", tags=["item", "categorical"], dtype="int64", is_list=True, is_ragged=True),
    ])
    d = schema_to_dict(merlin)
    assert d == {"columns": {
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
        "genres": {"tags": ["item", "categorical", "list"], "dtype": "int64"}}}
    again = schema_from_dict(d)
    assert again["item_id"] == merlin["item_id"]
    assert Tags.LIST in again["genres"].tags and again["genres"].is_ragged
    assert schema_to_dict(again) == d


def test_embedding_dim_from_float_property_is_int():
    schema = schema_from_dict({"columns": {"c": {"tags": ["categorical"], "dtype": "int64"}}})
    col = schema["c"].with_properties({"embedding_dim": 16.0})
    assert embedding_dim(col) == 16 and isinstance(embedding_dim(col), int)
    assert schema_to_dict(Schema([col]))["columns"]["c"]["embedding_dim"] == 16


# ---------------------------------------------------------------- helpers


def categorical(max_id, dim=None):
    spec = {"tags": ["item", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": max_id}}
    if dim is not None:
        spec["embedding_dim"] = dim
    return schema_from_dict({"columns": {"c": spec}})["c"]


@pytest.mark.parametrize("card, dim", [
    (1, 8), (20, 8), (256, 8), (257, 16),  # 2 * 256 ** 0.25 = 8 exactly
    (3000, 16), (4096, 16), (4097, 24),  # 2 * 4096 ** 0.25 = 16 exactly
    (65536, 32), (1_000_000, 64), (10_000_000, 120),
])
def test_embedding_dim_inferred(card, dim):
    assert cardinality(categorical(card - 1)) == card
    assert embedding_dim(categorical(card - 1)) == dim


def test_embedding_dim_given_wins():
    assert embedding_dim(categorical(2999, dim=48)) == 48


def test_cardinality_without_domain():
    col = schema_from_dict({"columns": {"c": {"tags": ["categorical"], "dtype": "int64"}}})["c"]
    with pytest.raises(SchemaError, match="column 'c', key 'domain': .*run the ETL first"):
        cardinality(col)


def test_several_item_ids_are_ambiguous():
    schema = schema_from_dict({"columns": {
        "a": {"tags": ["item_id", "categorical"], "dtype": "int64"},
        "b": {"tags": ["item_id", "categorical"], "dtype": "int64"}}})
    with pytest.raises(SchemaError, match="column 'b', key 'tags': a second column tagged item_id"):
        item_id_column(schema)


def test_user_id_is_optional():
    schema = schema_from_dict({"columns": {
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
        "age": {"tags": ["user", "continuous"], "dtype": "float32"}}})
    assert user_id_column(schema) is None
    validate_for_retrieval(schema)


def test_schema_error_pickles():
    err = SchemaError("s.yaml", "bad", column="c", key="k", line=3)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "s.yaml: line 3: column 'c', key 'k': bad"


# ---------------------------------------------------------------- load-time errors


def test_yaml_syntax_error_has_line(tmp_path):
    err = load_error(tmp_path, """\
        columns:
          item_id: {tags: [item_id, categorical], dtype: int64
          user_id: {tags: [user_id, categorical], dtype: int64}
        """)
    assert ": line 3: invalid YAML:" in str(err)


def test_empty_file(tmp_path):
    err = load_error(tmp_path, "# only a comment\n")
    assert "the file is empty; expected a mapping with `columns:`" in str(err)


def test_top_level_not_a_mapping(tmp_path):
    err = load_error(tmp_path, "- item_id\n- user_id\n")
    assert "the top level is a list; expected a mapping with `columns:`" in str(err)


def test_no_columns(tmp_path):
    err = load_error(tmp_path, "name: x\n")
    assert "key 'columns': missing; expected a mapping from column name" in str(err)


def test_unknown_top_level_key(tmp_path):
    err = load_error(tmp_path, "name: x\ncolumn: {}\n")
    assert "key 'column': unknown top-level key 'column' (did you mean 'columns'?)" in str(err)


def test_unknown_tag(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [itme, categorical], dtype: int64}"))
    assert "column 'item_id', key 'tags': unknown tag 'itme' (did you mean 'time' or 'item'?) (known tags: " in str(err)
    assert "item_id" in str(err).split("known tags:")[1]


def test_clashing_tags(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item, categorical, continuous], dtype: int64}"))
    assert "column 'item_id', key 'tags': clashing tags 'categorical' and 'continuous'" in str(err)


def test_continuous_id_clashes(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, continuous], dtype: float32}"))
    assert "key 'tags': clashing tags 'continuous' and 'id'" in str(err)


def test_duplicate_column(tmp_path):
    err = load_error(tmp_path, """\
        columns:
          item_id: {tags: [item_id, categorical], dtype: int64}
          user_id: {tags: [user_id, categorical], dtype: int64}
          item_id: {tags: [item, categorical], dtype: int64}
        """)
    assert ": line 4: column 'item_id': column defined twice (first on line 2)" in str(err)


def test_duplicate_key_in_column(tmp_path):
    err = load_error(tmp_path, """\
        columns:
          item_id:
            tags: [item_id, categorical]
            dtype: int64
            tags: [item]
        """)
    assert ": line 5: column 'item_id', key 'tags': key given twice (first on line 3)" in str(err)


def test_duplicate_key_in_domain(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64, domain: {min: 0, min: 1}}"))
    assert "column 'item_id', key 'domain.min': key given twice" in str(err)


def test_bad_dtype(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int8}"))
    assert ("column 'item_id', key 'dtype': unknown dtype 'int8'; "
            "allowed dtypes: int32, int64, float32, float64, string, bool") in str(err)


def test_the_towers_read_integer_ids_from_zero(tmp_path):
    # a raw schema may describe a float year or any domain (the ETL encodes them); a model's may not
    def item_column(spec, name):
        return load_schema(write(tmp_path, column_yaml(spec), name)).excluding_by_name(["user_id"])

    raw = item_column("{tags: [item_id, categorical], dtype: float32, domain: {min: 1900, max: 2000}}", "raw.yaml")
    with pytest.raises(SchemaError, match=r"column 'item_id', key 'dtype': a categorical column the towers read "
                                          r"holds integer ids, got dtype float32; run the ETL first"):
        require_domains(raw, "raw.yaml")
    negative = item_column("{tags: [item_id, categorical], dtype: int64, domain: {min: -5, max: 9}}", "neg.yaml")
    # a negative id would read the table's row 0, the same vector as id 0
    with pytest.raises(SchemaError, match=r"column 'item_id', key 'domain': min -5 < 0; the ids of a categorical "
                                          r"column are rows of its embedding table, from 0"):
        require_domains(negative, "neg.yaml")
    # ids from 1 (MovieLens's raw ids) are rows too
    require_domains(item_column("{tags: [item_id, categorical], dtype: int64, domain: {min: 1, max: 9}}", "ok.yaml"))


def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"# a schema\n# Caf\xe9 ratings\ncolumns: {}\n")
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value) == (f"{path}: line 2: not UTF-8 text: byte 0xe9 at offset 16 does not decode; "
                               "save the file as UTF-8")


def test_missing_dtype(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical]}"))
    assert "column 'item_id', key 'dtype': missing; allowed dtypes:" in str(err)


def test_unknown_column_key(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64, embeding_dim: 8}"))
    assert ("column 'item_id', key 'embeding_dim': unknown key 'embeding_dim' (did you mean 'embedding_dim'?); "
            "allowed keys: tags, dtype, domain, value_count, embedding_dim, transform, properties") in str(err)


def test_domain_min_above_max(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64, domain: {min: 10, max: 5}}"))
    assert "column 'item_id', key 'domain': min 10 > max 5; expected min <= max" in str(err)


@pytest.mark.parametrize("domain", ["{max: 5}", "{min: 0, max: 5.5}", "{min: 0, max: 5, size: 6}", "[0, 5]"])
def test_domain_shape(tmp_path, domain):
    err = load_error(tmp_path, column_yaml(f"{{tags: [item_id, categorical], dtype: int64, domain: {domain}}}"))
    assert "column 'item_id', key 'domain': expected {min: ..., max: ..., name: ...} with integers" in str(err)


def test_domain_on_string_column(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: string, domain: {min: 0, max: 5}}"))
    assert "column 'item_id', key 'domain': a string column has no domain" in str(err)


def test_value_count_without_list_tag(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item, categorical], dtype: int64, value_count: {min: 1, max: 4}}",
                                           column="item_tags"))
    assert ("column 'item_tags', key 'value_count': only list columns have a value_count; "
            "expected the tag `list`") in str(err)


def test_value_count_shape(tmp_path):
    err = load_error(tmp_path, column_yaml(
        "{tags: [item, categorical, list], dtype: int64, value_count: {min: -1, max: 4}}", column="item_tags"))
    assert "column 'item_tags', key 'value_count': expected {min: ..., max: ...} with non-negative integers" in str(err)


@pytest.mark.parametrize("dim", ["0", "-8", "16.0", "sixteen", "true"])
def test_embedding_dim_not_positive_int(tmp_path, dim):
    err = load_error(tmp_path, column_yaml(f"{{tags: [item_id, categorical], dtype: int64, embedding_dim: {dim}}}"))
    assert "column 'item_id', key 'embedding_dim': expected a positive integer, got" in str(err)


def test_embedding_dim_on_continuous_column(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item, continuous], dtype: float32, embedding_dim: 8}",
                                           column="price"))
    assert "column 'price', key 'embedding_dim': only categorical columns are embedded" in str(err)


def test_column_without_feature_type(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item], dtype: int64}", column="item_brand"))
    assert ("column 'item_brand', key 'tags': no feature type; expected one of the tags categorical, "
            "continuous or embedding (only target, time and text columns may go without)") in str(err)


@pytest.mark.parametrize("tags", ["[target]", "[context, time]", "[item, text]", "[item, embedding]"])
def test_untyped_columns_that_are_allowed(tmp_path, tags):
    load_schema(write(tmp_path, column_yaml(f"{{tags: {tags}, dtype: float32}}", column="x")))


def test_missing_tags(tmp_path):
    err = load_error(tmp_path, column_yaml("{dtype: int64}"))
    assert "column 'item_id', key 'tags': expected a non-empty list of tags" in str(err)


def test_column_not_a_mapping(tmp_path):
    err = load_error(tmp_path, column_yaml("item"))
    assert "column 'item_id': expected a mapping with `tags:` and `dtype:`" in str(err)


def test_reserved_property(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64, properties: {domain: 3}}"))
    assert "column 'item_id', key 'properties': 'domain' is reserved" in str(err)


def test_transform_must_be_plain(tmp_path):
    err = load_error(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64, transform: {since: 2020-01-01}}"))
    assert "column 'item_id', key 'transform': expected plain values" in str(err)


def test_dict_errors_name_dict_source():
    with pytest.raises(SchemaError, match=r"^<dict>: column 'x', key 'dtype': unknown dtype"):
        schema_from_dict({"columns": {"x": {"tags": ["categorical"], "dtype": "int"}}})


def test_unsupported_file_type(tmp_path):
    path = write(tmp_path, "columns: {}", "schema.txt")
    with pytest.raises(SchemaError, match="unsupported file type"):
        load_schema(path)


def test_directory_without_schema(tmp_path):
    with pytest.raises(SchemaError, match="directory holds no schema.pbtxt or schema.json"):
        load_schema(tmp_path)


def test_unreadable_pbtxt(tmp_path):
    err = load_error(tmp_path, "feature { nme: 'x' }\n", "schema.pbtxt")
    assert "not a readable merlin schema file" in str(err)


def test_merlin_file_checked_like_yaml(tmp_path):
    schema = load_schema(SYNTHETIC)
    save_schema(schema, tmp_path / "schema.pbtxt")
    text = (tmp_path / "schema.pbtxt").read_text().replace('tag: "continuous"', 'tag: "continous"', 1)
    err = load_error(tmp_path, text, "schema.pbtxt")
    assert "column 'user_age', key 'tags': unknown tag 'continous' (did you mean 'continuous'?)" in str(err)


def test_merlin_files_refuse_a_feature_twice_and_an_unknown_json_key(tmp_path):
    # was: the last of the two features kept, and the misspelt key dropped (the column lost its domain)
    save_schema(load_schema(SYNTHETIC), tmp_path / "schema.pbtxt")
    text = (tmp_path / "schema.pbtxt").read_text()
    first = text[text.index("feature {"):text.index("feature {", text.index("feature {") + 1)]
    err = load_error(tmp_path, text + first, "schema.pbtxt")
    assert str(err).endswith("column 'user_id': feature listed twice; merlin would silently keep only the last one")
    save_schema(load_schema(SYNTHETIC), tmp_path / "schema.json")
    data = json.loads((tmp_path / "schema.json").read_text())
    data["feature"][0]["intDomian"] = data["feature"][0].pop("intDomain")
    err = load_error(tmp_path, json.dumps(data), "schema.json")
    assert "column 'user_id', key 'intDomian': unknown key 'intDomian' (did you mean 'intDomain'" in str(err)
    data["feature"][0]["intDomain"] = data["feature"][0].pop("intDomian")
    data["featurs"] = []
    assert "key 'featurs': unknown key 'featurs' (did you mean 'feature'" in str(
        load_error(tmp_path, json.dumps(data), "schema.json"))
    del data["featurs"]
    assert load_schema(write(tmp_path, json.dumps(data), "ok.json")).column_names == load_schema(SYNTHETIC).column_names


# ---------------------------------------------------------------- model-time checks


def test_validate_for_retrieval_needs_item_id():
    schema = schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"}}},
                              "s.yaml")
    with pytest.raises(SchemaError) as info:
        validate_for_retrieval(schema, source="s.yaml")
    assert str(info.value).startswith("s.yaml: key 'tags': no column is tagged item_id; expected exactly one")


def test_validate_for_retrieval_needs_query_column():
    schema = schema_from_dict({"columns": {
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
        "rating": {"tags": ["user", "target", "continuous"], "dtype": "float32"}}})
    with pytest.raises(SchemaError, match="s.yaml: key 'tags': no query-side column; expected at least one"):
        validate_for_retrieval(schema, source="s.yaml")


def test_require_domains(tmp_path):
    schema = load_schema(write(tmp_path, column_yaml("{tags: [item_id, categorical], dtype: int64}"), "nodomain.yaml"))
    with pytest.raises(SchemaError) as info:
        require_domains(schema, source="nodomain.yaml")
    assert str(info.value) == (
        "nodomain.yaml: column 'user_id', key 'domain': categorical column without a domain max; "
        "run the ETL first (sr.etl.fit_transform fills domains from the data) or give "
        "`domain: {min: 0, max: N}`")
