"""ContrastiveOutput against losses worked out by hand on a tiny batch."""

import numpy as np
import pytest
from keras_rs.layers import RemoveAccidentalHits, SamplingProbabilityCorrection

from schemaretrieval.retrieval.outputs import MASK_VALUE, BPROutput, ContrastiveOutput
from schemaretrieval.retrieval.samplers import CandidateSampler, InBatchSampler, Negatives

# Three queries and their three positive candidates; items 7 and 7 collide.
QUERY = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")
POSITIVE = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]], dtype="float32")
IDS = np.array([7, 8, 7])
# QUERY @ POSITIVE.T, worked out:
SCORES = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 2.0, 1.0]])


def cross_entropy(logits, labels):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    return log_z - shifted[np.arange(len(labels)), labels]


def test_in_batch_softmax_is_tfrs_layout():
    output = ContrastiveOutput(downscore_false_negatives=False)
    logits, labels = output.logits_and_labels(QUERY, POSITIVE, IDS)
    np.testing.assert_allclose(np.asarray(logits), SCORES, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(labels), [0, 1, 2])
    # row 0: -log(e^1 / (e^1 + e^0 + e^1))
    assert np.isclose(cross_entropy(SCORES, [0, 1, 2])[0], -np.log(np.e / (2 * np.e + 1)))
    assert np.isclose(float(output(QUERY, POSITIVE, IDS)), cross_entropy(SCORES, [0, 1, 2]).mean(), rtol=1e-6)


def test_temperature_divides_logits():
    output = ContrastiveOutput(downscore_false_negatives=False, logits_temperature=0.5)
    expected = cross_entropy(SCORES / 0.5, [0, 1, 2]).mean()
    assert np.isclose(float(output(QUERY, POSITIVE, IDS)), expected, rtol=1e-6)


def test_a_post_layer_that_removes_candidates_with_minus_inf_leaves_a_finite_loss():
    # -inf becomes MASK_VALUE before the softmax, as every removed candidate's logit
    def remove_column_0(prediction):
        return np.where(np.arange(3) == 0, -np.inf, prediction.outputs)

    output = ContrastiveOutput(downscore_false_negatives=False, post=remove_column_0, loss_reduction="sum")
    loss = float(output(QUERY, POSITIVE, IDS))
    removed = SCORES.copy()
    removed[:, 0] = MASK_VALUE
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, cross_entropy(removed, [0, 1, 2]).sum(), rtol=1e-6)


def test_sum_reduction_and_sample_weight():
    per_row = cross_entropy(SCORES, [0, 1, 2])
    weights = np.array([1.0, 0.0, 2.0])
    mean = ContrastiveOutput(downscore_false_negatives=False)(QUERY, POSITIVE, IDS, sample_weight=weights)
    total = ContrastiveOutput(downscore_false_negatives=False, loss_reduction="sum")(QUERY, POSITIVE, IDS, sample_weight=weights)
    assert np.isclose(float(mean), (per_row * weights).sum() / 3, rtol=1e-6)
    assert np.isclose(float(total), (per_row * weights).sum(), rtol=1e-6)


def test_downscore_false_negatives_masks_same_id_but_not_the_label():
    logits, _ = ContrastiveOutput(downscore_false_negatives=True).logits_and_labels(QUERY, POSITIVE, IDS)
    logits = np.asarray(logits)
    # rows 0 and 2 share item 7: each other's column is removed, their own kept
    assert logits[0, 2] < -1e30 and logits[2, 0] < -1e30
    assert logits[0, 0] == 1.0 and logits[2, 2] == 1.0
    np.testing.assert_allclose(logits[1], SCORES[1])
    expected = np.mean(
        [cross_entropy([[1.0, 0.0]], [0])[0], cross_entropy([SCORES[1]], [1])[0], cross_entropy([[2.0, 1.0]], [1])[0]]
    )
    loss = ContrastiveOutput(downscore_false_negatives=True)(QUERY, POSITIVE, IDS)
    assert np.isclose(float(loss), expected, rtol=1e-6)


def test_keras_rs_remove_accidental_hits_is_a_no_op_in_0_4_0():
    # Why the library masks by itself: keras-rs 0.4.0 adds ~1e-40 to the
    # duplicates' logits instead of removing them. If this starts failing,
    # keras-rs fixed it and the library can use its layer.
    labels = np.eye(3, dtype="float32")
    logits = RemoveAccidentalHits()(SCORES.astype("float32"), labels, IDS)
    np.testing.assert_allclose(np.asarray(logits), SCORES, atol=1e-30)


def test_keras_rs_sampling_probability_correction_clips_at_one_in_0_4_0():
    # Why the library corrects by itself: samplers report expected copies,
    # which pass 1 for popular items in large batches; keras-rs 0.4.0 clips
    # them to 1, so a column holding 3 expected copies is under-corrected.
    corrected = SamplingProbabilityCorrection()(np.zeros((1, 2), "float32"), np.array([[0.5, 3.0]], "float32"))
    np.testing.assert_allclose(np.asarray(corrected), [[-np.log(0.5), 0.0]], rtol=1e-6)


