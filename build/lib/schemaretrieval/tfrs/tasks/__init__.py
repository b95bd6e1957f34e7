"""TFRS's tasks (`tfrs.tasks`): `Retrieval`, `Ranking` and their base `Task`."""

from schemaretrieval.tfrs.tasks.base import Task
from schemaretrieval.tfrs.tasks.ranking import Ranking
from schemaretrieval.tfrs.tasks.retrieval import Retrieval

__all__ = ["Ranking", "Retrieval", "Task"]
