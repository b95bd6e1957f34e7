"""Serving: indexes over the catalog, recommendations in Python, and the TensorFlow-only export.

* ``indexes``: `BruteForce` (the top-k engine) and `Faiss`, one interface.
* ``recommend``: `recommend(model, user_features, k, catalog, exclude)`.
* ``export``: `export_serving`, a SavedModel from raw ids to top-k.
* ``client``: `load_serving`, `recommend_from_export`, `similar_items` (what the CLI reads).
"""

from schemaretrieval.serving.client import load_serving, recommend_from_export, similar_items
from schemaretrieval.serving.export import SERVING_FILE, export_serving
from schemaretrieval.serving.indexes import BruteForce, Faiss, TopKIndex
from schemaretrieval.serving.recommend import catalog_index, recommend

__all__ = [
    "BruteForce",
    "Faiss",
    "TopKIndex",
    "SERVING_FILE",
    "export_serving",
    "load_serving",
    "recommend",
    "catalog_index",
    "recommend_from_export",
    "similar_items",
]
