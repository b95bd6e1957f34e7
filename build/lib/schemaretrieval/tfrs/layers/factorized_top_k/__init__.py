"""TFRS's top-k layers (`tfrs.layers.factorized_top_k`): `BruteForce`,
`Streaming`, the approximate `ScaNN` (backed by FAISS, see its module) and
their base `TopK`."""

from schemaretrieval.tfrs.layers.factorized_top_k.brute_force import BruteForce
from schemaretrieval.tfrs.layers.factorized_top_k.scann import ScaNN
from schemaretrieval.tfrs.layers.factorized_top_k.streaming import Streaming
from schemaretrieval.tfrs.layers.factorized_top_k.top_k import TopK

__all__ = ["BruteForce", "ScaNN", "Streaming", "TopK"]
