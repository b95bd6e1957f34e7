"""`Task`: the base class of TFRS's tasks (`tfrs.tasks.Task`)."""

from __future__ import annotations

import abc

__all__ = ["Task"]


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
