"""`Retrieval`: TFRS's retrieval task on Keras 3, the in-batch softmax loss
of a two-tower model and its metrics.

The loss is TFRS 0.7.7's to float32 rounding (tests/test_tfrs_tasks.py compares
every argument with TFRS's own figures): the logits are ``query @
candidate.T`` with the diagonal as labels, divided by ``temperature``,
corrected by ``candidate_sampling_probability``, with accidental hits and
``score_mask`` pushed down to ``MIN_FLOAT``, cut to the hardest negatives,
and passed to ``loss`` (default: categorical cross-entropy from logits,
summed over the batch, computed from each row's label column by
`schemaretrieval.retrieval.softmax.softmax_cross_entropy`, the loss of
`ContrastiveOutput`: at 8192 x 8192 logits in 0.4x the time of the dense
kernel TFRS calls; docs/training.md, Speed of a step).

Three departures from TFRS 0.7.7, where its code disagrees with its
documentation or fails: a ``num_hard_negatives`` of 0 or less keeps every
negative, as documented (TFRS keeps the positive alone and its loss is 0);
with extra negatives (more candidates than queries) the top-k metrics
compare the first ``num_queries`` candidate ids, where TFRS passes them all
and fails; and assigning one `FactorizedTopK` to ``factorized_metrics`` keeps
it, where TFRS replaces anything but a sequence with no metrics.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from schemaretrieval.arguments import number
from schemaretrieval.retrieval.softmax import softmax_cross_entropy
from schemaretrieval.tfrs.layers.loss import (
    MIN_FLOAT,
    hard_negative_mining,
    remove_accidental_hits,
    sampling_probability_correction,
)
from schemaretrieval.tfrs.metrics import Factorized
from schemaretrieval.tfrs.tasks.base import Task, metric_list

__all__ = ["Retrieval"]


def _factorized_list(metrics):
    if metrics is None:
        return []
    metrics = list(metrics) if isinstance(metrics, Sequence) else [metrics]
    bad = [m for m in metrics if not isinstance(m, Factorized)]
    if bad:
        raise TypeError(
            "Retrieval: metrics must be a tfrs.metrics.FactorizedTopK (or a sequence of them), "
            f"got {type(bad[0]).__name__}"
        )
    return metrics


class Retrieval(keras.layers.Layer, Task):
    """A factorized retrieval task: the loss of a batch of (query, candidate)
    pairs against the batch's other candidates, and its metrics.

    Args:
        loss: a Keras loss taking ``(y_true, y_pred, sample_weight)``
            (default: ``CategoricalCrossentropy(from_logits=True, reduction="sum")``).
        metrics: a `FactorizedTopK` (or a sequence of them) over the catalog.
        batch_metrics: Keras metrics of the in-batch labels and logits.
        loss_metrics: Keras metrics of the loss value.
        temperature: the logits are divided by it.
        num_hard_negatives: keep only this many highest-scoring negatives per
            row; more than the batch holds, or 0 or less, keeps all.
        remove_accidental_hits: push down negatives that share the
            positive's id (needs ``candidate_ids`` in the call).
        name: the layer's name.

    ``task(query_embeddings, candidate_embeddings, sample_weight=None,
    candidate_sampling_probability=None, candidate_ids=None,
    compute_metrics=True, compute_batch_metrics=True, score_mask=None)``
    returns the loss. ``query_embeddings`` may be ``[batch, heads, dim]``
    (each candidate scored by its best head; no top-k metrics then);
    ``candidate_embeddings`` may have more rows than the queries (extra
    negatives for every query).

    >>> import numpy as np
    >>> task = Retrieval()
    >>> queries = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(task(queries, queries)), 6)  # 2 * -log(e / (e + 1))
    0.626523
    >>> round(float(Retrieval(temperature=0.5)(queries, queries)), 6)  # 2 * -log(e^2 / (e^2 + 1))
    0.253856
    """

    def __init__(
        self,
        loss=None,
        metrics=None,
        batch_metrics: list | None = None,
        loss_metrics: list | None = None,
        temperature: float | None = None,
        num_hard_negatives: int | None = None,
        remove_accidental_hits: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if loss is not None and not callable(loss):
            raise TypeError(f"Retrieval: loss must be a Keras loss (callable), got {type(loss).__name__}")
        if temperature is not None:
            number(temperature, "Retrieval", "temperature", above=0)
        if num_hard_negatives is not None and (
            isinstance(num_hard_negatives, bool) or not isinstance(num_hard_negatives, (int, np.integer))
        ):
            raise ValueError(f"Retrieval: num_hard_negatives must be None or an int, got {num_hard_negatives!r}")
        if not isinstance(remove_accidental_hits, bool):
            raise ValueError(f"Retrieval: remove_accidental_hits must be True or False, got {remove_accidental_hits!r}")
        # None: TFRS's categorical cross-entropy from logits, summed; computed by
        # `softmax_cross_entropy` from each row's label column while every row has one.
        self._fast_default = loss is None
        self._loss = loss if loss is not None else keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")
        self._batch_metrics = metric_list("Retrieval", "batch_metrics", batch_metrics)
        self._loss_metrics = metric_list("Retrieval", "loss_metrics", loss_metrics)
        self.factorized_metrics = metrics
        self._temperature = None if temperature is None else float(temperature)
        self._num_hard_negatives = num_hard_negatives
        self._remove_accidental_hits = remove_accidental_hits

    @property
    def factorized_metrics(self) -> list:
        """The top-k metrics over the catalog (assignable, e.g. to evaluate on another catalog)."""
        return self._factorized_metrics

    def __setattr__(self, name, value):
        if name == "factorized_metrics":
            # Kept outside Keras's tracking, which locks a layer once it is
            # called, so that they can be swapped after training (TFRS's
            # efficient-serving tutorial does); `metrics` reports them.
            object.__setattr__(self, "_factorized_metrics", _factorized_list(value))
        else:
            super().__setattr__(name, value)

    @property
    def metrics(self) -> list:
        return super().metrics + [m for factorized in self._factorized_metrics for m in factorized.metrics]

    def call(
        self,
        query_embeddings,
        candidate_embeddings,
        sample_weight=None,
        candidate_sampling_probability=None,
        candidate_ids=None,
        compute_metrics: bool = True,
        compute_batch_metrics: bool = True,
        score_mask=None,
    ):
        queries = tf.convert_to_tensor(query_embeddings)
        candidates = tf.cast(candidate_embeddings, queries.dtype)
        _check_shapes(queries, candidates, candidate_ids, sample_weight, candidate_sampling_probability)
        heads = queries.shape.rank == 3
        if heads:
            scores = tf.reduce_max(tf.einsum("qhd,cd->qhc", queries, candidates), axis=1)
        else:
            scores = tf.matmul(queries, candidates, transpose_b=True)
        num_queries = tf.shape(scores)[0]
        labels = tf.eye(num_queries, tf.shape(scores)[1], dtype=scores.dtype)
        if self._temperature is not None:
            scores = scores / self._temperature
        if candidate_sampling_probability is not None:
            scores = sampling_probability_correction(scores, candidate_sampling_probability)
        if self._remove_accidental_hits:
            if candidate_ids is None:
                raise ValueError("Retrieval: remove_accidental_hits=True needs candidate_ids in the call")
            scores = remove_accidental_hits(labels, scores, candidate_ids)
        if score_mask is not None:
            scores = tf.where(tf.cast(score_mask, tf.bool), scores, tf.cast(MIN_FLOAT, scores.dtype))
        # Non-positive counts keep every negative (module docstring).
        mined = self._num_hard_negatives is not None and self._num_hard_negatives > 0
        if mined:
            scores, labels = hard_negative_mining(scores, labels, self._num_hard_negatives)
        if self._fast_default:
            loss = _summed_cross_entropy(scores, labels, mined, sample_weight, self._loss)
        else:
            loss = self._loss(y_true=labels, y_pred=scores, sample_weight=sample_weight)

        for metric in self._loss_metrics:
            metric.update_state(loss)
        if compute_metrics and not heads:
            true_ids = None if candidate_ids is None else tf.convert_to_tensor(candidate_ids)[:num_queries]
            for metric in self._factorized_metrics:
                metric.update_state(queries, candidates[:num_queries], true_candidate_ids=true_ids,
                                    sample_weight=sample_weight)
        if compute_batch_metrics:
            for metric in self._batch_metrics:
                metric.update_state(labels, scores, sample_weight=sample_weight)
        return loss


def _summed_cross_entropy(scores, labels, mined, sample_weight, keras_loss):
    """``keras_loss`` (``CategoricalCrossentropy(from_logits=True, reduction="sum")``)
    of one-hot ``labels``, from each row's label column: column i (``tf.eye``), or
    where hard-negative mining put it. A row without a label (more queries than
    candidates) takes Keras's own loss for the batch: there TensorFlow's gradient
    is the row's softmax (its labels are taken to sum to 1), which TFRS code gets."""
    num_queries, num_columns = tf.shape(scores)[0], tf.shape(scores)[1]
    if mined:
        columns = tf.argmax(labels, axis=1, output_type=tf.int32)  # [Q, 1 + num_hard_negatives]: small
        labelled = tf.reduce_all(tf.reduce_max(labels, axis=1) > 0)
    else:
        columns = tf.range(num_queries)
        labelled = num_queries <= num_columns

    def fast():
        return tf.reduce_sum(softmax_cross_entropy(columns, tf.cast(scores, tf.float32), sample_weight))

    return tf.cond(labelled, fast, lambda: tf.cast(keras_loss(labels, scores, sample_weight=sample_weight), tf.float32))


