"""The pairwise losses (Merlin's interface) against hand computations, and
BPROutput's layout of positives and negatives."""

import keras
import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval.retrieval import losses
from schemaretrieval.retrieval.outputs import BPROutput
from schemaretrieval.retrieval.samplers import CandidateSampler, Negatives

# Merlin's form: one positive per row; the other columns are its negatives.
Y_TRUE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype="float32")
Y_PRED = np.array([[0.0, 1.0, 2.0], [0.5, 1.5, -1.0]], dtype="float32")
P = np.array([[1.0], [0.5]])                   # the positives' scores
N = np.array([[0.0, 2.0], [1.5, -1.0]])        # the negatives', in column order


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


S = softmax(N)
# Per pair, written out from Merlin's definitions.
HAND = {
    "bpr": -np.log(sigmoid(P - N)),
    "bpr-max": -np.log(sigmoid(P - N) * S) + 1.0 * S * N ** 2,
    "top1": sigmoid(N - P) + sigmoid(N ** 2),
    "top1_v2": np.repeat((sigmoid(N - P) + sigmoid(N ** 2)).mean(axis=1, keepdims=True) - sigmoid(P ** 2) / 2, 2, 1),
    "top1-max": (sigmoid(N - P) + sigmoid(N ** 2)) * S,
    "logistic": np.log1p(np.exp(N - P)),
    "hinge": np.maximum(0.0, 1.0 + N - P),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_compute_matches_the_hand_computation_per_pair(name):
    got = np.asarray(losses.PairwiseLoss.parse(name).compute(P.astype("float32"), N.astype("float32")))
    np.testing.assert_allclose(got, HAND[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HAND))
def test_call_on_merlins_form_is_the_mean_over_the_pairs(name):
    loss = losses.PairwiseLoss.parse(name)
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PRED)), HAND[name].mean(), rtol=1e-5)


def test_reduction_sum_and_none():
    np.testing.assert_allclose(float(losses.BPRLoss(reduction="sum")(Y_TRUE, Y_PRED)), HAND["bpr"].sum(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.BPRLoss(reduction="none")(Y_TRUE, Y_PRED)), HAND["bpr"], rtol=1e-5)
    with pytest.raises(ValueError, match=r"BPRLoss: reduction must be one of .*got 'average'"):
        losses.BPRLoss(reduction="average")


def test_valid_negatives_mask_zeroes_false_negatives_as_argument_and_attribute():
    mask = np.array([[True, False], [True, True]])
    expected = (HAND["bpr"] * mask).mean()
    loss = losses.BPRLoss()
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PRED, valid_negatives_mask=mask)), expected, rtol=1e-5)
    assert loss.valid_negatives_mask is mask  # kept, as Merlin's attribute
    other = losses.BPRLoss()
    other.valid_negatives_mask = mask
    np.testing.assert_allclose(float(other(Y_TRUE, Y_PRED)), expected, rtol=1e-5)
    # a mask over all C columns (the positive's included) works too
    wide = np.array([[True, True, False], [True, True, True]])
    np.testing.assert_allclose(float(losses.BPRLoss()(Y_TRUE, Y_PRED, valid_negatives_mask=wide)), expected,
                               rtol=1e-5)


def test_a_row_without_a_positive_has_no_loss():
    y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype="float32")
    got = np.asarray(losses.BPRLoss(reduction="none")(y_true, Y_PRED))
    np.testing.assert_allclose(got, [HAND["bpr"][0], [0.0, 0.0]], rtol=1e-5)


def test_sample_weight_weighs_rows():
    got = float(losses.BPRLoss()(Y_TRUE, Y_PRED, sample_weight=np.array([2.0, 0.0])))
    np.testing.assert_allclose(got, (2 * HAND["bpr"][0]).sum() / 4, rtol=1e-5)
    # rows and pairs per row differ: a [B] weight (a table's weight column) is each row's, as [B, 1] is
    y_true, y_pred = np.eye(3, 4, dtype="float32"), np.arange(12, dtype="float32").reshape(3, 4) / 4
    pairs = np.asarray(losses.BPRLoss(reduction="none")(y_true, y_pred))  # [3, 3]
    for weights in (np.array([2.0, 0.0, 1.0]), np.array([[2.0], [0.0], [1.0]])):
        got = float(losses.BPRLoss()(y_true, y_pred, sample_weight=weights))
        np.testing.assert_allclose(got, (pairs * np.reshape(weights, (3, 1))).sum() / 9, rtol=1e-5)


@pytest.mark.parametrize("name", ["bpr", "bpr-max", "top1", "top1-max", "hinge"])
def test_a_downscored_false_negative_is_no_pair(name):
    # what an output hands compile(loss=): the false negative's column at MASK_VALUE
    from schemaretrieval.retrieval.outputs import MASK_VALUE

    y_true = np.eye(2, 4, dtype="float32")
    y_pred = np.array([[1.0, 0.5, MASK_VALUE, 2.0], [0.3, 1.0, -1.0, 0.0]], "float32")
    loss = losses.PairwiseLoss.parse(name)
    got = float(loss(y_true, y_pred))
    # the same pairs with the column left out by valid_negatives_mask, at the score row_losses gives it
    masked = np.where(y_pred == MASK_VALUE, losses.MASKED_SCORE, y_pred).astype("float32")
    valid = y_pred != MASK_VALUE
    assert np.isfinite(got)
    assert got == pytest.approx(float(losses.PairwiseLoss.parse(name)(y_true, masked, valid_negatives_mask=valid)),
                                rel=1e-6)


