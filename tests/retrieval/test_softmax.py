"""softmax_cross_entropy: TensorFlow's sparse softmax cross-entropy, values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from schemaretrieval.retrieval.outputs import MASK_VALUE
from schemaretrieval.retrieval.softmax import softmax_cross_entropy


def by_hand(logits, labels):
    logits = np.asarray(logits, dtype="float64")
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return log_z - logits[np.arange(len(labels)), labels]


def values_and_gradients(loss_fn, logits, labels, row_weights, jit=False):
    logits = tf.constant(logits)

    @tf.function(jit_compile=jit)
    def run():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            losses = loss_fn(labels, logits)
            total = tf.reduce_sum(losses * row_weights)
        return losses, tape.gradient(total, logits)

    return [t.numpy() for t in run()]


def tensorflow_op(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


@pytest.mark.parametrize("jit", [False, True])
def test_values_and_gradients_are_tensorflows(jit):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(64, 200)) * 4).astype("float32")
    logits[3, 5:50] = MASK_VALUE  # removed candidates, as ContrastiveOutput masks them
    logits[7] += 1e4  # far from 0: the row max keeps exp in range
    labels = rng.integers(0, 200, 64)
    labels[3] = 2
    weights = rng.uniform(0.1, 2.0, 64).astype("float32")  # sample weights / a mean reduction reach each row

    ours, our_gradient = values_and_gradients(softmax_cross_entropy, logits, labels, weights, jit)
    theirs, their_gradient = values_and_gradients(tensorflow_op, logits, labels, weights)

    # row 7's logits are near 1e4, where a float32 step is 1e-3
    np.testing.assert_allclose(ours, by_hand(logits, labels), rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(np.delete(ours, 7), np.delete(theirs, 7), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(our_gradient, their_gradient, rtol=1e-5, atol=1e-6)
    # softmax less the label, times the row's weight: each row's gradient sums to zero
    np.testing.assert_allclose(our_gradient.sum(axis=1), 0.0, atol=1e-5)
    assert our_gradient[3, 5:50].max() == 0.0


def test_one_candidate_costs_nothing_and_labels_may_be_int64():
    losses = softmax_cross_entropy(np.array([0], dtype="int64"), np.array([[3.0]], dtype="float32"))
    assert losses.numpy().tolist() == [0.0]


def test_other_float_types_are_refused_not_cast_silently():
    with pytest.raises(TypeError, match="logits must be float32 .*got float64"):
        softmax_cross_entropy(np.array([0]), np.zeros((1, 2), dtype="float64"))


def test_a_positive_far_below_its_row_still_gets_its_exact_loss():
    # softmax of the positive is e^-200: below float32's range, where -log p would be inf
    logits = np.array([[0.0, 200.0, 100.0], [1.0, 2.0, 3.0]], dtype="float32")
    labels = np.array([0, 2])
    losses, gradient = values_and_gradients(softmax_cross_entropy, logits, labels, np.ones(2, "float32"))
    np.testing.assert_allclose(losses, by_hand(logits, labels), rtol=1e-6)
    assert losses[0] == pytest.approx(200.0, rel=1e-6)
    np.testing.assert_allclose(gradient[0], [-1.0, 1.0, 0.0], atol=1e-6)
