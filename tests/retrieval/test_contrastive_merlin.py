"""ContrastiveOutput's Merlin Models arguments, each against a hand computation (Merlin's order)."""

import inspect

import keras
import numpy as np
import pytest
from merlin.schema import ColumnSchema, Schema, Tags

import schemaretrieval as mm
from schemaretrieval.retrieval.outputs import MASK_VALUE, ContrastiveOutput, Prediction
from schemaretrieval.retrieval.samplers import InBatchSampler

QUERY = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")
POSITIVE = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]], dtype="float32")
IDS = np.array([7, 8, 7])  # rows 0 and 2 share item 7
SCORES = QUERY @ POSITIVE.T  # [[1, 0, 1], [0, 2, 0], [1, 2, 1]]
ITEM_ID = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype="int64",
                               properties={"domain": {"min": 0, "max": 9}})])


def cross_entropy(logits, labels):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]


def logits_of(output, **kwargs):
    return np.asarray(output.logits_and_labels(QUERY, POSITIVE, IDS, **kwargs)[0])


def test_merlins_positional_order():
    names = list(inspect.signature(ContrastiveOutput).parameters)
    assert names[:15] == ["to_call", "negative_samplers", "target_name", "pre", "post", "logits_temperature", "name",
                          "default_loss", "default_metrics_fn", "downscore_false_negatives",
                          "false_negative_score", "query_name", "candidate_name", "store_negative_ids",
                          "logq_sampling_correction"]
    output = ContrastiveOutput(ITEM_ID, "in-batch", None, None, None, 0.5)
    assert (output.target_name, output.logits_temperature) == ("item_id", 0.5)


def test_to_call_is_the_item_id_column():
    assert ContrastiveOutput(ITEM_ID, "in-batch").col_schema.name == "item_id"
    assert ContrastiveOutput(ITEM_ID["item_id"], "in-batch").target_name == "item_id"
    assert ContrastiveOutput(None, "in-batch").target_name is None
    with pytest.raises(ValueError, match=r"to_call must be a one-column schema \(the item id\), got \['a', 'b'\]"):
        ContrastiveOutput(Schema([ColumnSchema("a"), ColumnSchema("b")]), "in-batch")
    with pytest.raises(NotImplementedError, match=r"to_call=Dense is not supported"):
        ContrastiveOutput(keras.layers.Dense(2), "in-batch")


def test_target_name_names_the_positive_id_column_and_wins_over_to_call():
    assert ContrastiveOutput(ITEM_ID, "in-batch", target_name="item_alias").target_name == "item_alias"
    schema = mm.load_schema("schemas/synthetic.yaml")
    query = mm.Encoder(mm.schema.query_schema(schema))
    candidate = mm.Encoder(mm.schema.candidate_schema(schema))
    model = mm.TwoTowerModelV2(query, candidate, outputs=ContrastiveOutput(None, "in-batch", target_name="item_category"))
    assert model.positive_id_column == "item_category"
    with pytest.raises(ValueError, match=r"the output's target 'nope' is not a column of the schema"):
        mm.TwoTowerModelV2(query, candidate, outputs=ContrastiveOutput(None, "in-batch", target_name="nope"))


def test_merlins_schema_and_target_keywords_and_set_negative_samplers():
    # Merlin's docstring example writes schema=, its config target=; both were "Unrecognized keyword arguments"
    output = ContrastiveOutput(None, "in-batch", schema=ITEM_ID, logits_temperature=0.2)
    assert (output.col_schema.name, output.target_name) == ("item_id", "item_id")
    assert ContrastiveOutput(ITEM_ID, "in-batch", target="item_alias").target_name == "item_alias"
    with pytest.raises(ValueError, match=r"give the item-id column as to_call or as schema=, not both"):
        ContrastiveOutput(ITEM_ID, "in-batch", schema=ITEM_ID)
    with pytest.raises(ValueError, match=r"target='a' and target_name='b' differ"):
        ContrastiveOutput(ITEM_ID, "in-batch", target_name="b", target="a")
    output.set_negative_samplers(["in-batch", "uniform"])
    assert [type(s).__name__ for s in output.negative_samplers] == ["InBatchSampler", "UniformSampler"]
    output.set_negative_samplers("in-batch")
    output(QUERY, POSITIVE, IDS)  # builds it: replacing its samplers now would leave their state behind
    with pytest.raises(ValueError, match=r"ContrastiveOutput.set_negative_samplers: the output is built"):
        output.set_negative_samplers("uniform")


def test_pre_transforms_the_towers_outputs_before_the_scores():
    double_query = lambda towers: {"query": towers["query"] * 2.0, "candidate": towers["candidate"]}  # noqa: E731
    output = ContrastiveOutput(None, "in-batch", pre=double_query, downscore_false_negatives=False)
    np.testing.assert_allclose(logits_of(output), 2 * SCORES, rtol=1e-6)