def _check_shapes(queries, candidates, candidate_ids, sample_weight=None, sampling_probability=None) -> None:
    """What TensorFlow's matmul and gather would refuse without naming an argument,
    where the shapes are known when the call is traced."""
    if queries.shape.rank not in (None, 2, 3) or candidates.shape.rank not in (None, 2):
        raise ValueError(f"Retrieval: query_embeddings must be [batch, dim] (or [batch, heads, dim]) and "
                         f"candidate_embeddings [num_candidates, dim], got shapes {queries.shape} and "
                         f"{candidates.shape}")
    for name, values, rows in (("sample_weight", sample_weight, queries.shape[0]),
                               ("candidate_sampling_probability", sampling_probability, candidates.shape[0])):
        if values is None or rows is None:
            continue
        length = tf.convert_to_tensor(values).shape
        if length.rank and length[0] is not None and length[0] != rows:
            raise ValueError(f"Retrieval: {name} has {length[0]} values for {rows} "
                             f"{'queries' if name == 'sample_weight' else 'candidates'}; expected one each")
    width, other = queries.shape[-1], candidates.shape[-1]
    if width is not None and other is not None and width != other:
        raise ValueError(f"Retrieval: query_embeddings {queries.shape} and candidate_embeddings {candidates.shape} "
                         "differ in width; expected one embedding width for both")
    if candidate_ids is not None:
        rows, ids = candidates.shape[0], tf.convert_to_tensor(candidate_ids).shape
        if rows is not None and ids.rank and ids[0] is not None and ids[0] != rows:
            raise ValueError(f"Retrieval: candidate_ids has {ids[0]} ids for {rows} candidate_embeddings rows; "
                             "expected one id per candidate")
