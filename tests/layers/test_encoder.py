"""MLPBlock and Encoder: activations, dropout, normalisation, block order and config round trips, by hand."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from schemaretrieval import schema as schema_lib
from schemaretrieval.layers import Encoder, MLPBlock
from schemaretrieval.schema import load_schema, schema_from_dict

SCHEMA = schema_from_dict({"columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                "domain": {"min": 0, "max": 9}, "embedding_dim": 3},
    "age": {"tags": ["user", "continuous"], "dtype": "float32"},
    "tags": {"tags": ["user", "categorical", "list"], "dtype": "int64",
             "domain": {"min": 0, "max": 4}, "embedding_dim": 2},
}})
USER_TABLE = np.arange(30, dtype="float32").reshape(10, 3)  # row i = [3i, 3i+1, 3i+2]
TAG_TABLE = np.array([[0, 0], [1, 10], [2, 20], [3, 30], [4, 40]], dtype="float32")  # row i = [i, 10i]

FEATURES = {
    "user_id": np.array([1, 4]),
    "age": np.array([0.5, -2.0], dtype="float32"),
    "tags": np.array([[1, 2, -1], [-1, -1, -1]]),
    # columns of the other tower, the target, anything: the encoder ignores them
    "item_id": np.array([7, 8, 9]),
    "title": np.array(["a", "b"]),
    "rating": np.array([1.0, 0.0]),
}
# user_id row | age | mean of tag rows (1, 2) = [1.5, 15]; all padding -> [0, 0]
INPUTS = np.array([[3, 4, 5, 0.5, 1.5, 15], [12, 13, 14, -2, 0, 0]], dtype="float32")


def set_tables(encoder):
    encoder(FEATURES)  # builds
    encoder.inputs_block.tables["user_id"].table.embeddings.assign(USER_TABLE)
    encoder.inputs_block.tables["tags"].table.embeddings.assign(TAG_TABLE)


def pick(columns, out_dim):
    """A (6, out_dim) kernel whose output j is input column columns[j]."""
    kernel = np.zeros((6, out_dim), dtype="float32")
    for j, column in enumerate(columns):
        kernel[column, j] = 1.0
    return kernel


def build_mlp(mlp, input_dim):
    mlp.build((None, input_dim))
    return mlp


# ---------------------------------------------------------------------------- MLPBlock


def test_mlp_output_width():
    assert MLPBlock([8, 3])(np.ones((5, 7), dtype="float32")).shape == (5, 3)
    assert MLPBlock([8, 3]).compute_output_shape((None, 7)) == (None, 3)


@pytest.mark.parametrize("linear_last, expected", [(False, 0.0), (True, -2.5)])
def test_mlp_last_layer_activation(linear_last, expected):
    mlp = build_mlp(MLPBlock([2, 1], no_activation_last_layer=linear_last), 2)
    mlp.layers[0].kernel.assign([[-1.0, 1.0], [-1.0, 1.0]])
    mlp.layers[0].bias.assign([0.0, 0.0])
    mlp.layers[1].kernel.assign([[5.0], [-1.0]])
    mlp.layers[1].bias.assign([0.5])
    # hidden: relu([1, 2] @ [[-1, 1], [-1, 1]]) = relu([-3, 3]) = [0, 3]  (the hidden relu stays)
    # last: 0 * 5 + 3 * -1 + 0.5 = -2.5, then relu -> 0 unless the last layer is linear
    out = np.asarray(mlp(np.array([[1.0, 2.0]], dtype="float32")))
    np.testing.assert_allclose(out, [[expected]], rtol=1e-6)


def test_mlp_relu_output_is_non_negative_and_linear_is_not():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    assert np.asarray(MLPBlock([8, 4])(x)).min() >= 0
    assert np.asarray(MLPBlock([8, 4], no_activation_last_layer=True)(x)).min() < 0


def dropout_mlp():
    # 64 hidden units that are all 1, copied to the output by an identity last layer
    mlp = build_mlp(MLPBlock([64, 64], dropout=0.5, no_activation_last_layer=True), 1)
    mlp.layers[0].kernel.assign(np.ones((1, 64)))
    mlp.layers[0].bias.assign(np.zeros(64))
    mlp.layers[-1].kernel.assign(np.eye(64))
    mlp.layers[-1].bias.assign(np.zeros(64))
    return mlp


def test_mlp_dropout_only_in_training():
    mlp = dropout_mlp()
    assert [type(layer).__name__ for layer in mlp.layers] == ["Dense", "Dropout", "Dense"]
    x = np.ones((4, 1), dtype="float32")
    for training in (None, False):
        np.testing.assert_array_equal(np.asarray(mlp(x, training=training)), np.ones((4, 64)))
    trained = np.asarray(mlp(x, training=True))
    # dropped units are 0, kept ones scaled by 1 / (1 - 0.5)
    assert set(np.unique(trained)) == {0.0, 2.0}


def test_mlp_layer_norm():
    mlp = build_mlp(MLPBlock([4, 4], activation="linear", normalization="layer_norm"), 2)
    # Merlin's: a normalisation after every layer, the last included
    assert [type(layer).__name__ for layer in mlp.layers] == ["Dense", "LayerNormalization"] * 2
    mlp.layers = mlp.layers[:-1]  # the first normalisation alone, through an identity layer
    mlp.layers[0].kernel.assign([[1.0, 0.0, 2.0, -1.0], [0.0, 1.0, 1.0, 3.0]])
    mlp.layers[0].bias.assign(np.zeros(4))
    mlp.layers[-1].kernel.assign(np.eye(4))
    mlp.layers[-1].bias.assign(np.zeros(4))
    out = np.asarray(mlp(np.array([[1.0, 2.0], [3.0, -1.0]], dtype="float32")))
    # hidden rows [1, 2, 4, 5] (mean 3, variance 2.5) and [3, -1, 5, -6] (mean 0.25, variance 17.6875);
    # keras' epsilon is 1e-3
    expected = [np.array([-2.0, -1.0, 1.0, 2.0]) / np.sqrt(2.5 + 1e-3),
                np.array([2.75, -1.25, 4.75, -6.25]) / np.sqrt(17.6875 + 1e-3)]
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_mlp_batch_norm():
    mlp = build_mlp(MLPBlock([4, 4], activation="linear", normalization="batch_norm"), 2)
    assert [type(layer).__name__ for layer in mlp.layers] == ["Dense", "BatchNormalization"] * 2
    mlp.layers = mlp.layers[:-1]  # the first normalisation alone, through an identity layer
    mlp.layers[0].kernel.assign([[1.0, 0.0, 2.0, -1.0], [0.0, 1.0, 1.0, 3.0]])
    mlp.layers[0].bias.assign(np.zeros(4))
    mlp.layers[-1].kernel.assign(np.eye(4))
    mlp.layers[-1].bias.assign(np.zeros(4))
    x = np.array([[1.0, 2.0], [3.0, -1.0]], dtype="float32")
    hidden = np.array([[1.0, 2.0, 4.0, 5.0], [3.0, -1.0, 5.0, -6.0]])
    # inference with fresh moving statistics (mean 0, variance 1): x / sqrt(1 + eps)
    np.testing.assert_allclose(np.asarray(mlp(x)), hidden / np.sqrt(1 + 1e-3), rtol=1e-5)
    # training: each feature by its batch mean [2, 0.5, 4.5, -0.5] and variance [1, 2.25, 0.25, 30.25]
    variance = np.array([1.0, 2.25, 0.25, 30.25])
    expected = np.array([[-1.0, 1.5, -0.5, 5.5], [1.0, -1.5, 0.5, -5.5]]) / np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(np.asarray(mlp(x, training=True)), expected, rtol=1e-5)


def test_mlp_layer_order_is_merlins():
    # dense, dropout, normalisation after every layer; a linear last layer has no dropout
    names = [type(layer).__name__ for layer in MLPBlock([4, 3, 2], dropout=0.1, normalization="layer_norm").layers]
    assert names == ["Dense", "Dropout", "LayerNormalization"] * 3
    linear = MLPBlock([4, 2], dropout=0.1, normalization="layer_norm", no_activation_last_layer=True)
    assert [type(layer).__name__ for layer in linear.layers] == ["Dense", "Dropout", "LayerNormalization", "Dense",
                                                                 "LayerNormalization"]
    assert [type(layer).__name__ for layer in MLPBlock([4], dropout=0.1, activation="selu").layers] == \
        ["Dense", "AlphaDropout"]


def test_mlp_unknown_normalization():
    with pytest.raises(ValueError, match=r"normalization must be one of \['batch_norm', 'layer_norm'\], a Keras "
                                         r"layer or None, got 'group_norm'"):
        MLPBlock([4], normalization="group_norm")


def test_mlp_needs_dimensions():
    with pytest.raises(ValueError, match=r"dimensions must list at least one layer width, got \[\]"):
        MLPBlock([])
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'dimensions'"):
        MLPBlock(units=[4])


def test_mlp_config_round_trip():
    mlp = MLPBlock([6, 3], activation="tanh", dropout=0.25, normalization="batch_norm",
                   no_activation_last_layer=True, kernel_regularizer="l2", name="mlp")
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    mlp(x, training=True)  # moves the batch norm statistics away from their start
    config = json.loads(json.dumps(mlp.get_config()))
    restored = MLPBlock.from_config(config)
    assert restored.get_config() == config
    assert (restored.dimensions, restored.activation, restored.dropout, restored.normalization,
            restored.no_activation_last_layer) == ([6, 3], "tanh", 0.25, "batch_norm", True)
    restored.build((None, 4))
    restored.set_weights(mlp.get_weights())
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(mlp(x)))
    # the l2 penalty comes along: one per dense layer, equal in value
    assert len(restored.losses) == len(mlp.losses) == 2
    # files saved before the Merlin names hold `units`
    old = {**config, "units": config["dimensions"]}
    del old["dimensions"]
    assert MLPBlock.from_config(old).dimensions == [6, 3]
    np.testing.assert_allclose([float(v) for v in restored.losses], [float(v) for v in mlp.losses], rtol=1e-6)


# ---------------------------------------------------------------------------- Encoder


def test_encoder_picks_its_columns():
    encoder = Encoder(SCHEMA)
    set_tables(encoder)
    assert encoder.column_names == ["user_id", "age", "tags"]
    np.testing.assert_allclose(np.asarray(encoder(FEATURES)), INPUTS, rtol=1e-6)


def test_encoder_missing_column_names_it():
    encoder = Encoder(SCHEMA, MLPBlock([4]))
    features = {k: v for k, v in FEATURES.items() if k != "age"}
    with pytest.raises(KeyError, match=r"no column\(s\) \['age'\]"):
        encoder(features)


def test_both_towers_read_one_batch():
    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "synthetic.yaml")
    batch = {"user_id": np.array([0, 1999]), "user_age": np.array([0.1, 0.9]), "user_country": np.array([0, 19]),
             "item_id": np.array([0, 2999]), "item_category": np.array([0, 29]),
             "item_tags": np.array([[0, 99, -1], [5, -1, -1]]), "item_price": np.array([0.3, 0.7]),
             "rating": np.array([1.0, 0.0])}
    # user_id 16 + age 1 + country 8; item_id 16 + category 8 + tags 8 + price 1
    assert Encoder(schema_lib.query_schema(schema))(batch).shape == (2, 25)
    assert Encoder(schema_lib.candidate_schema(schema))(batch).shape == (2, 33)


def linear_pick():
    """MLPBlock([2]) whose output is input columns 0 (user_id's first dim) and 3 (age)."""
    mlp = build_mlp(MLPBlock([2], no_activation_last_layer=True), 6)
    mlp.layers[0].kernel.assign(pick([0, 3], 2))
    mlp.layers[0].bias.assign([0.0, 0.0])
    return mlp


def test_encoder_blocks_applied_in_order():
    encoder = Encoder(SCHEMA, linear_pick(), keras.layers.UnitNormalization())
    set_tables(encoder)
    out = np.asarray(encoder(FEATURES))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0], rtol=1e-6)
    # [3, 0.5] / |[3, 0.5]| and [12, -2] / |[12, -2]|
    np.testing.assert_allclose(out, [[3 / np.sqrt(9.25), 0.5 / np.sqrt(9.25)],
                                     [12 / np.sqrt(148), -2 / np.sqrt(148)]], rtol=1e-6)

    # the other order: the whole input vector is normalised first, then columns 0 and 3 picked
    reverse = Encoder(SCHEMA, keras.layers.UnitNormalization(), linear_pick())
    set_tables(reverse)
    norms = np.sqrt([9 + 16 + 25 + 0.25 + 2.25 + 225, 144 + 169 + 196 + 4])  # sqrt(277.5), sqrt(513)
    np.testing.assert_allclose(np.asarray(reverse(FEATURES)),
                               [[3 / norms[0], 0.5 / norms[0]], [12 / norms[1], -2 / norms[1]]], rtol=1e-6)