def test_post_transforms_the_prediction_before_the_temperature():
    def post(prediction):  # Merlin's post: a Prediction in, a Prediction out
        return prediction.copy_with_updates(outputs=prediction.outputs + 1.0)

    output = ContrastiveOutput(None, "in-batch", post=post, logits_temperature=2.0, downscore_false_negatives=False)
    np.testing.assert_allclose(logits_of(output), (SCORES + 1.0) / 2.0, rtol=1e-6)
    bare = ContrastiveOutput(None, "in-batch", post=lambda p: p.outputs * 3.0, downscore_false_negatives=False)
    np.testing.assert_allclose(logits_of(bare), 3 * SCORES, rtol=1e-6)  # a tensor back works too


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_false_negative_score_is_the_downscored_logit_before_the_temperature(temperature):
    output = ContrastiveOutput(None, "in-batch", logits_temperature=temperature, downscore_false_negatives=True,
                               false_negative_score=-5.0)
    expected = SCORES.copy()
    expected[0, 2] = expected[2, 0] = -5.0  # the other copy of item 7, for rows 0 and 2
    np.testing.assert_allclose(logits_of(output), expected / temperature, rtol=1e-6)
    loss = float(output(QUERY, POSITIVE, IDS))
    assert np.isclose(loss, cross_entropy(expected / temperature, [0, 1, 2]).mean(), rtol=1e-6)


def test_downscore_false_negatives_default_is_merlins_and_false_keeps_them():
    assert ContrastiveOutput().downscore_false_negatives is True
    assert ContrastiveOutput().false_negative_score == MASK_VALUE == np.finfo(np.float32).min / 100
    np.testing.assert_allclose(logits_of(ContrastiveOutput(None, "in-batch", downscore_false_negatives=False)), SCORES)
    on = logits_of(ContrastiveOutput())
    assert on[0, 2] <= MASK_VALUE and on[2, 0] <= MASK_VALUE and on[0, 0] == 1.0 and on[2, 2] == 1.0


def test_store_negative_ids_gives_post_and_predictions_the_negatives_ids():
    seen = []

    def post(prediction):
        seen.append(prediction.negative_candidate_ids)
        return prediction

    output = ContrastiveOutput(None, "in-batch", post=post, store_negative_ids=True)
    prediction = output.predictions(QUERY, POSITIVE, IDS)
    np.testing.assert_array_equal(np.asarray(prediction.negative_candidate_ids), IDS)
    np.testing.assert_array_equal(np.asarray(seen[0]), IDS)
    np.testing.assert_array_equal(np.asarray(prediction.targets), np.eye(3))
    assert ContrastiveOutput(None, "in-batch").predictions(QUERY, POSITIVE, IDS).negative_candidate_ids is None


def test_logq_sampling_correction_true_is_merlins_before_the_temperature():
    counts = np.zeros(10)
    counts[7], counts[8] = 3.0, 1.0
    copies = 3 * np.array([0.75, 0.25, 0.75])  # expected copies in a batch of 3
    merlin = ContrastiveOutput(None, InBatchSampler(item_counts=counts), logits_temperature=0.5,
                               downscore_false_negatives=False, logq_sampling_correction=True)
    np.testing.assert_allclose(logits_of(merlin), (SCORES - np.log(copies)[None, :]) / 0.5, rtol=1e-5)
    weighted = ContrastiveOutput(None, InBatchSampler(item_counts=counts), logits_temperature=0.5,
                                 downscore_false_negatives=False, logq_sampling_correction=1.0)
    np.testing.assert_allclose(logits_of(weighted), SCORES / 0.5 - np.log(copies)[None, :], rtol=1e-5)


def test_merlins_other_arguments_accept_their_defaults_and_name_what_is_not_supported():
    output = ContrastiveOutput(None, "in-batch", name="retrieval", default_metrics_fn=lambda: [mm.RecallAt(5)])
    assert output.name == "retrieval" and output.default_metrics_fn()[0].name == "recall_at_5"
    with pytest.raises(NotImplementedError, match=r"default_loss='bpr' is not supported .* BPROutput"):
        ContrastiveOutput(None, "in-batch", default_loss="bpr")
    with pytest.raises(NotImplementedError, match=r"query_name='user', candidate_name='candidate' are not supported"):
        ContrastiveOutput(None, "in-batch", query_name="user")
    with pytest.raises(TypeError, match=r"default_metrics_fn must be a callable or None, got int"):
        ContrastiveOutput(None, "in-batch", default_metrics_fn=3)
    with pytest.raises(ValueError, match=r"false_negative_score must be a finite number, got -inf"):
        ContrastiveOutput(None, "in-batch", false_negative_score=-np.inf)


def test_predictions_are_merlins_form():
    prediction = ContrastiveOutput(None, "in-batch", downscore_false_negatives=False).predictions(QUERY, POSITIVE, IDS)
    assert isinstance(prediction, Prediction)
    np.testing.assert_allclose(np.asarray(prediction.outputs), SCORES)
    np.testing.assert_array_equal(np.asarray(prediction.targets), np.eye(3))


def test_config_round_trip_keeps_the_merlin_arguments():
    output = ContrastiveOutput(ITEM_ID, "in-batch", target_name="item_id", post=keras.layers.Identity(),
                               logits_temperature=0.5, downscore_false_negatives=False, false_negative_score=-9.0,
                               store_negative_ids=True, logq_sampling_correction=False)
    rebuilt = ContrastiveOutput.from_config(output.get_config())
    assert rebuilt.get_config() == output.get_config()
    assert (rebuilt.target_name, rebuilt.false_negative_score, rebuilt.store_negative_ids) == ("item_id", -9.0, True)
    np.testing.assert_allclose(logits_of(rebuilt), logits_of(output), rtol=1e-6)
    # files saved before the Merlin names load
    old = {**output.get_config(), "remove_accidental_hits": True, "logq_correction": 1.5}
    del old["downscore_false_negatives"], old["logq_sampling_correction"]
    assert ContrastiveOutput.from_config(old).downscore_false_negatives is True
