"""`Ranking`: TFRS's ranking task on Keras 3, a pointwise loss of predictions
against labels (ratings, clicks) and its metrics.

TFRS's retrieval tutorials stop at retrieval; its ranking, multitask and
DCN tutorials score the retrieved candidates with this task, often beside a
`Retrieval` in one `tfrs.Model`. The loss and metric values are TFRS
0.7.7's (tests/test_tfrs_tasks.py).
"""

from __future__ import annotations

import keras

from schemaretrieval.tfrs.tasks.base import Task, metric_list

__all__ = ["Ranking"]


class Ranking(keras.layers.Layer, Task):
    """A ranking task: ``loss(labels, predictions, sample_weight)`` and its metrics.

    Args:
        loss: a Keras loss (default: ``BinaryCrossentropy()``, a mean over the batch).
        metrics: Keras metrics of ``(labels, predictions)``, e.g. ``RootMeanSquaredError``.
        prediction_metrics: Keras metrics of the predictions alone (e.g. their mean).
        label_metrics: Keras metrics of the labels alone.
        loss_metrics: Keras metrics of the loss value.
        name: the layer's name.

    ``task(labels, predictions, sample_weight=None, training=False,
    compute_metrics=True)`` returns the loss; with ``compute_metrics=False``
    no metric is updated.

    >>> import numpy as np
    >>> task = Ranking(loss=keras.losses.MeanSquaredError(), metrics=[keras.metrics.RootMeanSquaredError()])
    >>> float(task(np.array([[4.0], [2.0]]), np.array([[3.0], [2.0]])))  # (1 + 0) / 2
    0.5
    >>> round(float(task.metrics[0].result()), 4)  # sqrt(0.5)
    0.7071
    """

    def __init__(
        self,
        loss=None,
        metrics: list | None = None,
        prediction_metrics: list | None = None,
        label_metrics: list | None = None,
        loss_metrics: list | None = None,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if loss is not None and not callable(loss):
            raise TypeError(f"Ranking: loss must be a Keras loss (callable), got {type(loss).__name__}")
        self._loss = loss if loss is not None else keras.losses.BinaryCrossentropy()
        self._ranking_metrics = metric_list("Ranking", "metrics", metrics)
        self._prediction_metrics = metric_list("Ranking", "prediction_metrics", prediction_metrics)
        self._label_metrics = metric_list("Ranking", "label_metrics", label_metrics)
        self._loss_metrics = metric_list("Ranking", "loss_metrics", loss_metrics)

    def call(self, labels, predictions, sample_weight=None, training: bool = False, compute_metrics: bool = True):
        loss = self._loss(y_true=labels, y_pred=predictions, sample_weight=sample_weight)
        if not compute_metrics:
            return loss
        for metric in self._ranking_metrics:
            metric.update_state(y_true=labels, y_pred=predictions, sample_weight=sample_weight)
        for metric in self._prediction_metrics:
            metric.update_state(predictions, sample_weight=sample_weight)
        for metric in self._label_metrics:
            metric.update_state(labels, sample_weight=sample_weight)
        for metric in self._loss_metrics:
            metric.update_state(loss)
        return loss
