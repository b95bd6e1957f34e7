"""Reading, validating and batching tables: read_table, to_arrays, to_tf_dataset."""

import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval.data import read_table, synthetic, to_arrays, to_tf_dataset
from schemaretrieval.schema import PAD as PAD_VALUE, schema_from_dict
from helpers import column, synthetic_schema


@pytest.fixture(scope="module")
def frame(schema):
    return synthetic(schema, 2_000, seed=11)


def small_frame():
    return pd.DataFrame({
        "user_id": [0, 1, 2],
        "user_age": [0.1, 0.2, 0.3],
        "user_country": [1, 2, 3],
        "item_id": [5, 6, 5],
        "item_category": [1, 2, 1],
        "item_tags": [[1, 2], [3], [1, 2]],
        "item_price": [0.5, 0.25, 0.5],
        "rating": [1.0, 0.0, 0.5],
    })


# ----------------------------------------------------------------- read_table

def test_read_table_parquet_directory_and_csv(tmp_path, frame):
    frame.to_parquet(tmp_path / "one.parquet")
    got = read_table(tmp_path / "one.parquet")
    assert len(got) == len(frame) and list(got.columns) == list(frame.columns)

    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:500].to_parquet(parts / "part-0.parquet")
    frame.iloc[500:].to_parquet(parts / "part-1.parquet")
    (parts / "_metadata.txt").write_text("not a table")
    got = read_table(str(parts))
    assert len(got) == len(frame)
    np.testing.assert_array_equal(got["item_id"], frame["item_id"])
    assert list(got.index) == list(range(len(frame)))
    # was: the rows of a file without a column read NaN there, reported later as "NaN in 500 rows"
    frame.iloc[500:].drop(columns=["item_id"]).to_parquet(parts / "part-1.parquet")
    with pytest.raises(ValueError, match=r"part-1.parquet: column 'item_id' is missing, and int64 in part-0.parquet; "
                                         r"every file of a directory needs the same columns"):
        read_table(parts)

    # was: a file of another kind and a sub-directory were skipped without a word, their rows unread
    frame.iloc[500:].to_parquet(parts / "part-1.parquet")
    (parts / "schema.pbtxt").write_text("merlin's schema, beside its parquet files")
    (parts / ".part-1.crc").write_text("")
    assert len(read_table(parts)) == len(frame)
    frame.to_csv(parts / "more.csv", index=False)
    (parts / "year=2024").mkdir()
    with pytest.raises(ValueError, match=r"parts: the directory holds 'more.csv', 'year=2024/', which would not be "
                                         r"read: its rows are its .parquet / .pq files"):
        read_table(parts)

    small = small_frame().drop(columns=["item_tags"])
    small.to_csv(tmp_path / "t.csv", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.csv"), small)


def test_read_table_empty_and_unknown_files_are_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user_id,item_id\n")
    with pytest.raises(ValueError, match="header.csv.*zero rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "twice.csv").write_text("user_id,item_id,item_id\n1,2,3\n")  # pandas would read 'item_id.1'
    with pytest.raises(ValueError, match=r"twice.csv: column 'item_id' appears 2 times in the header"):
        read_table(tmp_path / "twice.csv")
    # was: the first field taken for pandas's index, every column holding its neighbour's values
    (tmp_path / "shifted.csv").write_text("user_id,item_id,price\n1,2,1.0,5\n2,3,2.0,6\n")
    with pytest.raises(ValueError, match=r"shifted.csv: line 2 has 4 fields, the header 3 \(user_id, item_id, price\)"):
        read_table(tmp_path / "shifted.csv")
    # was: pandas's ParserError, naming no file
    (tmp_path / "long_row.csv").write_text("user_id,item_id\n1,2\n2,3,4\n")
    with pytest.raises(ValueError, match=r"read_table: cannot read csv file '.*long_row.csv': .*Expected 2 fields in "
                                         r"line 3, saw 3"):
        read_table(tmp_path / "long_row.csv")
    pd.DataFrame({"a": pd.Series([], dtype=np.int64)}).to_parquet(tmp_path / "none.parquet")
    with pytest.raises(ValueError, match="none.parquet.*zero rows"):
        read_table(tmp_path / "none.parquet")
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="zero.parquet"):
        read_table(tmp_path / "zero.parquet")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ValueError, match=r"data.json.*\.json.*parquet.*csv"):
        read_table(tmp_path / "data.json")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="nothing.*no .parquet"):
        read_table(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_table(tmp_path / "missing.parquet")


# ------------------------------------------------------------------ to_arrays

def test_to_arrays_dtypes_shapes_and_padding(schema, frame):
    arrays = to_arrays(frame, schema)
    assert list(arrays) == schema.column_names
    n = len(frame)
    for name in ["user_id", "user_country", "item_id", "item_category"]:
        assert arrays[name].dtype == np.int64 and arrays[name].shape == (n,)
    for name in ["user_age", "item_price", "rating"]:
        assert arrays[name].dtype == np.float32 and arrays[name].shape == (n,)
    tags = arrays["item_tags"]
    assert tags.dtype == np.int64 and tags.shape == (n, 4)  # value_count max
    lengths = (tags != PAD_VALUE).sum(axis=1)
    np.testing.assert_array_equal(lengths, frame["item_tags"].map(len))
    # padding only at the end of each row, values in order
    for row, values in zip(tags[:50], frame["item_tags"].iloc[:50]):
        np.testing.assert_array_equal(row[: len(values)], values)
        assert (row[len(values):] == PAD_VALUE).all()


def test_to_arrays_list_without_value_count_pads_to_longest_row():
    schema = Schema([column("tags", [Tags.ITEM, Tags.CATEGORICAL, Tags.LIST], np.int64,
                          domain={"min": 0, "max": 9})])
    arrays = to_arrays(pd.DataFrame({"tags": [[1], [2, 3, 4], []]}), schema)
    np.testing.assert_array_equal(arrays["tags"], [[1, -1, -1], [2, 3, 4], [-1, -1, -1]])


def test_to_arrays_list_longer_than_value_count_is_an_error(schema):
    data = small_frame()
    data.at[1, "item_tags"] = [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"item_tags.*row 1 has 5 ids.*value_count max 4"):
        to_arrays(data, schema)


def test_to_arrays_list_shorter_than_value_count_min_is_an_error(schema):
    # as the ETL refuses it (tests/etl/test_bad_rows.py); was: padded and trained on without a word
    data = small_frame().assign(item_tags=[[1, 2], [], []])
    with pytest.raises(ValueError, match=r"item_tags.*row 1 has 0 ids, fewer than the schema's value_count min 1 "
                                         r"\(2 such rows\)"):
        to_arrays(data, schema)


def test_to_arrays_missing_column_and_empty_data(schema):
    with pytest.raises(ValueError, match=r"events.parquet.*missing column.*'rating'"):
        to_arrays(small_frame().drop(columns=["rating"]), schema, source="events.parquet")
    with pytest.raises(ValueError, match=r"<DataFrame>.*empty"):
        to_arrays(small_frame().iloc[:0], schema)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_to_arrays_nan_or_inf_in_continuous_column(schema, bad):
    data = pd.concat([small_frame()] * 3, ignore_index=True)
    data.loc[[4, 7], "user_age"] = bad
    with pytest.raises(ValueError, match=r"src.csv: column 'user_age'.*NaN or inf.*2 rows, "
                                         r"first at row 4"):
        to_arrays(data, schema, source="src.csv")


def test_to_arrays_float_overflow_is_inf(schema):
    data = small_frame()
    data["item_price"] = [0.5, 1e300, 0.1]
    with pytest.raises(ValueError, match=r"item_price.*1 row, first at row 1"):
        to_arrays(data, schema)


def test_to_arrays_ids_outside_domain(schema):
    data = small_frame()
    data.loc[2, "item_id"] = 3000
    with pytest.raises(ValueError, match=r"'item_id'.*3000 at row 2.*domain \[0, 2999\]"):
        to_arrays(data, schema)
    data = small_frame()
    data.loc[0, "user_country"] = -3
    with pytest.raises(ValueError, match=r"'user_country'.*-3 at row 0.*\[0, 19\]"):
        to_arrays(data, schema)
    data = small_frame()
    data.at[1, "item_tags"] = [7, 100]
    with pytest.raises(ValueError, match=r"'item_tags'.*100 at row 1.*\[0, 99\]"):
        to_arrays(data, schema)
    # no domain: ids must still be >= 0
    plain = Schema([ColumnSchema("c", tags=[Tags.CATEGORICAL], dtype=np.int64)])
    with pytest.raises(ValueError, match=r"'c'.*-1 at row 1.*>= 0"):
        to_arrays(pd.DataFrame({"c": [1, -1]}), plain)


def test_to_arrays_non_numeric_values(schema):
    data = small_frame()
    data["item_id"] = data["item_id"].astype(object)
    data.loc[1, "item_id"] = "abc"
    with pytest.raises(ValueError, match=r"'item_id'.*non-numeric value 'abc' at row 1"):
        to_arrays(data, schema)
    data = small_frame()
    data["item_price"] = ["0.5", "cheap", "0.1"]
    with pytest.raises(ValueError, match=r"'item_price'.*non-numeric value 'cheap' at row 1"):
        to_arrays(data, schema)
    data = small_frame()
    data.at[2, "item_tags"] = [1, "x"]
    with pytest.raises(ValueError, match=r"'item_tags'.*'x' at row 2"):
        to_arrays(data, schema)
    data = small_frame()
    data["item_price"] = pd.to_datetime([1, 2, 3], unit="D")  # was read as nanoseconds since 1970
    with pytest.raises(ValueError, match=r"'item_price': expected numbers, found datetime64\[ns\] values"):
        to_arrays(data, schema)
    data = small_frame()
    data["item_category"] = [1.0, 2.5, 3.0]
    with pytest.raises(ValueError, match=r"'item_category'.*integer ids.*2.5 at row 1"):
        to_arrays(data, schema)


def test_to_arrays_missing_values_are_errors_not_dropped(schema):
    data = small_frame()
    data["user_country"] = [1.0, np.nan, 2.0]
    with pytest.raises(ValueError, match=r"'user_country'.*missing.*first at row 1"):
        to_arrays(data, schema)
    data = small_frame()
    data.at[2, "item_tags"] = None
    with pytest.raises(ValueError, match=r"'item_tags'.*missing.*first at row 2"):
        to_arrays(data, schema)
    data = small_frame()
    data["item_tags"] = [[1], 5, [2]]
    with pytest.raises(ValueError, match=r"'item_tags'.*expected a list.*row 1"):
        to_arrays(data, schema)


def test_to_arrays_accepts_numeric_strings_and_nullable_ints(schema):
    data = small_frame()
    data["user_id"] = pd.array([0, 1, 2], dtype="Int64")
    data["item_price"] = ["0.5", "0.25", "0.5"]
    arrays = to_arrays(data, schema)
    np.testing.assert_array_equal(arrays["user_id"], [0, 1, 2])
    np.testing.assert_allclose(arrays["item_price"], [0.5, 0.25, 0.5])


def test_to_arrays_parses_lists_written_to_csv(tmp_path, schema):
    data = small_frame()
    data["item_tags"] = ["[1, 2]", "3", "1|2"]
    data.to_csv(tmp_path / "lists.csv", index=False)
    arrays = to_arrays(read_table(tmp_path / "lists.csv"), schema)
    np.testing.assert_array_equal(arrays["item_tags"], [[1, 2, -1, -1], [3, -1, -1, -1],
                                                        [1, 2, -1, -1]])


def test_to_arrays_from_a_mapping_of_arrays(schema, frame):
    arrays = to_arrays(frame, schema)
    again = to_arrays(arrays, schema)
    for name in arrays:
        np.testing.assert_array_equal(again[name], arrays[name])
        assert again[name].dtype == arrays[name].dtype
    narrow = dict(arrays, item_tags=arrays["item_tags"][:, :2])  # narrower: padded to 4
    assert to_arrays(narrow, schema)["item_tags"].shape == (len(frame), 4)
    bad = dict(arrays, rating=arrays["rating"][:-1])
    with pytest.raises(ValueError, match=r"'rating'.*1999 rows, expected 2000"):
        to_arrays(bad, schema)
    bad = dict(arrays, item_id=np.where(np.arange(len(frame)) == 9, 5000, arrays["item_id"]))
    with pytest.raises(ValueError, match=r"'item_id'.*5000 at row 9"):
        to_arrays(bad, schema)


def test_to_arrays_leaves_out_columns_the_schema_does_not_name(schema):
    data = small_frame().assign(extra=["a", "b", "c"])
    assert "extra" not in to_arrays(data, schema)


# -------------------------------------------------------------- to_tf_dataset

def test_to_tf_dataset_batches_in_order(schema, frame):
    arrays = to_arrays(frame, schema)
    ds = to_tf_dataset(frame, schema, batch_size=300)
    batches = list(ds)
    assert len(batches) == 7 and int(ds.cardinality()) == 7
    assert [int(b["item_id"].shape[0]) for b in batches] == [300] * 6 + [200]
    first = batches[0]
    assert first["item_id"].dtype == tf.int64 and first["user_age"].dtype == tf.float32
    assert first["item_tags"].shape == (300, 4)
    for name in arrays:
        np.testing.assert_array_equal(np.concatenate([b[name].numpy() for b in batches]),
                                      arrays[name])
    dropped = list(to_tf_dataset(frame, schema, batch_size=300, drop_remainder=True))
    assert len(dropped) == 6


def _epoch_order(ds):
    return np.concatenate([b["row"].numpy() for b in ds])


def test_to_tf_dataset_shuffles_each_epoch_reproducibly():
    schema = Schema([column("row", [Tags.ITEM_ID, Tags.CATEGORICAL], np.int64,
                          domain={"min": 0, "max": 999}),
                     column("value", [Tags.ITEM, Tags.CONTINUOUS], np.float32)])
    data = {"row": np.arange(1000), "value": np.arange(1000, dtype=np.float32)}
    ds = to_tf_dataset(data, schema, batch_size=128, shuffle=True, seed=5)
    first, second = _epoch_order(ds), _epoch_order(ds)
    np.testing.assert_array_equal(np.sort(first), np.arange(1000))  # every row once
    np.testing.assert_array_equal(np.sort(second), np.arange(1000))
    assert not np.array_equal(first, second)  # reshuffled
    assert not np.array_equal(first, np.arange(1000))
    batch = next(iter(ds))  # rows stay aligned across columns
    np.testing.assert_array_equal(batch["row"].numpy().astype(np.float32), batch["value"].numpy())
    again = to_tf_dataset(data, schema, batch_size=128, shuffle=True, seed=5)
    np.testing.assert_array_equal(_epoch_order(again), first)
    np.testing.assert_array_equal(_epoch_order(again), second)
    other = to_tf_dataset(data, schema, batch_size=128, shuffle=True, seed=6)
    assert not np.array_equal(_epoch_order(other), first)
    dropped = to_tf_dataset(data, schema, batch_size=128, shuffle=True, seed=5,
                            drop_remainder=True)
    sizes = [int(b["row"].shape[0]) for b in dropped]
    assert sizes == [128] * 7 and int(dropped.cardinality()) == 7


def test_to_tf_dataset_from_path_names_the_file_in_errors(tmp_path, schema, frame):
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)
    batches = list(to_tf_dataset(str(path), schema, batch_size=1000))
    assert sum(int(b["rating"].shape[0]) for b in batches) == len(frame)
    bad = small_frame()
    bad.loc[0, "item_id"] = -5
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet: column 'item_id'"):
        to_tf_dataset(tmp_path / "bad.parquet", schema, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        to_tf_dataset(frame, schema, batch_size=0)


def test_to_tf_dataset_one_epoch_of_a_million_rows():
    n = 1_000_000
    rng = np.random.default_rng(0)
    schema = synthetic_schema()
    arrays = {
        "user_id": rng.integers(0, 2000, n), "user_age": rng.random(n, dtype=np.float32),
        "user_country": rng.integers(0, 20, n), "item_id": rng.integers(0, 3000, n),
        "item_category": rng.integers(0, 30, n), "item_tags": rng.integers(-1, 100, (n, 4)),
        "item_price": rng.random(n, dtype=np.float32), "rating": rng.random(n, dtype=np.float32),
    }
    for shuffle in (False, True):
        ds = to_tf_dataset(arrays, schema, batch_size=8192, shuffle=shuffle, seed=0)
        for epoch in range(2):
            start = time.perf_counter()
            rows = sum(int(b["item_id"].shape[0]) for b in ds)
            elapsed = time.perf_counter() - start
            print(f"to_tf_dataset shuffle={shuffle} epoch {epoch}: {rows} rows in {elapsed:.2f} s")
            assert rows == n


def test_an_unsigned_id_beyond_int64_is_named_not_wrapped():
    # was: "value -9223372036854775803 at row 0 is outside the schema's domain"
    schema = schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                                                       "domain": {"min": 0, "max": 9}}}})
    ids = np.array([1, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"column 'user_id': expected integer ids, found 9223372036854775813 at row 1, "
                                         r"beyond int64"):
        to_arrays(pd.DataFrame({"user_id": ids}), schema)


@pytest.mark.parametrize("column", [np.array([True, False]), pd.array([True, False], dtype="boolean")],
                         ids=["numpy", "pandas-boolean"])
def test_a_bool_id_column_is_refused_not_read_as_ids_0_and_1(column):
    schema = schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                                                       "domain": {"min": 0, "max": 9}}}})
    with pytest.raises(ValueError, match=r"column 'user_id': expected integer ids, found True/False values "
                                         r"\(a bool column\)"):
        to_arrays(pd.DataFrame({"user_id": column}), schema)
