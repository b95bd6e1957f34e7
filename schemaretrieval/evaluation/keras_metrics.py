"""Merlin Models' ranking metrics as Keras metrics: `RecallAt`, `NDCGAt`, `MRRAt`, `PrecisionAt`, `AvgPrecisionAt`.

For ``model.compile(metrics=[mm.RecallAt(10), mm.NDCGAt(10)])``. Each
takes Merlin's form of a batch: ``y_true`` [B, C] (1 for a relevant column)
and ``y_pred`` [B, C] scores; a `TwoTowerModelV2` hands them its output's
logits (the positive against the sampled negatives, as Merlin computes its
training and validation metrics) and the one-hot positive. The columns are
ranked by score, ties in a random order (Merlin's ``shuffle_ties``), and
the k best give, per row, with ``rel`` the relevance of the ranked columns
and ``R`` the number of relevant columns:

| metric | name | per row |
| --- | --- | --- |
| `RecallAt` | recall_at_k | sum(rel[:k]) / min(R, k) |
| `PrecisionAt` | precision_at_k | sum(rel[:k]) / k |
| `AvgPrecisionAt` | map_at_k | sum_i precision@i rel_i / min(R, k) |
| `NDCGAt` | ndcg_at_k | sum_i rel_i / log2(i + 2), over the same for R relevant columns first |
| `MRRAt` | mrr_at_k | 1 / (position of the first relevant + 1), 0 if none in the k best |

averaged over rows (weighted by ``sample_weight``). A row with fewer than k
columns is ranked over what it has (Merlin raises). With ``pre_sorted=True``
the columns are taken as ranked already, and ``label_relevant_counts`` gives
each row's R (a top-k encoder's evaluation, where the relevant item may be
outside the k).

>>> import numpy as np
>>> y_true = np.array([[0.0, 1.0, 0.0, 0.0]]); y_pred = np.array([[0.9, 0.5, 0.7, 0.1]])
>>> metric = NDCGAt(3)
>>> metric.update_state(y_true, y_pred)
>>> metric.name, round(float(metric.result()), 4)  # the positive is third: 1 / log2(4)
('ndcg_at_3', 0.5)
"""

from __future__ import annotations

import keras
import numpy as np  # noqa: F401  (the examples use it)
import tensorflow as tf

from schemaretrieval.arguments import integer, number

__all__ = ["TopkMetric", "RecallAt", "PrecisionAt", "AvgPrecisionAt", "NDCGAt", "MRRAt", "ranking_metrics"]


def _ranked(y_true, y_pred, k, seed=None):
    """The relevance of each row's k best columns [B, k'] (k' = min(k, C)), ties in random order."""
    columns = tf.shape(y_pred)[1]
    order = tf.random.shuffle(tf.range(columns), seed=seed)
    shuffled_pred = tf.gather(y_pred, order, axis=1)
    shuffled_true = tf.gather(y_true, order, axis=1)
    top = tf.math.top_k(shuffled_pred, k=tf.minimum(k, columns))
    return tf.gather(shuffled_true, top.indices, batch_dims=1)


def _per_row(kind, rel, relevant, k):
    """Merlin's formulas on the ranked relevance ``rel`` [B, k'] with ``relevant`` [B] relevant columns."""
    width = tf.shape(rel)[1]
    hits = tf.reduce_sum(rel, axis=1)
    capped = tf.clip_by_value(relevant, 1.0, float(k))
    positions = tf.cast(tf.range(width), rel.dtype)
    if kind == "recall":
        return tf.math.divide_no_nan(hits, capped)
    if kind == "precision":
        return hits / float(k)
    if kind == "map":
        precision_at_i = tf.cumsum(rel, axis=1) / (positions + 1.0)
        return tf.math.divide_no_nan(tf.reduce_sum(precision_at_i * rel, axis=1), capped)
    if kind == "ndcg":
        discounts = 1.0 / (tf.math.log(positions + 2.0) / tf.math.log(tf.constant(2.0, rel.dtype)))
        dcg = tf.reduce_sum(rel * discounts, axis=1)
        ideal = tf.cast(positions[None, :] < relevant[:, None], rel.dtype)
        return tf.math.divide_no_nan(dcg, tf.reduce_sum(ideal * discounts, axis=1))
    if kind == "mrr":
        found = tf.reduce_max(rel, axis=1)
        first = tf.cast(tf.argmax(rel, axis=1), rel.dtype) + 1.0
        return tf.math.divide_no_nan(found, first)
    raise ValueError(kind)


