"""TFRS's retrieval layers (`tfrs.layers`): `factorized_top_k` and `loss`."""

from schemaretrieval.tfrs.layers import factorized_top_k, loss

__all__ = ["factorized_top_k", "loss"]