def test_logq_sampling_correction_takes_expected_copies_above_one():
    counts = np.zeros(10)
    counts[7], counts[8] = 3.0, 1.0
    sampler = InBatchSampler(item_counts=counts)
    output = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=sampler, logq_sampling_correction=True)
    ids = np.array([7, 7, 7, 7, 8, 8, 7, 7])  # 8 draws: 6 expected copies of item 7, 2 of item 8
    query = positive = np.ones((8, 2), "float32")
    logits, _ = output.logits_and_labels(query, positive, ids)
    expected = 2.0 - np.log(np.where(ids == 7, 6.0, 2.0))
    np.testing.assert_allclose(np.asarray(logits)[0], expected, rtol=1e-6)


def test_candidate_sampling_probability_subtracts_log_q():
    probability = np.array([0.5, 0.25, 0.5], dtype="float32")
    logits, _ = ContrastiveOutput(downscore_false_negatives=False).logits_and_labels(
        QUERY, POSITIVE, IDS, candidate_sampling_probability=probability
    )
    np.testing.assert_allclose(np.asarray(logits), SCORES - np.log(probability)[None, :], rtol=1e-6)


def test_logq_sampling_correction_from_in_batch_item_counts():
    counts = np.zeros(10)
    counts[7], counts[8] = 3.0, 1.0  # q(7) = 0.75, q(8) = 0.25
    output = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts), logq_sampling_correction=True)
    logits, _ = output.logits_and_labels(QUERY, POSITIVE, IDS)
    # The expected copies in a batch of 3: 3q.
    q = 3 * np.array([0.75, 0.25, 0.75])
    np.testing.assert_allclose(np.asarray(logits), SCORES - np.log(q)[None, :], rtol=1e-5)
    # Without the flag the counts are carried but not used.
    plain = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts))
    np.testing.assert_allclose(np.asarray(plain.logits_and_labels(QUERY, POSITIVE, IDS)[0]), SCORES, rtol=1e-6)


def test_a_logq_weight_scales_the_correction_of_every_column():
    counts = np.zeros(10)
    counts[7], counts[8] = 3.0, 1.0  # expected copies in a batch of 3: 2.25 and 0.75
    output = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts), logq_sampling_correction=1.5)
    logits, _ = output.logits_and_labels(QUERY, POSITIVE, IDS)
    copies = 3 * np.array([0.75, 0.25, 0.75])
    np.testing.assert_allclose(np.asarray(logits), SCORES - 1.5 * np.log(copies)[None, :], rtol=1e-5)
    # Weight 1 is True; 0 is no correction.
    same = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts), logq_sampling_correction=1.0)
    ones = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts), logq_sampling_correction=True)
    np.testing.assert_allclose(np.asarray(same.logits_and_labels(QUERY, POSITIVE, IDS)[0]),
                               np.asarray(ones.logits_and_labels(QUERY, POSITIVE, IDS)[0]), rtol=1e-6)
    off = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=InBatchSampler(item_counts=counts), logq_sampling_correction=0.0)
    np.testing.assert_allclose(np.asarray(off.logits_and_labels(QUERY, POSITIVE, IDS)[0]), SCORES, rtol=1e-6)
    assert ContrastiveOutput.from_config(output.get_config()).logq_sampling_correction == 1.5


def test_num_hard_negatives_keeps_the_positive_and_the_hardest():
    output = ContrastiveOutput(downscore_false_negatives=False, num_hard_negatives=1)
    logits, labels = output.logits_and_labels(QUERY, POSITIVE, IDS)
    logits, labels = np.asarray(logits), np.asarray(labels)
    assert logits.shape == (3, 2)
    # each row keeps its positive's score and its highest other score
    for row, (positive, hardest) in enumerate([(1.0, 1.0), (2.0, 0.0), (1.0, 2.0)]):
        assert logits[row, labels[row]] == positive
        assert logits[row, 1 - labels[row]] == hardest
    expected = cross_entropy([[1.0, 1.0], [2.0, 0.0], [1.0, 2.0]], [0, 0, 0]).mean()
    assert np.isclose(float(output(QUERY, POSITIVE, IDS)), expected, rtol=1e-6)


class FixedSampler(CandidateSampler):
    """Always the same two extra candidates: items 8 and 9."""

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None):
        return Negatives(np.array([8, 9]), np.array([[0.0, 1.0], [2.0, 0.0]], dtype="float32"), np.array([0.5, 0.1]))


def test_extra_negatives_are_appended_for_every_row():
    output = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=["in-batch", FixedSampler()])
    logits, labels = output.logits_and_labels(QUERY, POSITIVE, IDS)
    extra = QUERY @ np.array([[0.0, 1.0], [2.0, 0.0]]).T
    np.testing.assert_allclose(np.asarray(logits), np.concatenate([SCORES, extra], axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(labels), [0, 1, 2])


def test_sampled_negatives_without_in_batch_put_the_positive_first():
    output = ContrastiveOutput(negative_samplers=FixedSampler(), downscore_false_negatives=True, logq_sampling_correction=True)
    logits, labels = output.logits_and_labels(QUERY, POSITIVE, IDS)
    positive_scores = (QUERY * POSITIVE).sum(axis=1)
    extra = QUERY @ np.array([[0.0, 1.0], [2.0, 0.0]]).T - np.log([0.5, 0.1])
    expected = np.concatenate([positive_scores[:, None], extra], axis=1)
    expected[1, 1] += MASK_VALUE  # row 1's positive is item 8, sampled again
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(labels), [0, 0, 0])


