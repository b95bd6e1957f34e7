"""Merlin's ranking metrics (RecallAt, NDCGAt, MRRAt, PrecisionAt, AvgPrecisionAt) against hand computations."""

import keras
import numpy as np
import pytest

import schemaretrieval as mm

# Row 0: the positive (column 1) is ranked third; row 1: first; row 2: fifth of five.
Y_TRUE = np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype="float32")
Y_PRED = np.array([[0.9, 0.5, 0.7, 0.1, 0.0], [0.8, 0.1, 0.2, 0.3, 0.4], [5, 4, 3, 2, 1]], dtype="float32")
RANK = np.array([3, 1, 5])  # 1-based


def result(metric, y_true=Y_TRUE, y_pred=Y_PRED, **kwargs):
    metric.update_state(y_true, y_pred, **kwargs)
    return float(metric.result())


@pytest.mark.parametrize("k", [1, 3, 5])
def test_each_metric_is_merlins_formula(k):
    hit = RANK <= k
    assert result(mm.RecallAt(k)) == pytest.approx(hit.mean())
    assert result(mm.PrecisionAt(k)) == pytest.approx((hit / k).mean())
    assert result(mm.MRRAt(k)) == pytest.approx(np.where(hit, 1 / RANK, 0).mean())
    assert result(mm.AvgPrecisionAt(k)) == pytest.approx(np.where(hit, 1 / RANK, 0).mean())  # one relevant item
    assert result(mm.NDCGAt(k)) == pytest.approx(np.where(hit, 1 / np.log2(RANK + 1), 0).mean(), rel=1e-6)


def test_names_are_merlins():
    assert [m(10).name for m in (mm.RecallAt, mm.NDCGAt, mm.MRRAt, mm.PrecisionAt, mm.AvgPrecisionAt)] == \
        ["recall_at_10", "ndcg_at_10", "mrr_at_10", "precision_at_10", "map_at_10"]


def test_two_relevant_items_follow_merlins_normalisation():
    y_true = np.array([[1, 0, 1, 0]], dtype="float32")
    y_pred = np.array([[0.9, 0.8, 0.7, 0.1]], dtype="float32")  # relevant at ranks 1 and 3
    assert result(mm.RecallAt(2), y_true, y_pred) == pytest.approx(0.5)       # 1 of min(2, 2)
    assert result(mm.AvgPrecisionAt(3), y_true, y_pred) == pytest.approx((1 + 2 / 3) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert result(mm.NDCGAt(3), y_true, y_pred) == pytest.approx((1 + 1 / np.log2(4)) / ideal)
    # Merlin's log_base (was a TypeError): DCG and its ideal share the base, so the ratio is the same
    assert result(mm.NDCGAt(3, log_base=10), y_true, y_pred) == pytest.approx((1 + 1 / np.log2(4)) / ideal)
    assert mm.NDCGAt.from_config(mm.NDCGAt(3, log_base=10).get_config()).log_base == 10
    with pytest.raises(ValueError, match="NDCGAt: log_base must be a finite number > 1, got 1"):
        mm.NDCGAt(3, log_base=1)
    assert result(mm.MRRAt(3), y_true, y_pred) == pytest.approx(1.0)


def test_sample_weight_and_fewer_columns_than_k():
    assert result(mm.RecallAt(1), sample_weight=np.array([0.0, 1.0, 0.0])) == pytest.approx(1.0)
    # k beyond the columns ranks what there is (Merlin raises)
    assert result(mm.RecallAt(50)) == pytest.approx(1.0)


def test_ties_are_broken_at_random_as_merlin_does():
    # Merlin shuffles the columns of each batch before its top-k: a tie is won half the time
    metric = mm.RecallAt(1)
    for _ in range(300):
        metric.update_state(np.array([[1.0, 0.0]]), np.zeros((1, 2)))
    assert abs(float(metric.result()) - 0.5) < 0.1


def test_pre_sorted_with_label_relevant_counts():
    metric = mm.RecallAt(2, pre_sorted=True)
    metric.label_relevant_counts = np.array([1.0, 1.0])
    assert result(metric, np.array([[0, 1], [0, 0]], "float32"), np.array([[2, 1], [2, 1]], "float32")) == 0.5


def test_bad_k_and_shapes_are_named():
    with pytest.raises(ValueError, match=r"RecallAt: k must be an integer >= 1, got 0"):
        mm.RecallAt(0)
    with pytest.raises(ValueError, match=r"recall_at_2: y_true and y_pred must be \[batch, columns\]"):
        mm.RecallAt(2).update_state(np.ones(3), np.ones(3))


def test_config_round_trip():
    metric = mm.NDCGAt(7, seed=3)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert (type(restored), restored.k, restored.name, restored.seed) == (mm.NDCGAt, 7, "ndcg_at_7", 3)
