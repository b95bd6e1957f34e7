"""Encoder and InputBlockV2 as Merlin Models' users call them."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from merlin.io import Dataset
from merlin.schema import ColumnSchema, Schema, Tags

import schemaretrieval as mm

SCHEMA = Schema([
    ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype="int64",
                 properties={"domain": {"min": 0, "max": 9}, "embedding_dim": 4}),
    ColumnSchema("user_age", tags=[Tags.USER, Tags.CONTINUOUS], dtype="float32"),
])
BATCH = {"user_id": np.array([1, 2, 3]), "user_age": np.array([0.5, 0.1, 0.0], "float32")}


def test_input_block_v2_is_the_schemas_input_block():
    block = mm.InputBlockV2(SCHEMA)
    assert isinstance(block, mm.InputBlock) and block.column_names == ["user_id", "user_age"]
    assert tuple(block(BATCH).shape) == (3, 5)


@pytest.mark.parametrize("name, value", [("categorical", keras.layers.Dense(2)), ("continuous", Tags.USER),
                                         ("pre", keras.layers.Identity()), ("post", keras.layers.Identity()),
                                         ("aggregation", "stack"), ("tag_to_block", {})])
def test_input_block_v2_refuses_what_it_does_not_support(name, value):
    with pytest.raises(NotImplementedError, match=rf"InputBlockV2: {name}=.* is not supported"):
        mm.InputBlockV2(SCHEMA, **{name: value})


def test_input_block_v2_needs_a_schema_and_no_branches():
    with pytest.raises(ValueError, match=r"schema is required"):
        mm.InputBlockV2()
    with pytest.raises(NotImplementedError, match=r"extra branches \['extra'\]"):
        mm.InputBlockV2(SCHEMA, extra=keras.layers.Dense(2))


def test_encoder_takes_an_input_block_or_a_schema_alike():
    keras.utils.set_random_seed(0)
    from_block = mm.Encoder(mm.InputBlockV2(SCHEMA), mm.MLPBlock([3]))
    assert from_block.schema is SCHEMA and isinstance(from_block, keras.Model)
    assert tuple(from_block(BATCH).shape) == (3, 3)
    with pytest.raises(TypeError, match=r"inputs must be a merlin Schema or an InputBlock"):
        mm.Encoder(keras.layers.Dense(2))


def test_encoder_pre_and_post():
    double_age = lambda f: {**f, "user_age": f["user_age"] * 2.0}  # noqa: E731
    encoder = mm.Encoder(SCHEMA, pre=double_age, post=keras.layers.Lambda(lambda x: x[:, -1:]))
    np.testing.assert_allclose(np.asarray(encoder(BATCH)), [[1.0], [0.2], [0.0]], rtol=1e-6)


def test_encoder_saves_as_a_saved_model_and_as_keras(tmp_path):
    encoder = mm.Encoder(SCHEMA, mm.MLPBlock([3]), post=keras.layers.UnitNormalization())
    expected = np.asarray(encoder(BATCH))
    encoder.save(tmp_path / "tower")
    loaded = tf.saved_model.load(str(tmp_path / "tower"))
    np.testing.assert_allclose(loaded.serve(BATCH), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.layers.TFSMLayer(str(tmp_path / "tower"), call_endpoint="serve")(BATCH),
                               expected, rtol=1e-5, atol=1e-6)
    encoder.save(tmp_path / "tower.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "tower.keras")(BATCH), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match=r"trained as part of a model"):
        encoder.fit(BATCH)


def test_encoder_encode_is_merlins_table():
    encoder = mm.Encoder(SCHEMA, mm.MLPBlock([2]))
    frame = pd.DataFrame(BATCH)
    out = encoder.encode(Dataset(frame), index=Tags.USER_ID, batch_size=2).compute()
    assert out.index.name == "user_id" and out.index.tolist() == [1, 2, 3] and list(out.columns) == ["0", "1"]
    np.testing.assert_allclose(out.to_numpy(), np.asarray(encoder(BATCH)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"index: 'nope' must name exactly one column"):
        encoder.encode(Dataset(frame), index="nope")


# batch_predict, argument by argument, on a tower computed by hand: the age, then [age, 2 age].
AGE = Schema([ColumnSchema("user_age", tags=[Tags.USER, Tags.CONTINUOUS], dtype="float32")])
TABLE = pd.DataFrame({"user_id": [7, 8, 9], "user_age": np.array([0.5, 0.1, 0.0], "float32"), "city": [1, 2, 3]})
BY_HAND = np.array([[0.5, 1.0], [0.1, 0.2], [0.0, 0.0]])


def age_tower():
    return mm.Encoder(AGE, keras.layers.Dense(2, use_bias=False,
                                              kernel_initializer=keras.initializers.Constant([[1.0, 2.0]])))


def test_batch_predict_dataset_is_the_inputs_then_the_embeddings():
    tower = age_tower()
    for dataset in (Dataset(TABLE), TABLE, {k: v.to_numpy() for k, v in TABLE.items()},
                    mm.Loader(Dataset(TABLE, schema=AGE), batch_size=2, shuffle=False)):
        out = tower.batch_predict(dataset, batch_size=2)
        assert isinstance(out, Dataset)
        out = out.compute()
        assert list(out.columns) == ["user_id", "user_age", "city", "0", "1"]
        np.testing.assert_allclose(out[["0", "1"]].to_numpy(), BY_HAND, rtol=1e-6)
        assert out["user_id"].tolist() == [7, 8, 9]


def test_batch_predict_batch_size_changes_nothing_but_the_steps():
    tower = age_tower()
    for size in (1, 2, 100):
        np.testing.assert_allclose(tower.batch_predict(TABLE, size).compute()[["0", "1"]].to_numpy(), BY_HAND,
                                   rtol=1e-6)


def test_batch_predict_output_schema_keeps_those_input_columns():
    out = age_tower().batch_predict(TABLE, 2, output_schema=Schema(["city"])).compute()
    assert list(out.columns) == ["city", "0", "1"] and out["city"].tolist() == [1, 2, 3]


def test_batch_predict_index_moves_that_column_to_the_index():
    tower = age_tower()
    out = tower.batch_predict(TABLE, 2, index="user_age").compute()
    assert out.index.name == "user_age" and list(out.columns) == ["user_id", "city", "0", "1"]
    np.testing.assert_allclose(out.index.to_numpy(), [0.5, 0.1, 0.0], rtol=1e-6)
    by_tag = tower.batch_predict(TABLE, 2, output_schema=AGE, index=Tags.CONTINUOUS).compute()
    assert list(by_tag.columns) == ["0", "1"]
    np.testing.assert_allclose(by_tag.to_numpy(), BY_HAND, rtol=1e-6)
    # encode is batch_predict keeping the index alone
    pd.testing.assert_frame_equal(tower.encode(Dataset(TABLE), "user_age", 2).compute(), by_tag)
    with pytest.raises(ValueError, match=r"index: 'city' must name exactly one column"):
        tower.batch_predict(TABLE, 2, index="city")  # not a column of the tower's schema (as Merlin)


def test_batch_predict_refuses_what_would_differ():
    tower = age_tower()
    with pytest.raises(NotImplementedError, match=r"\['output_names'\] \(Merlin's TFModelEncode options\)"):
        tower.batch_predict(TABLE, 2, output_names=["a", "b"])
    with pytest.raises(NotImplementedError, match=r"a Loader with map\(\) transforms"):
        tower.batch_predict(mm.Loader(Dataset(TABLE, schema=AGE), 2).map(lambda x, y: (x, y)), 2)
    with pytest.raises(ValueError, match=r"the tower reads \['user_age'\], which the data set's schema"):
        tower.batch_predict(Dataset(TABLE[["city"]], schema=Schema(["city"])), 2)