def test_parse_takes_names_classes_and_instances_and_names_what_it_knows():
    instance = losses.HingeLoss(margin=2.0)
    assert losses.PairwiseLoss.parse(instance) is instance
    assert type(losses.PairwiseLoss.parse(losses.TOP1maxLoss)).__name__ == "TOP1maxLoss"
    assert type(sr.losses.BPRLoss.parse("bpr")).__name__ == "BPRLoss"
    with pytest.raises(ValueError, match=r"unknown loss 'bpr_max' \(did you mean 'bpr-max'"):
        losses.get_loss("bpr_max")
    with pytest.raises(TypeError, match=r"expected a pairwise loss name .* got 3"):
        losses.get_loss(3)


def test_merlin_constructor_arguments():
    loss = losses.BPRLoss(reduction="auto", name="my_bpr")
    assert (loss.name, loss.reduction) == ("my_bpr", "sum_over_batch_size")
    assert losses.BPRmaxLoss(reg_lambda=0.5).reg_lambda == 0.5
    with pytest.raises(ValueError, match=r"reg_lambda must be a finite number >= 0, got -1"):
        losses.BPRmaxLoss(reg_lambda=-1)
    # the margin of the hinge is this library's option (Merlin's is 1)
    np.testing.assert_allclose(np.asarray(losses.HingeLoss(margin=3.0).compute(P, N)), np.maximum(0, 3 + N - P))


@pytest.mark.parametrize("name", sorted(HAND))
def test_config_round_trip(name):
    loss = losses.PairwiseLoss.parse(name)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


@pytest.mark.parametrize("name", sorted(HAND))
def test_row_losses_leave_masked_negatives_out_without_nan(name):
    mask = np.array([[True, False], [True, True]])
    poisoned = N.astype("float32").copy()
    poisoned[~mask] = 1e30
    got = np.asarray(losses.PairwiseLoss.parse(name).row_losses(P[:, 0], poisoned, mask))
    assert np.isfinite(got).all()
    # row 1 has every negative: the mean of its pairs
    np.testing.assert_allclose(got[1], HAND[name][1].mean(), rtol=1e-5)
    if name in ("bpr", "top1", "logistic", "hinge"):  # no softmax over the row: the one valid pair
        np.testing.assert_allclose(got[0], HAND[name][0, 0], rtol=1e-5)


def test_every_merlin_loss_name_is_registered():
    from schemaretrieval import registry

    assert set(HAND) <= set(registry.names("loss"))


# BPROutput: which scores meet which.

QUERY = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")
POSITIVES = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]], dtype="float32")
IDS = np.array([7, 8, 7])
SCORES = QUERY @ POSITIVES.T  # [[1, 0, 1], [0, 2, 0], [1, 2, 1]]


class Extra(CandidateSampler):
    """Items 8 and -1 (an empty slot) for every row."""

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        return Negatives(np.array([8, -1]), np.array([[0.0, 1.0], [5.0, 5.0]], dtype="float32"), np.array([0.5, 0.5]))


def test_bpr_output_in_batch_leaves_out_own_column_and_same_id():
    output = BPROutput(loss="bpr")
    positive, negative, mask = (np.asarray(t) for t in output.scores_and_mask(QUERY, POSITIVES, IDS))
    np.testing.assert_allclose(positive, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(negative, SCORES)
    # rows 0 and 2 share item 7: only item 8 is a negative for them
    np.testing.assert_array_equal(mask, [[False, True, False], [True, False, True], [False, True, False]])
    expected = np.mean([-np.log(sigmoid(1.0)), -np.log(sigmoid(2.0)), -np.log(sigmoid(-1.0))])
    assert np.isclose(float(output(QUERY, POSITIVES, IDS)), expected, rtol=1e-6)


def test_bpr_output_extra_negatives_masks_false_negatives_and_empty_slots():
    # True is Merlin's correction: (score - log q) / temperature
    output = BPROutput(negative_samplers=Extra(), loss="bpr", logits_temperature=0.5, logq_sampling_correction=True)
    positive, negative, mask = (np.asarray(t) for t in output.scores_and_mask(QUERY, POSITIVES, IDS))
    np.testing.assert_allclose(positive, [2.0, 4.0, 2.0])
    np.testing.assert_allclose(negative[:, 0], (np.array([0.0, 1.0, 1.0]) - np.log(0.5)) / 0.5, rtol=1e-6)
    np.testing.assert_array_equal(mask, [[True, False], [False, False], [True, False]])
    weights = np.array([1.0, 3.0, 0.0])
    row0 = -np.log(sigmoid(2.0 - (0.0 - np.log(0.5)) / 0.5))
    total = BPROutput(negative_samplers=Extra(), logits_temperature=0.5, logq_sampling_correction=True,
                      loss_reduction="sum")
    assert np.isclose(float(total(QUERY, POSITIVES, IDS, sample_weight=weights)), row0, rtol=1e-5)
    # a number is this library's weight, after the temperature
    weighted = BPROutput(negative_samplers=Extra(), logits_temperature=0.5, logq_sampling_correction=2.0)
    negative = np.asarray(weighted.scores_and_mask(QUERY, POSITIVES, IDS)[1])
    np.testing.assert_allclose(negative[:, 0], np.array([0.0, 1.0, 1.0]) / 0.5 - 2.0 * np.log(0.5), rtol=1e-6)


def test_bpr_output_prediction_is_merlins_form():
    loss, prediction = BPROutput(loss="bpr")(QUERY, POSITIVES, IDS, return_prediction=True)
    logits = np.asarray(prediction.outputs)
    np.testing.assert_allclose(logits[:, 0], [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(np.asarray(prediction.targets)[:, 0], [1, 1, 1])
    # row 0: its own column and item 7's other copy left out, item 8 kept
    assert logits[0, 2] == 0.0 and logits[0, 1] < -1e30 and logits[0, 3] < -1e30
