"""Data: reading tables, validating them, batching them, and the catalog, exclusions and generators.

* ``read``: `read_table`, `read_frame`, `require_columns`.
* ``validate``: `to_arrays` (validated model inputs) and `drop_bad_rows`.
* ``batches``: `Batches` and `to_tf_dataset`, the one way tables become batches.
* ``parquet``: row groups, in-memory size, columns read a row group at a time.
* ``catalog``: `Catalog`, every item with its features.
* ``exclusions``: `Exclusions`, each user's items to leave out (`QueryExclusions`: bound to queries).
* ``checks``: the in-graph checks of a batch.
* ``loader``: `Loader` and `ToTarget`, Merlin's data loader over `Batches`.
* ``unique_rows``: `unique_rows_by_features`, one row per user or item.
* ``splits``, ``synthetic``, ``movielens_like``, ``ecommerce``, ``raw_log``, ``presets``: splits and generated data
  (``movielens_like_catalog``, ``ecommerce_catalog``: catalogs scaled to any size).
"""

from schemaretrieval.data.batches import Batches, example_batch, to_tf_dataset
from schemaretrieval.data.catalog import Catalog
from schemaretrieval.data.exclusions import Exclusions, QueryExclusions
from schemaretrieval.data.ecommerce import ecommerce, ecommerce_catalog
from schemaretrieval.data.loader import Loader, ToTarget
from schemaretrieval.data.movielens_like import movielens_like, movielens_like_catalog, movielens_like_schema
from schemaretrieval.data.presets import PRESETS, preset
from schemaretrieval.data.raw_log import raw_log
from schemaretrieval.data.read import as_frame, read_table
from schemaretrieval.data.splits import leave_last_n_out, random_split, time_split
from schemaretrieval.data.synthetic import SyntheticTruth, synthetic
from schemaretrieval.data.unique_rows import unique_rows_by_features
from schemaretrieval.data.validate import drop_bad_rows, to_arrays

__all__ = [
    "Batches",
    "Catalog",
    "Exclusions",
    "QueryExclusions",
    "Loader",
    "PRESETS",
    "SyntheticTruth",
    "as_frame",
    "drop_bad_rows",
    "example_batch",
    "leave_last_n_out",
    "ecommerce",
    "ecommerce_catalog",
    "movielens_like",
    "movielens_like_catalog",
    "movielens_like_schema",
    "preset",
    "random_split",
    "raw_log",
    "read_table",
    "synthetic",
    "time_split",
    "to_arrays",
    "to_tf_dataset",
    "ToTarget",
    "unique_rows_by_features",
]
