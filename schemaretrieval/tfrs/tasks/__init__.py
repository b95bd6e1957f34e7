"""TFRS's tasks (`tfrs.tasks`): `Retrieval`."""

from schemaretrieval.tfrs.tasks.retrieval import Retrieval

__all__ = ["Retrieval"]