class TopkMetric(keras.metrics.Mean):
    """A ranking metric at ``k`` (see the module docstring); the base of `RecallAt` and the others.

    Args:
        k: the cut-off.
        pre_sorted: the columns come ranked (best first); then set
            ``label_relevant_counts`` [B] (default: the relevant columns given).
        name: Merlin's base name; the metric is named ``f"{name}_{k}"``.
        seed: the seed of the random order of ties.

    >>> m = RecallAt(2, pre_sorted=True)
    >>> m.label_relevant_counts = np.array([1.0, 1.0])
    >>> m.update_state(np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.9, 0.8], [0.7, 0.6]]))
    >>> float(m.result())  # found in the first row's top 2, outside the second's
    0.5
    """

    KIND = None

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str | None = None, seed=None, **kwargs):
        k = integer(k, type(self).__name__, "k")
        self.name_orig = name
        super().__init__(name=f"{name}_{k}" if name else None, **kwargs)
        self.k = k
        self.pre_sorted = bool(pre_sorted)
        self.seed = seed
        self.label_relevant_counts = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.cast(tf.convert_to_tensor(y_pred), self.dtype)
        y_true = tf.cast(tf.convert_to_tensor(y_true), self.dtype)
        if y_true.shape.rank != 2 or y_pred.shape.rank != 2:
            raise ValueError(f"{self.name}: y_true and y_pred must be [batch, columns], got {y_true.shape} "
                             f"and {y_pred.shape}")
        if self.pre_sorted:
            rel = y_true[:, : self.k]
            relevant = tf.reduce_sum(y_true, axis=1) if self.label_relevant_counts is None else \
                tf.cast(tf.reshape(self.label_relevant_counts, [-1]), self.dtype)
        else:
            rel = _ranked(y_true, y_pred, self.k, self.seed)
            relevant = tf.reduce_sum(y_true, axis=1)
        return super().update_state(_per_row(self.KIND, rel, relevant, self.k), sample_weight=sample_weight)

    def get_config(self):
        return {"k": self.k, "pre_sorted": self.pre_sorted, "name": self.name_orig, "seed": self.seed,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="schemaretrieval")
class RecallAt(TopkMetric):
    """Recall (hit rate with one relevant item) at k, "recall_at_k".

    >>> m = RecallAt(1); m.update_state(np.array([[1.0, 0.0]]), np.array([[0.2, 0.9]])); float(m.result())
    0.0
    """

    KIND = "recall"

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str = "recall_at", **kwargs):
        super().__init__(k, pre_sorted=pre_sorted, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class PrecisionAt(TopkMetric):
    """Precision at k, "precision_at_k".

    >>> m = PrecisionAt(2); m.update_state(np.array([[1.0, 0.0]]), np.array([[0.2, 0.9]])); float(m.result())
    0.5
    """

    KIND = "precision"

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str = "precision_at", **kwargs):
        super().__init__(k, pre_sorted=pre_sorted, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class AvgPrecisionAt(TopkMetric):
    """Mean average precision at k, "map_at_k" (with one relevant item: MRR).

    >>> m = AvgPrecisionAt(2); m.update_state(np.array([[1.0, 0.0]]), np.array([[0.2, 0.9]])); float(m.result())
    0.5
    """

    KIND = "map"

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str = "map_at", **kwargs):
        super().__init__(k, pre_sorted=pre_sorted, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class NDCGAt(TopkMetric):
    """Normalised discounted cumulative gain at k, "ndcg_at_k".

    >>> m = NDCGAt(2); m.update_state(np.array([[1.0, 0.0]]), np.array([[0.2, 0.9]])); round(float(m.result()), 4)
    0.6309
    """

    KIND = "ndcg"

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str = "ndcg_at", log_base: float = 2, **kwargs):
        super().__init__(k, pre_sorted=pre_sorted, name=name, **kwargs)
        # Merlin's: the base of the discount's logarithm. DCG and the ideal DCG share it, so their
        # ratio is the same at every base; it is checked and kept, and changes no value.
        self.log_base = number(log_base, "NDCGAt", "log_base", above=1)

    def get_config(self):
        return {**super().get_config(), "log_base": self.log_base}


@keras.saving.register_keras_serializable(package="schemaretrieval")
class MRRAt(TopkMetric):
    """Mean reciprocal rank at k, "mrr_at_k".

    >>> m = MRRAt(2); m.update_state(np.array([[1.0, 0.0]]), np.array([[0.2, 0.9]])); float(m.result())
    0.5
    """

    KIND = "mrr"

    def __init__(self, k: int = 10, pre_sorted: bool = False, name: str = "mrr_at", **kwargs):
        super().__init__(k, pre_sorted=pre_sorted, name=name, **kwargs)


def ranking_metrics(top_ks=(10,), pre_sorted: bool = False) -> list[TopkMetric]:
    """Merlin's default set at each k: recall, MRR, NDCG, MAP and precision.

    >>> [m.name for m in ranking_metrics([5])]
    ['recall_at_5', 'mrr_at_5', 'ndcg_at_5', 'map_at_5', 'precision_at_5']
    """
    return [cls(k, pre_sorted=pre_sorted) for k in top_ks
            for cls in (RecallAt, MRRAt, NDCGAt, AvgPrecisionAt, PrecisionAt)]
