"""Top-k indexes over candidate embeddings: exact brute force (the top-k engine), and FAISS.

* ``base``: `TopKIndex`, the interface, the argument checks, ids and exclusion every index shares.
* ``brute_force``: `BruteForce`, exact, and the one that exports into a SavedModel.
* ``faiss_index``: `Faiss`, FAISS's flat, HNSW and IVF indexes, tuned to a target recall.

Every index has one interface::

    index = BruteForce()                          # or Faiss("hnsw", m=32, ef_search=128)
    index.index(candidate_embeddings, ids)        # [num_candidates, dim], [num_candidates]
    scores, ids = index.search(query_embeddings, k=10, exclude=None, users=None)

* Scores are dot products, highest first, ``[num_queries, k]`` float32; ``ids``
  are the given ids (any dtype: int64, strings) in the same layout.
* ``exclude`` leaves items out of each query's results: an `sr.data.Exclusions`
  keyed by ``users`` (one user id per query), or one collection of ids per
  query. ``k`` results are still returned: exact for an exact index; an
  approximate one is asked for ``k`` more than the most items any query of the
  chunk excludes, then the excluded are dropped.
* ``k`` larger than the catalog, or than what is left of it after exclusion,
  is a ValueError that says the catalog size.
* ``graph_top_k()`` is the index inside a SavedModel (`export.export_serving`):
  a ``tf.Module`` ``(queries, k, excluded positions) -> (scores, positions)``.
  A subclass that gives one exports as it is; FAISS, not a TensorFlow op, does not.
"""

from schemaretrieval.serving.indexes.base import TopKIndex
from schemaretrieval.serving.indexes.brute_force import BruteForce
from schemaretrieval.serving.indexes.faiss_index import Faiss

__all__ = ["TopKIndex", "BruteForce", "Faiss"]