class KnownProbabilitySampler(FixedSampler):
    """FixedSampler that can also say how likely it draws any id."""

    PROBABILITY = {7: 0.2, 8: 0.5, 9: 0.1}

    def probability_of(self, ids):
        return np.array([self.PROBABILITY[int(i)] for i in np.asarray(ids)], dtype="float32")


def test_without_in_batch_the_positive_column_loses_its_own_log_probability():
    positive_scores = (QUERY * POSITIVE).sum(axis=1)
    extra = QUERY @ np.array([[0.0, 1.0], [2.0, 0.0]]).T - np.log([0.5, 0.1])
    own = np.log([0.2, 0.5, 0.2])  # rows' positives: items 7, 8, 7
    output = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=KnownProbabilitySampler(), logq_sampling_correction=True)
    logits, labels = output.logits_and_labels(QUERY, POSITIVE, IDS)
    np.testing.assert_allclose(np.asarray(logits), np.concatenate([(positive_scores - own)[:, None], extra], axis=1),
                               rtol=1e-6)
    # A weight weighs it too; two samplers add their probabilities.
    weighted = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=KnownProbabilitySampler(), logq_sampling_correction=1.5)
    np.testing.assert_allclose(np.asarray(weighted.logits_and_labels(QUERY, POSITIVE, IDS)[0])[:, 0],
                               positive_scores - 1.5 * own, rtol=1e-6)
    both = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=[KnownProbabilitySampler(), KnownProbabilitySampler()],
                             logq_sampling_correction=True)
    np.testing.assert_allclose(np.asarray(both.logits_and_labels(QUERY, POSITIVE, IDS)[0])[:, 0],
                               positive_scores - np.log(2 * np.exp(own)), rtol=1e-6)
    # A sampler that cannot say leaves the positive as it is; so does logQ off.
    mixed = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=[KnownProbabilitySampler(), FixedSampler()], logq_sampling_correction=True)
    np.testing.assert_allclose(np.asarray(mixed.logits_and_labels(QUERY, POSITIVE, IDS)[0])[:, 0], positive_scores,
                               rtol=1e-6)
    off = ContrastiveOutput(downscore_false_negatives=False, negative_samplers=KnownProbabilitySampler())
    np.testing.assert_allclose(np.asarray(off.logits_and_labels(QUERY, POSITIVE, IDS)[0])[:, 0], positive_scores,
                               rtol=1e-6)
    # The caller's candidate_sampling_probability comes first (as in TFRS).
    given = output.logits_and_labels(QUERY, POSITIVE, IDS, candidate_sampling_probability=np.array([0.1, 0.1, 0.1]))
    np.testing.assert_allclose(np.asarray(given[0])[:, 0], positive_scores - np.log(0.1), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"logits_temperature": 0.0}, "logits_temperature must be a finite number > 0, got 0.0"),
        ({"loss_reduction": "avg"}, "loss_reduction must be one of"),
        ({"num_hard_negatives": 0}, "num_hard_negatives must be an integer >= 1, got 0"),
        ({"logq_sampling_correction": -0.5}, r"logq_sampling_correction must be True, False or a weight >= 0, got -0.5"),
        ({"logq_sampling_correction": "yes"}, r"logq_sampling_correction must be True, False or a weight >= 0, got 'yes'"),
        ({"negative_samplers": "in-bach"}, "unknown sampler 'in-bach'"),
        ({"negative_samplers": ["in-batch", "in-batch"]}, "name the in-batch sampler once"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ContrastiveOutput(downscore_false_negatives=False, **kwargs)


@pytest.mark.parametrize("make", [
    lambda: ContrastiveOutput(negative_samplers=InBatchSampler(item_counts=np.arange(1.0, 11.0)),
                              logits_temperature=0.5, downscore_false_negatives=True, num_hard_negatives=2,
                              logq_sampling_correction=1.5, loss_reduction="sum"),
    lambda: BPROutput(negative_samplers=InBatchSampler(item_counts=np.arange(1.0, 11.0)), loss="top1-max",
                      logits_temperature=0.5, logq_sampling_correction=2.0, loss_reduction="sum"),
], ids=["contrastive", "bpr"])
def test_an_output_rebuilt_from_its_config_keeps_every_option_and_its_loss(make):
    output = make()
    config = output.get_config()
    rebuilt = type(output).from_config(config)
    assert rebuilt.get_config() == config
    for option in ("logits_temperature", "logq_sampling_correction", "loss_reduction"):
        assert getattr(rebuilt, option) == getattr(output, option)
    assert type(rebuilt.negative_samplers[0]) is InBatchSampler
    assert np.isclose(float(rebuilt(QUERY, POSITIVE, IDS)), float(output(QUERY, POSITIVE, IDS)), rtol=1e-6)
