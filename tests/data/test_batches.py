"""Batches: in memory or streamed from parquet row group by row group, the same rows per epoch,
shuffled reproducibly, resumable mid-epoch, validated like to_arrays, chosen by size, and fit on a path."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.data import parquet
from schemaretrieval.data.batches import Batches, to_tf_dataset
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.schema import PAD

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "synthetic.yaml"


@pytest.fixture(scope="module")
def schema():
    return sr.load_schema(SCHEMA)


@pytest.fixture(scope="module")
def table(schema, tmp_path_factory):
    """1,000 rows in three files of uneven row groups (a user id per row to tell rows apart)."""
    frame = sr.data.synthetic(schema, 1_000, seed=3)
    frame["user_id"] = np.arange(len(frame)) % (schema["user_id"].properties["domain"]["max"] + 1)
    directory = tmp_path_factory.mktemp("pq")
    for i, (start, stop, group) in enumerate([(0, 400, 70), (400, 450, 1000), (450, 1000, 128)]):
        frame.iloc[start:stop].to_parquet(directory / f"part_{i}.parquet", row_group_size=group, index=False)
    return directory, frame


def _rows(batches):
    """Each row of each batch as a hashable tuple (list columns without padding)."""
    rows = []
    for batch in batches:
        batch = {name: t.numpy() for name, t in batch.items()}
        for i in range(len(batch["user_id"])):
            rows.append(tuple(
                tuple(v[i][v[i] != PAD]) if v.ndim == 2 else v[i].item()
                for _, v in sorted(batch.items())))
    return rows


def _table_rows(frame, schema):
    arrays = to_arrays(frame, schema)
    return _rows([{name: _Tensor(a) for name, a in arrays.items()}])


class _Tensor:
    def __init__(self, array):
        self.array = array

    def numpy(self):
        return self.array


@pytest.mark.parametrize("shuffle", [False, True])
def test_both_paths_give_every_row_once_per_epoch(schema, table, shuffle):
    directory, frame = table
    expected = sorted(_table_rows(frame, schema))
    for mode in (False, True):
        ds = to_tf_dataset(directory, schema, 96, shuffle=shuffle, seed=1, streaming=mode,
                                  shuffle_buffer=200)
        assert ds.cardinality().numpy() == 11
        epochs = [list(ds) for _ in range(2)]
        for batches in epochs:
            assert [len(b["item_id"]) for b in batches] == [96] * 10 + [40]
            assert sorted(_rows(batches)) == expected, (mode, shuffle)
        orders = [_rows(b) for b in epochs]  # the rows in the order served
        assert (orders[0] != orders[1]) == shuffle


def test_without_shuffle_the_streamed_batches_are_the_in_memory_batches(schema, table):
    directory, _ = table
    memory = list(to_tf_dataset(directory, schema, 128, streaming=False))
    streamed = list(to_tf_dataset(directory, schema, 128, streaming=True, shuffle_buffer=300))
    assert _rows(memory) == _rows(streamed)


def test_shuffle_is_reproducible_from_the_seed_and_drop_remainder(schema, table):
    directory, _ = table
    a = to_tf_dataset(directory, schema, 100, shuffle=True, seed=7, streaming=True, shuffle_buffer=250)
    b = to_tf_dataset(directory, schema, 100, shuffle=True, seed=7, streaming=True, shuffle_buffer=250)
    c = to_tf_dataset(directory, schema, 100, shuffle=True, seed=8, streaming=True, shuffle_buffer=250)
    first = [_rows(a) for _ in range(2)]
    assert first == [_rows(b) for _ in range(2)]
    assert first[0] != _rows(c)
    dropped = to_tf_dataset(directory, schema, 300, shuffle=True, seed=7, streaming=True,
                                   drop_remainder=True)
    assert dropped.cardinality().numpy() == 3 and [len(x["item_id"]) for x in dropped] == [300] * 3


def test_the_path_is_chosen_by_the_size_in_memory(schema, table, monkeypatch):
    directory, frame = table
    groups = parquet.row_groups(directory)
    assert len(groups) == 6 + 1 + 5
    size = parquet.in_memory_bytes(directory)
    # 8 bytes a value: 7 scalar columns, the list's elements and its offsets, per row
    elements = sum(len(v) for v in frame["item_tags"])
    assert size == 8 * (len(frame) * 7 + elements + len(frame))
    assert not Batches(directory, schema, 64).streamed  # far below 1 GiB
    monkeypatch.setenv(parquet.IN_MEMORY_MAX_BYTES_ENV, str(size - 1))
    assert Batches(directory, schema, 64).streamed and Batches(str(directory), schema, 64).streamed
    assert not Batches(frame, schema, 64).streamed and not Batches(directory, schema, 64, streaming=False).streamed
    # the streamed dataset's list column has no fixed width; the in-memory one has
    assert to_tf_dataset(directory, schema, 64).element_spec["item_tags"].shape.as_list() == [None, None]
    monkeypatch.setenv(parquet.IN_MEMORY_MAX_BYTES_ENV, str(size))
    assert to_tf_dataset(directory, schema, 64).element_spec["item_tags"].shape.as_list() == [None, 4]
    with pytest.raises(ValueError, match="streaming=True reads parquet"):
        to_tf_dataset(frame, schema, 64, streaming=True)


@pytest.mark.parametrize("streaming", [False, True])
def test_an_epoch_resumed_after_its_first_batches_serves_the_rest_in_the_same_order(schema, table, streaming):
    directory, _ = table
    batches = Batches(directory, schema, 96, shuffle=True, seed=4, streaming=streaming, shuffle_buffer=200)
    whole = _rows(batches.epoch(3))
    assert _rows(batches.epoch(3, skip=4)) == whole[4 * 96:]
    assert _rows(batches.epoch(3)) == whole  # a function of (seed, epoch) alone
    assert _rows(batches.epoch(4)) != whole


def test_bad_values_are_reported_with_the_file_and_row_group(schema, table, tmp_path):
    _, frame = table
    bad = frame.iloc[:300].copy()
    bad.loc[250, "item_id"] = 10_000_000
    bad.to_parquet(tmp_path / "a.parquet", row_group_size=100, index=False)
    ds = to_tf_dataset(tmp_path, schema, 50, streaming=True)
    with pytest.raises(Exception, match=r"a\.parquet \(row group 2, rows 200\.\.299 of the file\).*'item_id'"):
        list(ds)
    frame.iloc[:10].drop(columns=["item_price"]).to_parquet(tmp_path / "a.parquet", index=False)
    with pytest.raises(Exception, match=r"missing column \['item_price'\]"):
        list(to_tf_dataset(tmp_path, schema, 50, streaming=True))


def test_streamed_catalog_and_counts_equal_the_in_memory_ones(schema, table):
    directory, frame = table
    streamed, memory = sr.data.Catalog.from_interactions(directory, schema), sr.data.Catalog.from_interactions(frame, schema)
    pd.testing.assert_frame_equal(streamed.frame, memory.frame, check_dtype=False)
    np.testing.assert_array_equal(streamed.counts, memory.counts)
    np.testing.assert_array_equal(memory.counts, np.bincount(frame["item_id"])[memory.ids])
    counts = parquet.item_counts(directory, "item_id", 5000)
    np.testing.assert_array_equal(counts, np.bincount(frame["item_id"], minlength=5000))


def test_model_fits_on_a_streamed_directory(schema, table, monkeypatch):
    directory, _ = table
    monkeypatch.setenv(parquet.IN_MEMORY_MAX_BYTES_ENV, "0")
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), negative_samplers="popularity")
    model.compile(optimizer="adam")
    catalog = sr.data.Catalog.from_interactions(directory, schema)
    history = model.fit(directory, batch_size=128, epochs=2, seed=0, verbose=0, catalog=catalog)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 2


def test_a_user_history_from_a_streamed_directory_reads_only_the_two_id_columns(schema, table, monkeypatch):
    from schemaretrieval.layers.history import history_table

    directory, frame = table
    columns = parquet.read_columns(directory, ["user_id", "item_id"])
    np.testing.assert_array_equal(columns["user_id"], frame["user_id"].to_numpy())
    np.testing.assert_array_equal(columns["item_id"], frame["item_id"].to_numpy())
    monkeypatch.setenv(parquet.IN_MEMORY_MAX_BYTES_ENV, "0")
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), user_history=True, history_max_length=16)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"has none; give it first: model.set_history\(train\)"):
        model.fit(directory, batch_size=128, epochs=1, seed=0, verbose=0)
    model.set_history(directory)
    model.fit(directory, batch_size=128, epochs=1, seed=0, verbose=0)
    history = model.query_tower.history
    expected = history_table(frame["user_id"], frame["item_id"], history.num_users, 16)
    np.testing.assert_array_equal(np.asarray(history.items), expected)


def test_a_bad_row_of_a_streamed_table_is_a_value_error_naming_it(schema, table, tmp_path, monkeypatch):
    # was: tf.data's InvalidArgumentError ("Graph execution error"), and a traceback from the command
    _, frame = table
    bad = frame.copy()
    bad.loc[234, "user_age"] = np.nan
    (tmp_path / "pq").mkdir()
    bad.to_parquet(tmp_path / "pq" / "part.parquet", row_group_size=100, index=False)
    monkeypatch.setenv(parquet.IN_MEMORY_MAX_BYTES_ENV, "0")
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"part.parquet \(row group 2, rows 200..299 of the file\): column "
                                         r"'user_age': expected finite numbers, found NaN or inf .* first at row 34"):
        model.fit(tmp_path / "pq", batch_size=128, epochs=1, shuffle=False, verbose=0)
