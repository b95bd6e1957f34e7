"""The pairwise losses against hand computations, masked rows included, and
BPROutput's layout of positives and negatives."""

import keras_rs
import numpy as np
import pytest

from schemaretrieval.retrieval import losses
from schemaretrieval.retrieval.outputs import BPROutput
from schemaretrieval.retrieval.samplers import CandidateSampler, Negatives

# Two rows; row 1's second negative is masked (a false negative), row 2 has
# no valid negative at all.
POSITIVE = np.array([1.0, 0.5, 2.0], dtype="float32")
NEGATIVE = np.array([[0.0, 2.0], [1.5, -1.0], [0.3, 0.4]], dtype="float32")
MASK = np.array([[True, True], [True, False], [False, False]])


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# Row by row, written out from the definitions.
HAND = {
    "bpr": [
        (-np.log(sigmoid(1.0)) - np.log(sigmoid(-1.0))) / 2,
        -np.log(sigmoid(-1.0)),
        0.0,
    ],
    "top1": [
        ((sigmoid(-1.0) + sigmoid(0.0)) + (sigmoid(1.0) + sigmoid(4.0))) / 2,
        sigmoid(1.0) + sigmoid(2.25),
        0.0,
    ],
    "hinge": [(max(0, 1 - 1.0) + max(0, 1 + 1.0)) / 2, max(0, 1 + 1.0), 0.0],
}
S0 = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()  # softmax of row 0's negatives
HAND["bpr-max"] = [
    -np.log(S0[0] * sigmoid(1.0) + S0[1] * sigmoid(-1.0)) + 1.0 * (S0[0] * 0.0 + S0[1] * 4.0),
    # one valid negative: its softmax weight is 1
    -np.log(sigmoid(-1.0)) + 1.0 * 2.25,
    0.0,
]
HAND["top1-max"] = [
    S0[0] * (sigmoid(-1.0) + sigmoid(0.0)) + S0[1] * (sigmoid(1.0) + sigmoid(4.0)),
    sigmoid(1.0) + sigmoid(2.25),
    0.0,
]
HAND["logistic"] = HAND["bpr"]  # log(1 + e^-d) = -log sigmoid(d)


@pytest.mark.parametrize("name", ["bpr", "bpr-max", "hinge", "logistic", "top1", "top1-max"])
def test_each_loss_matches_the_hand_computation_with_masks(name):
    got = np.asarray(losses.get_loss(name).compute(POSITIVE, NEGATIVE, MASK))
    np.testing.assert_allclose(got, HAND[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["bpr", "bpr-max", "hinge", "logistic", "top1", "top1-max"])
def test_masked_scores_do_not_change_the_loss(name):
    # Huge values in masked places neither leak in nor make NaN.
    poisoned = NEGATIVE.copy()
    poisoned[~MASK] = 1e30
    got = np.asarray(losses.get_loss(name)(POSITIVE, poisoned, MASK))
    np.testing.assert_allclose(got, HAND[name], rtol=1e-5, atol=1e-6)


def test_no_mask_uses_every_negative():
    got = np.asarray(losses.BPRLoss().compute(POSITIVE[:1], NEGATIVE[:1]))
    np.testing.assert_allclose(got, HAND["bpr"][:1], rtol=1e-6)


def test_hinge_margin():
    got = np.asarray(losses.HingeLoss(margin=3.0).compute(POSITIVE[:1], NEGATIVE[:1]))
    np.testing.assert_allclose(got, [(max(0, 3 - 1.0) + max(0, 3 + 1.0)) / 2], rtol=1e-6)


@pytest.mark.parametrize(
    "ours, theirs",
    [(losses.LogisticLoss(), keras_rs.losses.PairwiseLogisticLoss), (losses.HingeLoss(), keras_rs.losses.PairwiseHingeLoss)],
)
def test_keras_rs_semantics_are_pinned(ours, theirs):
    # keras-rs 0.4.0 on the list [positive, negatives] with labels [1, 0, ...]
    # and the mask: per row, the SUM over valid (positive, negative) pairs of
    # its pairwise loss. Ours is the same divided by the number of valid
    # negatives. If keras-rs changes what its losses compute, this fails.
    scores = np.concatenate([POSITIVE[:2, None], NEGATIVE[:2]], axis=1)
    labels = np.array([[1.0, 0.0, 0.0]] * 2, dtype="float32")
    mask = np.concatenate([np.ones((2, 1), bool), MASK[:2]], axis=1)
    per_item = np.asarray(theirs(reduction="none")({"labels": labels, "mask": mask}, scores))
    np.testing.assert_allclose(per_item[:, 1:], 0.0)
    sums = per_item.sum(axis=1)
    np.testing.assert_allclose(np.asarray(ours.compute(POSITIVE[:2], NEGATIVE[:2], MASK[:2])), sums / MASK[:2].sum(axis=1), rtol=1e-5)


def test_unknown_loss_is_named_with_a_did_you_mean():
    with pytest.raises(ValueError, match=r"unknown loss 'bpr_max' \(did you mean 'bpr-max'"):
        losses.get_loss("bpr_max")


def test_every_registered_loss_has_a_hand_computation():
    from schemaretrieval import registry

    assert {"bpr", "bpr-max", "hinge", "logistic", "top1", "top1-max"} <= set(registry.names("loss"))


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
    output = BPROutput(negative_samplers=Extra(), loss="bpr", logits_temperature=0.5, logq_correction=True)
    positive, negative, mask = (np.asarray(t) for t in output.scores_and_mask(QUERY, POSITIVES, IDS))
    np.testing.assert_allclose(positive, [2.0, 4.0, 2.0])
    np.testing.assert_allclose(negative[:, 0], np.array([0.0, 1.0, 1.0]) / 0.5 - np.log(0.5), rtol=1e-6)
    np.testing.assert_array_equal(mask, [[True, False], [False, False], [True, False]])
    weights = np.array([1.0, 3.0, 0.0])
    row0 = -np.log(sigmoid(2.0 - (0.0 - np.log(0.5))))
    total = BPROutput(negative_samplers=Extra(), logits_temperature=0.5, logq_correction=True, loss_reduction="sum")
    assert np.isclose(float(total(QUERY, POSITIVES, IDS, sample_weight=weights)), row0, rtol=1e-5)
    weighted = BPROutput(negative_samplers=Extra(), logits_temperature=0.5, logq_correction=2.0)
    negative = np.asarray(weighted.scores_and_mask(QUERY, POSITIVES, IDS)[1])
    np.testing.assert_allclose(negative[:, 0], np.array([0.0, 1.0, 1.0]) / 0.5 - 2.0 * np.log(0.5), rtol=1e-6)
