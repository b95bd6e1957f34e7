"""Every raw row the ETL cannot encode as the schema says is an error naming the source,
the column and the row of the caller's own input, or with on_bad_rows="skip" is left
out and counted; missing values the ETL encodes on purpose are counted (issue 26)."""

import json

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.cli import main
from schemaretrieval.etl import ETLError
from schemaretrieval.schema import schema_from_dict

SCHEMA_DICT = {"columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "string"},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "string"},
    "item_brand": {"tags": ["item", "categorical"], "dtype": "string"},
    "item_tags": {"tags": ["item", "categorical", "list"], "dtype": "string", "value_count": {"min": 1, "max": 3}},
    "item_price": {"tags": ["item", "continuous"], "dtype": "float64", "transform": ["normalize"]},
    "timestamp": {"tags": ["time"], "dtype": "int64"},
}}
SCHEMA = schema_from_dict(SCHEMA_DICT)
ROWS = 12
SKIP = "Fix them, or leave them out with on_bad_rows='skip'"


def raw():
    return pd.DataFrame({
        "user_id": [f"u{i % 3}" for i in range(ROWS)], "item_id": [f"i{i % 4}" for i in range(ROWS)],
        "item_brand": ["b0", "b1"] * (ROWS // 2), "item_tags": pd.Series([["t1", "t2"]] * ROWS, dtype=object),
        "item_price": np.arange(ROWS, dtype=float), "timestamp": np.arange(ROWS) + 1_600_000_000,
    })


def with_row(column, value, row=7):
    frame = raw()
    frame.at[row, column] = value
    return frame


def etl_error(frame, tmp_path, source="<DataFrame>"):
    with pytest.raises(ETLError) as info:
        sr.etl.fit_transform(frame, None, SCHEMA, tmp_path / "out", device="cpu", npartitions=3)
    message = str(info.value)
    assert message.startswith(f"{source}: ")
    return message


def test_a_missing_list_names_the_column_and_the_row(tmp_path):
    # was: TypeError: 'NoneType' object is not iterable, naming no column
    assert etl_error(with_row("item_tags", None), tmp_path) == (
        f"<DataFrame>: column 'item_tags', row 7: missing list (None/NaN); an empty row is []; 1 such row(s) in all. "
        f"{SKIP} (--on-bad-rows skip), which counts them in the report")


def test_duplicate_columns_are_named(tmp_path):
    # was: AttributeError: 'DataFrame' object has no attribute 'dtype'
    frame = pd.concat([raw(), raw()[["item_price"]]], axis=1)
    assert etl_error(frame, tmp_path) == ("<DataFrame>: column 'item_price' appears 2 times; each column must be "
                                          "named once")


def test_a_csv_header_that_names_a_column_twice_is_refused(tmp_path):
    # was: pandas read the repeat as 'item_price.1' and the ETL took the first, exit 0
    path = tmp_path / "raw.csv"
    pd.concat([raw(), raw()[["item_price"]] + 100], axis=1).to_csv(path, index=False)
    assert etl_error(path, tmp_path, source=str(path)) == (
        f"{path}: column 'item_price' appears 2 times in the header; each column must be named once")


def test_a_csv_row_of_more_fields_than_the_header_names_the_file_and_line(tmp_path):
    # was: one more field on every row shifted every column onto its neighbour's values (exit 0);
    # one long row in the middle was dask's "An error occurred while calling the read_csv method"
    path = tmp_path / "raw.csv"
    text = raw().to_csv(index=False).splitlines()
    path.write_text("\n".join([text[0]] + [line + ",5" for line in text[1:]]) + "\n")
    assert etl_error(path, tmp_path, source=str(path)).startswith(
        f"{path}: line 2 has {len(text[0].split(',')) + 1} fields, the header {len(text[0].split(','))} (")
    path.write_text("\n".join(text[:3] + [text[3] + ",5"] + text[4:]) + "\n")
    assert etl_error(path, tmp_path, source=str(path)).startswith(
        f"{path}: cannot read the csv file: Error tokenizing data. C error: Expected")


def test_a_list_written_as_python_text_is_refused(tmp_path):
    # was: "['t1', 't2']" encoded as one value, from a csv that pandas's to_csv wrote (exit 0)
    assert etl_error(with_row("item_tags", "['t1', 't2']"), tmp_path).startswith(
        "<DataFrame>: column 'item_tags', row 7: a list written as Python/JSON text (\"['t1', 't2']\"); expected "
        "the values joined by '|' (the column's separator), or a DataFrame or parquet with real lists")
    path = tmp_path / "raw.csv"
    raw().to_csv(path, index=False)  # every row's list as "['t1', 't2']"
    assert "column 'item_tags', row 0 (line 2 of the file, after its header): a list written as Python/JSON text" \
        in etl_error(path, tmp_path, source=str(path))
    frame = with_row("item_tags", "[live]")  # a value in brackets, no quote or comma: one tag, as written
    frame["item_tags"] = frame["item_tags"].map(lambda v: v if isinstance(v, str) else "|".join(v))
    sr.etl.fit_transform(frame, None, SCHEMA, tmp_path / "ok", device="cpu", npartitions=3)


def test_a_csv_list_joined_by_another_separator_than_the_default_is_refused(tmp_path):
    # was: "t1,t2" encoded as one value of its own, every row one tag, exit 0
    path = tmp_path / "raw.csv"
    raw().assign(item_tags=[",".join(["t1", "t2"][:1 + i % 2]) for i in range(ROWS)]).to_csv(path, index=False)
    assert etl_error(path, tmp_path, source=str(path)) == (
        f"{path}: column 'item_tags' is a list written as text, and no row holds the default separator '|' while "
        f"{ROWS // 2} hold ',': each row would be one value. Give the column `transform: {{separator: ','}}` in the "
        "schema, or `{separator: '|'}` to keep each row one value")
    # the separator the message gives reads the lists; a separator given in the schema is not second-guessed
    for separator, tags in ((",", [["t1"], ["t1", "t2"]]), ("|", [["t1"], ["t1,t2"]])):
        spec = json.loads(json.dumps(SCHEMA_DICT))
        spec["columns"]["item_tags"]["transform"] = {"separator": separator}
        out = tmp_path / f"out{separator}"
        sr.etl.fit_transform(path, None, schema_from_dict(spec), out, device="cpu", npartitions=3)
        encoded = pd.concat(map(pd.read_parquet, sorted((out / "train").glob("*.parquet"))))["item_tags"]
        assert encoded.map(len).tolist() == [len(tags[i % 2]) for i in range(ROWS)]


def test_a_scalar_in_a_list_column_is_refused(tmp_path):
    # was: written as a scalar under a list schema
    assert "column 'item_tags', row 7: expected a list of values, found int" in etl_error(with_row("item_tags", 5),
                                                                                         tmp_path)


def test_a_missing_item_id_is_refused_not_encoded_as_the_null_id(tmp_path):
    # was: silently id 1, counted nowhere
    assert "column 'item_id', row 7: missing id (None/NaN); 1 such row(s) in all" in etl_error(
        with_row("item_id", None), tmp_path)


def test_a_text_timestamp_is_refused(tmp_path):
    # was: written as an object column under an int64 schema
    frame = raw().assign(timestamp=raw()["timestamp"].astype(str))
    assert (f"column 'timestamp', row 0: expected numbers since 1970 or datetimes, found text (parse it with "
            f"pd.to_datetime); {ROWS} such row(s) in all") in etl_error(frame, tmp_path)


def test_an_integer_id_column_refuses_text_fractions_and_values_beyond_int64(tmp_path):
    schema = schema_from_dict({"columns": {**SCHEMA_DICT["columns"], "user_id": {"tags": ["user_id", "categorical"],
                                                                                 "dtype": "int64"}}})
    ints = raw().assign(user_id=np.arange(ROWS) % 3)
    expected = "expected an integer (the schema's dtype is int64), found text, a fraction, a bool or a value beyond int64"
    # was: 'bob' in a csv made the whole column text, and every integer id given to transform the OOV id
    path = tmp_path / "raw.csv"
    ints.assign(item_tags=["t1|t2"] * ROWS).astype({"user_id": object}).assign(
        user_id=lambda f: f.user_id.where(f.index != 5, "bob")).to_csv(path, index=False)
    with pytest.raises(ETLError) as info:
        sr.etl.fit_transform(path, None, schema, tmp_path / "out", device="cpu")
    assert f"raw.csv: column 'user_id', row 5 (line 7 of the file, after its header): {expected}; 1 such row" in str(
        info.value)
    out = sr.etl.fit_transform(path, None, schema, tmp_path / "out", device="cpu", on_bad_rows="skip")
    assert out.report["train"]["skipped"] == 1
    again = sr.etl.transform(ints, out.workflow_dir)
    assert not (again.user_id == 2).any()  # OOV: none, the csv's ids were encoded as integers
    # was: TypeError '<' not supported between 'str' and 'int', and OverflowError, naming no column
    for value, row in (("bob", 4), (10**30, 6), (2.5, 8)):
        frame = ints.astype({"user_id": object})
        frame.at[row, "user_id"] = value
        with pytest.raises(ETLError) as info:
            sr.etl.fit_transform(frame, None, schema, tmp_path / "o", device="cpu")
        assert str(info.value).startswith(f"<DataFrame>: column 'user_id', row {row}: {expected}")
        # transform checks against the dtype training's rows had (was: RuntimeError "Failed to categorical encode")
        with pytest.raises(ETLError) as info:
            sr.etl.transform(frame, out.workflow_dir)
        assert str(info.value).startswith(f"<DataFrame>: column 'user_id', row {row}: {expected}")


def test_an_empty_list_below_value_count_min_is_refused(tmp_path):
    assert "column 'item_tags', row 7: fewer values than value_count.min 1" in etl_error(with_row("item_tags", []),
                                                                                        tmp_path)
    assert "row 4: more values than value_count.max 3" in etl_error(with_row("item_tags", ["a", "b", "c", "d"], 4),
                                                                  tmp_path)


def test_text_in_a_number_column_and_inf_are_refused(tmp_path):
    frame = raw().astype({"item_price": object})
    frame.at[9, "item_price"] = "cheap"
    assert "column 'item_price', row 9: expected a number, found text" in etl_error(frame, tmp_path)
    assert "column 'item_price', row 3: inf" in etl_error(with_row("item_price", np.inf, 3), tmp_path)
    # no fill_missing in its transform: a missing price would reach the model as NaN
    assert "row 2: missing value (None/NaN), and its transform: has no fill_missing" in etl_error(
        with_row("item_price", np.nan, 2), tmp_path)


def test_datetimes_in_a_continuous_column_are_refused(tmp_path):
    # were read as nanoseconds since 1970 and normalized without a word
    for values in (pd.to_datetime(np.arange(ROWS), unit="D"), pd.to_datetime(np.arange(ROWS), unit="D", utc=True),
                   pd.to_timedelta(np.arange(ROWS), unit="D")):
        message = etl_error(raw().assign(item_price=values), tmp_path)
        assert message.startswith(f"<DataFrame>: column 'item_price' is continuous, found {values.dtype} values; "
                                  "give it the tag 'time'"), message


def test_a_csv_names_the_row_and_the_line_of_the_file(tmp_path):
    path = tmp_path / "raw.csv"
    frame = raw().assign(item_tags=["t1|t2"] * ROWS)
    frame.at[10, "item_tags"] = ""
    frame.to_csv(path, index=False)
    assert f"column 'item_tags', row 10 (line 12 of the file, after its header): missing list" in etl_error(
        str(path), tmp_path, source=str(path))


def test_skip_leaves_bad_rows_out_and_counts_them_and_every_default(tmp_path):
    frame = with_row("item_tags", None, 1)
    frame.at[4, "item_id"] = None
    frame.at[5, "item_tags"] = 3
    frame.at[6, "item_brand"] = None  # not bad: the null id, counted
    out = sr.etl.fit_transform(frame, None, SCHEMA, tmp_path / "out", device="cpu", on_bad_rows="skip")
    report = json.loads((tmp_path / "out" / "etl_report.json").read_text())["train"]
    assert report["rows"] == ROWS - 3 and report["skipped"] == 3
    assert report["bad_rows"] == {"item_tags: missing list (None/NaN); an empty row is []": 1,
                                  "item_id: missing id (None/NaN)": 1,
                                  "item_tags: expected a list of values, found int": 1}
    assert report["missing"] == {"item_brand": 1}
    encoded = sr.data.read_table(out.train)
    assert len(encoded) == ROWS - 3 and (encoded["item_brand"] == 1).sum() == 1  # the null id
    # the ETL's output directory is not a table: fitting on it says where the rows are
    model = sr.TwoTowerModel(out.schema, query_units=(4,), candidate_units=(4,))
    model.compile()
    with pytest.raises(ValueError, match=rf"{tmp_path / 'out'} is the output directory of the ETL, not a table of "
                                         rf"rows: give {tmp_path / 'out' / 'train'}"):
        model.fit(str(tmp_path / "out"), epochs=1, verbose=0)


def test_the_etl_command_skips_and_reports(tmp_path, capsys):
    path = tmp_path / "raw.parquet"
    with_row("item_id", None, 2).to_parquet(path)
    schema = tmp_path / "schema.yaml"
    sr.save_schema(SCHEMA, schema)
    with pytest.raises(SystemExit) as exit_info:
        main(["etl", "--schema", str(schema), "--train", str(path), "--out", str(tmp_path / "a")])
    assert exit_info.value.code == 2
    assert f"{path}: column 'item_id', row 2: missing id" in capsys.readouterr().err
    assert main(["etl", "--schema", str(schema), "--train", str(path), "--out", str(tmp_path / "b"),
                 "--on-bad-rows", "skip"]) is None or True
    assert "left out 1 bad train rows: {'item_id: missing id (None/NaN)': 1}" in capsys.readouterr().out


def test_train_names_the_row_of_the_file_not_of_its_split(tmp_path, capsys):
    # was: the row number after the command's own random split
    schema = sr.load_schema("schemas/synthetic.yaml")
    frame = sr.data.synthetic(schema, 200, seed=0)
    frame.loc[150, "user_id"] = 5000
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    with pytest.raises(SystemExit):
        main(["train", "--schema", "schemas/synthetic.yaml", "--data", str(path), "--out", str(tmp_path / "o")])
    assert "value 5000 at row 150 is outside the schema's domain" in capsys.readouterr().err


def test_a_parquet_directory_of_files_that_differ_names_the_file(tmp_path):
    # was: KeyError "['user_score'] not in index", or pyarrow's ArrowInvalid naming no file
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = raw()
    frame.iloc[:10].to_parquet(folder / "a.parquet")
    frame.iloc[10:].drop(columns=["item_price"]).to_parquet(folder / "b.parquet")
    assert etl_error(folder, tmp_path, source=str(folder / "b.parquet")) == (
        f"{folder / 'b.parquet'}: column 'item_price' is missing, and double in a.parquet; every file of a "
        "directory needs the same columns and types")
    # int32 beside int64 too: NVTabular's writer refuses a second file of other types, naming neither
    frame.iloc[10:].assign(timestamp=frame.timestamp.iloc[10:].astype("int32")).to_parquet(folder / "b.parquet")
    assert etl_error(folder, tmp_path, source=str(folder / "b.parquet")).startswith(
        f"{folder / 'b.parquet'}: column 'timestamp' is int32, and int64 in a.parquet")
    frame.iloc[10:].to_parquet(folder / "b.parquet")
    (folder / "c.parq").write_bytes(b"")
    assert etl_error(folder, tmp_path, source=str(folder)).startswith(  # was: skipped, its rows unread
        f"{folder}: the directory holds 'c.parq', which would not be read: its rows are its .parquet / .pq files")
    (folder / "c.parq").unlink()
    (folder / "c.parquet").write_bytes(b"garbage")
    assert etl_error(folder, tmp_path, source=str(folder / "c.parquet")).startswith(
        f"{folder / 'c.parquet'}: not a readable parquet file (")
