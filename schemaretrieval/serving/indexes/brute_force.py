"""`BruteForce`: the exact top-k index, through the top-k engine (`retrieval.topk`).

Why not ``keras_rs.layers.BruteForceRetrieval`` (keras-rs 0.4.0): it scores
every query against every candidate in one ``[num_queries, num_candidates]``
matrix (1 GB for 256 queries x 1M items), stores ids as int32 (no string or
int64 ids), fixes ``k`` at construction and has no exclusion.
"""

from __future__ import annotations

import numpy as np

from schemaretrieval.retrieval.topk import CHUNK_BYTES, BlockTopK, embedding_scorer, top_k
from schemaretrieval.serving.indexes.base import TopKIndex

__all__ = ["BruteForce"]


class BruteForce(TopKIndex):
    """Exact top-k through the top-k engine (`retrieval.topk`): chunks of queries under
    one memory budget, excluded items scored -inf before the top-k.

    >>> index = BruteForce().index(np.eye(4, dtype="float32"), ids=["a", "b", "c", "d"])
    >>> scores, ids = index.search(np.array([[0.0, 1.0, 0.5, 0.0]]), k=2, exclude=[["b"]])
    >>> ids.tolist(), scores.tolist()
    ([['c', 'a']], [[0.5, 0.0]])
    """

    def __init__(self, chunk_bytes: int = CHUNK_BYTES):
        super().__init__()
        self.chunk_bytes = int(chunk_bytes)

    def describe(self) -> dict:
        return {"kind": "brute-force", "exact": True, "recall@10": 1.0}

    def _add(self, embeddings):
        self._scorer_of = lambda queries: embedding_scorer(queries, embeddings)

    def _search(self, queries, k):
        return self._search_excluding(queries, k, None)

    def _search_excluding(self, queries, k, excluded):
        return top_k(self._scorer_of(queries), len(queries), len(self._ids), k, excluded, self.chunk_bytes)

    def graph_top_k(self):
        """The exact top-k as a ``tf.Module`` (`retrieval.topk.BlockTopK`)."""
        self._require_index()
        return BlockTopK(self.embeddings)
