"""A Keras loss in a model's compile(loss=): names and functions run as Keras's compile
runs them, losses that read probabilities are refused, and label smoothing leaves the
downscored false negatives' columns out; checked against Keras's own losses and a hand
computation."""

import keras
import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval.retrieval.logits_loss import logits_loss
from schemaretrieval.retrieval.losses import compile_loss
from schemaretrieval.retrieval.outputs import MASK_VALUE

RNG = np.random.default_rng(0)
TARGETS = np.eye(4, 6, dtype="float32")
LOGITS = RNG.normal(size=(4, 6)).astype("float32")
WEIGHTS = np.array([0.5, 1.0, 2.0, 0.0], "float32")


@pytest.mark.parametrize("loss", [
    keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
    keras.losses.CategoricalFocalCrossentropy(from_logits=True, label_smoothing=0.1),
    keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum"),
    keras.losses.MeanSquaredError(),
])
def test_without_masked_columns_a_keras_loss_reads_as_keras_computes_it(loss):
    for weights in (None, WEIGHTS):
        ours = float(compile_loss(loss)(TARGETS, LOGITS, weights))
        assert ours == pytest.approx(float(loss(TARGETS, LOGITS, sample_weight=weights)), rel=1e-5)


@pytest.mark.parametrize("name", ["mse", "log_cosh", keras.losses.mean_absolute_error])
def test_a_name_or_function_is_weighed_and_averaged_as_kerass_compile_does(name):
    function = keras.losses.get(name) if isinstance(name, str) else name
    expected = np.sum(np.asarray(function(TARGETS, LOGITS)) * WEIGHTS) / 4  # "sum_over_batch_size"
    assert float(compile_loss(name)(TARGETS, LOGITS, WEIGHTS)) == pytest.approx(expected, rel=1e-5)
    assert float(compile_loss(name)(TARGETS, LOGITS, None)) == pytest.approx(
        np.mean(np.asarray(function(TARGETS, LOGITS))), rel=1e-5)


def test_label_smoothing_is_spread_over_the_columns_that_are_candidates():
    logits = LOGITS.copy()
    logits[0, 3] = logits[2, [1, 5]] = MASK_VALUE  # downscored false negatives
    smoothing = 0.1
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    by_hand = []
    for row in range(4):
        candidates = logits[row] > MASK_VALUE / 2
        target = TARGETS[row] * (1 - smoothing) + smoothing * candidates / candidates.sum()
        log_softmax = logits[row][candidates] - np.log(np.exp(logits[row][candidates]).sum())
        by_hand.append(-(target[candidates] * log_softmax).sum())
    ours = float(logits_loss(loss)(TARGETS, logits, WEIGHTS))
    assert ours == pytest.approx(float(np.sum(np.array(by_hand) * WEIGHTS) / 4), rel=1e-5)
    assert float(loss(TARGETS, logits, sample_weight=WEIGHTS)) > 1e30  # Keras's own, for contrast
    binary = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)
    assert float(logits_loss(binary)(TARGETS, logits, None)) < 10


@pytest.mark.parametrize("loss, suggested", [
    (keras.losses.CategoricalCrossentropy(), "CategoricalCrossentropy"),
    (keras.losses.CategoricalCrossentropy, "CategoricalCrossentropy"),
    (keras.losses.binary_crossentropy, "BinaryCrossentropy"),
    ("binary_focal_crossentropy", "BinaryFocalCrossentropy"),
])
def test_a_loss_that_reads_probabilities_is_refused(loss, suggested):
    with pytest.raises(ValueError, match=rf"reads probabilities \(from_logits=False\), and a retrieval model's "
                                         rf"outputs are logits: give keras.losses.{suggested}\(from_logits=True\)"):
        compile_loss(loss)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  keras.losses.SparseCategoricalCrossentropy(from_logits=True)])
def test_a_sparse_cross_entropy_is_refused(loss):
    with pytest.raises(ValueError, match="takes integer labels, and a retrieval batch's targets are one-hot"):
        compile_loss(loss)


def test_fit_with_kerass_label_smoothing_reports_a_loss_of_the_logits_scale():
    schema = sr.load_schema("schemas/synthetic.yaml")
    data = sr.data.synthetic(schema, 2000, seed=0)
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    with pytest.raises(ValueError, match="reads probabilities"):
        model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    history = model.fit(data, epochs=1, batch_size=128, verbose=0)
    # log(128) = 4.85 is a uniform softmax over a batch; Keras's own smoothing read about 1e33 here
    assert 0 < history.history["loss"][0] < 10
