"""TFRS's tasks (`tfrs.tasks`): `Retrieval` and its base `Task`."""

from schemaretrieval.tfrs.tasks.base import Task
from schemaretrieval.tfrs.tasks.retrieval import Retrieval

__all__ = ["Retrieval", "Task"]
