"""`Task`: the base class of TFRS's tasks (`tfrs.tasks.Task`)."""

from __future__ import annotations

import abc

import keras

__all__ = ["Task", "metric_list"]


class Task(abc.ABC):
    """A loss layer's interface: called with a batch's model outputs, it
    returns the loss and updates its metrics. `Retrieval` is one; ``isinstance(task,
    tfrs.tasks.Task)`` holds for it as in TFRS.

    >>> from schemaretrieval.tfrs.tasks.retrieval import Retrieval
    >>> isinstance(Retrieval(), Task)
    True
    """

    @abc.abstractmethod
    def call(self, *args, **kwargs):
        raise NotImplementedError()


def metric_list(owner: str, name: str, metrics) -> list:
    """A task's metrics argument as a list, every item a Keras metric; else a
    TypeError naming the task and the argument.

    >>> metric_list("Ranking", "metrics", None)
    []
    >>> metric_list("Ranking", "metrics", ["auc"])
    Traceback (most recent call last):
    ...
    TypeError: Ranking: metrics must be a list of keras metrics, got str
    """
    metrics = list(metrics or [])
    bad = [m for m in metrics if not isinstance(m, keras.metrics.Metric)]
    if bad:
        raise TypeError(f"{owner}: {name} must be a list of keras metrics, got {type(bad[0]).__name__}")
    return metrics
