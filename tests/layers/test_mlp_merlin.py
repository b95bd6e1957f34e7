"""MLPBlock's Merlin Models arguments, one test each, in Merlin's order."""

import inspect

import keras
import numpy as np
import pytest

import schemaretrieval as mm

X = np.array([[1.0, 2.0]], dtype="float32")


def test_merlins_positional_order():
    names = list(inspect.signature(mm.MLPBlock).parameters)[:13]
    assert names == ["dimensions", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                     "kernel_regularizer", "bias_regularizer", "activity_regularizer", "dropout", "normalization",
                     "filter", "no_activation_last_layer", "block_name"]
    assert mm.MLPBlock([3], "linear", False).layers[0].use_bias is False


def test_use_bias():
    mlp = mm.MLPBlock([3], use_bias=False)
    mlp.build((None, 2))
    assert [v.name for v in mlp.weights] == ["kernel"]


def test_initializers():
    mlp = mm.MLPBlock([3], activation="linear", kernel_initializer="ones", bias_initializer=keras.initializers.Constant(0.5))
    np.testing.assert_allclose(np.asarray(mlp(X)), [[3.5, 3.5, 3.5]])  # 1 + 2 + 0.5


def test_kernel_and_bias_regularizers():
    mlp = mm.MLPBlock([2], kernel_initializer="ones", bias_initializer="ones",
                      kernel_regularizer=keras.regularizers.L2(0.1), bias_regularizer=keras.regularizers.L1(0.5))
    mlp(X)
    # 0.1 * (4 weights of 1) and 0.5 * (2 biases of 1)
    np.testing.assert_allclose(sorted(float(v) for v in mlp.losses), [0.4, 1.0], rtol=1e-6)


def test_activity_regularizer():
    mlp = mm.MLPBlock([2], activation="linear", kernel_initializer="ones", bias_initializer="zeros",
                      activity_regularizer=keras.regularizers.L1(0.01))
    mlp(X)
    np.testing.assert_allclose([float(v) for v in mlp.losses], [0.01 * (3.0 + 3.0) / 1], rtol=1e-6)


def test_one_activation_per_layer():
    mlp = mm.MLPBlock([2, 2], activation=["linear", "relu"])
    assert [layer.activation.__name__ for layer in mlp.layers] == ["linear", "relu"]
    with pytest.raises(ValueError, match=r"activation lists 1 activations for 2 dimensions"):
        mm.MLPBlock([2, 2], activation=["relu"])


def test_dropout_and_its_range():
    assert [type(layer).__name__ for layer in mm.MLPBlock([2, 2], dropout=0.5).layers] == \
        ["Dense", "Dropout", "Dense", "Dropout"]
    with pytest.raises(ValueError, match=r"dropout must be a finite number >= 0 and < 1, got 1.5"):
        mm.MLPBlock([2], dropout=1.5)


def test_normalization_layer_is_copied_after_each_layer():
    mlp = mm.MLPBlock([3, 2], normalization=keras.layers.BatchNormalization(momentum=0.5))
    norms = [layer for layer in mlp.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2 and norms[0] is not norms[1] and {n.momentum for n in norms} == {0.5}
    assert tuple(mlp(X).shape) == (1, 2)  # widths 3 and 2: one shared instance would not build


def test_filter_is_refused_with_the_reason():
    with pytest.raises(NotImplementedError, match=r"filter= .* select the columns with the Encoder's schema"):
        mm.MLPBlock([2], filter=mm.Tags.USER)


def test_no_activation_last_layer():
    mlp = mm.MLPBlock([2], activation="relu", kernel_initializer=keras.initializers.Constant(-1.0),
                      no_activation_last_layer=True)
    np.testing.assert_allclose(np.asarray(mlp(X)), [[-3.0, -3.0]])


def test_block_name_names_the_layer_unless_name_is_given():
    assert mm.MLPBlock([2], block_name="user_mlp").name == "user_mlp"
    assert mm.MLPBlock([2], block_name="user_mlp", name="other").name == "other"
    assert mm.MLPBlock([2]).block_name == "MLPBlock"