def test_encoder_passes_training_to_blocks():
    one = schema_from_dict({"columns": {"x": {"tags": ["user", "continuous"], "dtype": "float32"}}})
    encoder = Encoder(one, dropout_mlp())
    features = {"x": np.ones(4, dtype="float32"), "other": np.zeros(4)}
    np.testing.assert_array_equal(np.asarray(encoder(features)), np.ones((4, 64)))
    assert set(np.unique(np.asarray(encoder(features, training=True)))) == {0.0, 2.0}


def test_encoder_serialization_round_trip():
    keras.utils.set_random_seed(0)
    encoder = Encoder(SCHEMA,
                      MLPBlock([8, 4], dropout=0.1, normalization="layer_norm", no_activation_last_layer=True),
                      keras.layers.UnitNormalization(), name="query")
    set_tables(encoder)
    expected = np.asarray(encoder(FEATURES))
    # through JSON, as a saved model stores it
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(encoder)))
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, Encoder) and restored.name == "query"
    assert restored.column_names == encoder.column_names
    assert [type(block) for block in restored.blocks] == [MLPBlock, keras.layers.UnitNormalization]
    assert restored.blocks[0].get_config() == encoder.blocks[0].get_config()
    restored(FEATURES)
    assert len(restored.get_weights()) == len(encoder.get_weights())
    restored.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(np.asarray(restored(FEATURES)), expected)
    # the restored tables are the assigned ones, not fresh random ones
    np.testing.assert_array_equal(np.asarray(restored.inputs_block.tables["tags"].table.embeddings), TAG_TABLE)
