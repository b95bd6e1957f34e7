"""Merlin's Loader, ToTarget and unique_rows_by_features over the one batch builder."""

import inspect

import numpy as np
import pandas as pd
import pytest
from merlin.io import Dataset
from merlin.schema import ColumnSchema, Schema, Tags

import schemaretrieval as mm
from schemaretrieval.data.read import merlin_table

SCHEMA = Schema([
    ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype="int64", properties={"domain": {"min": 0, "max": 9}}),
    ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype="int64", properties={"domain": {"min": 0, "max": 9}}),
    ColumnSchema("item_year", tags=[Tags.ITEM, Tags.CATEGORICAL], dtype="int64", properties={"domain": {"min": 0, "max": 99}}),
    ColumnSchema("click", tags=[Tags.TARGET, Tags.CONTINUOUS], dtype="float32"),
])
FRAME = pd.DataFrame({"user_id": [1, 2, 3, 4, 5], "item_id": [7, 5, 7, 6, 5], "item_year": [90, 91, 90, 92, 91],
                      "click": np.array([1, 0, 1, 1, 0], "float32")})


def batches(loader):
    return [(({k: v.numpy().tolist() for k, v in x.items()}), None if y is None else
             ({k: v.numpy().tolist() for k, v in y.items()} if isinstance(y, dict) else y.numpy().tolist()))
            for x, y in loader]


def test_merlins_arguments_and_defaults():
    params = inspect.signature(mm.Loader).parameters
    assert list(params)[:3] == ["paths_or_dataset", "batch_size", "transform"]
    assert params["shuffle"].default is True and params["drop_last"].default is False


def test_targets_come_from_the_schema_and_the_rest_are_features():
    loader = mm.Loader(Dataset(FRAME, schema=SCHEMA), batch_size=2, shuffle=False)
    got = batches(loader)
    assert len(loader) == 3 and len(got) == 3
    assert got[0] == ({"user_id": [1, 2], "item_id": [7, 5], "item_year": [90, 91]}, [1.0, 0.0])
    assert got[2][0]["user_id"] == [5]
    assert loader.peek()[1].numpy().tolist() == [1.0, 0.0]


def test_label_names_drop_last_and_several_targets_as_a_dict():
    loader = mm.Loader(Dataset(FRAME, schema=SCHEMA), batch_size=2, shuffle=False, drop_last=True,
                       label_names=["click", "item_year"])
    got = batches(loader)
    assert len(got) == 2 and got[0][1] == {"click": [1.0, 0.0], "item_year": [90, 91]}
    assert "item_year" not in got[0][0]


def test_shuffle_and_seed_fn_reorder_every_row_once():
    loader = mm.Loader(Dataset(FRAME, schema=SCHEMA), batch_size=5, seed_fn=lambda: 3)
    first = batches(loader)[0][0]["user_id"]
    assert sorted(first) == [1, 2, 3, 4, 5]
    again = mm.Loader(Dataset(FRAME, schema=SCHEMA), batch_size=5, seed_fn=lambda: 3)
    assert batches(again)[0][0]["user_id"] == first


def test_map_to_target_moves_a_column_as_the_merlin_notebook_does():
    schema = SCHEMA.excluding_by_tag(Tags.TARGET)
    loader = mm.Loader(Dataset(FRAME.drop(columns="click"), schema=schema), batch_size=5, shuffle=False)
    loader = loader.map(mm.ToTarget(schema, "item_id"))
    features, targets = batches(loader)[0]
    assert sorted(features) == ["item_year", "user_id"] and targets == [7, 5, 7, 6, 5]
    assert Tags.TARGET in loader.output_schema["item_id"].tags and Tags.TARGET not in loader.input_schema["item_id"].tags


def test_to_target_one_hot_and_existing_targets():
    to_target = mm.ToTarget(SCHEMA, Tags.ITEM_ID, one_hot=True)
    features, targets = to_target({"user_id": np.array([1]), "item_id": np.array([2])})
    assert list(features) == ["user_id"] and np.asarray(targets).tolist() == [[0, 0, 1] + [0] * 7]
    _, both = mm.ToTarget(SCHEMA, "item_id")({"item_id": np.array([3])}, {"click": np.array([1.0])})
    assert sorted(both) == ["click", "item_id"]
    with pytest.raises(ValueError, match=r"ToTarget: 'nope' names no column of the schema"):
        mm.ToTarget(SCHEMA, "nope")


def test_paths_a_dataframe_with_schema_and_the_transform_argument(tmp_path):
    FRAME.to_parquet(tmp_path / "part_0.parquet")
    loader = mm.Loader(str(tmp_path / "*.parquet"), batch_size=5, shuffle=False, schema=SCHEMA,
                       transform=mm.ToTarget(SCHEMA, "item_id"))
    # as Merlin's ToTarget: a single target tensor before is replaced, a dict is added to
    assert batches(loader)[0][1] == [7, 5, 7, 6, 5]
    assert batches(mm.Loader(FRAME, batch_size=5, schema=SCHEMA, shuffle=False))[0][1] == [1.0, 0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match=r"a DataFrame needs schema="):
        mm.Loader(FRAME, batch_size=5)


@pytest.mark.parametrize("name, value", [("feature_columns", ["x"]), ("cat_names", ["x"]), ("cont_names", ["x"]),
                                         ("buffer_size", 0.5), ("device", "gpu"), ("parts_per_chunk", 2),
                                         ("reader_kwargs", {"a": 1}), ("global_size", 2), ("global_rank", 1),
                                         ("sparse_names", ["x"]), ("sparse_max", {"x": 2}), ("sparse_as_dense", True)])
def test_merlins_unsupported_arguments_are_refused_not_dropped(name, value):
    with pytest.raises(NotImplementedError, match=rf"Loader: {name}=.* is not supported \(Merlin's default"):
        mm.Loader(Dataset(FRAME, schema=SCHEMA), batch_size=2, **{name: value})


def test_batches_are_validated_by_the_one_builder():
    bad = FRAME.assign(item_id=[7, 5, 70, 6, 5])
    with pytest.raises(ValueError, match=r"item_id"):
        mm.Loader(Dataset(bad, schema=SCHEMA), batch_size=2)


def test_unique_rows_by_features_keeps_first_rows_and_the_schema():
    items = mm.unique_rows_by_features(Dataset(FRAME, schema=SCHEMA), Tags.ITEM, Tags.ITEM_ID)
    assert items.compute().to_dict("list") == {"item_id": [7, 5, 6], "item_year": [90, 91, 92]}
    assert items.schema.column_names == ["item_id", "item_year"]
    assert items.schema["item_id"].properties["domain"]["max"] == 9
    with pytest.raises(ValueError, match=r"no column .* is tagged <Tags.SESSION"):
        mm.unique_rows_by_features(Dataset(FRAME, schema=SCHEMA), Tags.SESSION, Tags.ID)
    with pytest.raises(TypeError, match=r"dataset must be a merlin.io.Dataset, got DataFrame"):
        mm.unique_rows_by_features(FRAME, Tags.ITEM)


def test_merlin_table_streams_a_folder_and_computes_the_rest(tmp_path):
    FRAME.to_parquet(tmp_path / "part_0.parquet")
    assert merlin_table(Dataset(str(tmp_path / "*.parquet"))) == tmp_path
    assert merlin_table(Dataset(FRAME)).equals(FRAME)
