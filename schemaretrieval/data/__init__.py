"""Data: generated interactions, reading tables and turning them into model inputs."""

from schemaretrieval.data.movielens_like import movielens_like, movielens_like_schema
from schemaretrieval.data.synthetic import SyntheticTruth, synthetic
from schemaretrieval.data.raw_log import raw_log
from schemaretrieval.data.splits import leave_last_n_out, random_split, time_split
from schemaretrieval.data.tables import (
    PAD_VALUE,
    candidate_table,
    example_batch,
    interactions,
    read_table,
    to_arrays,
    to_tf_dataset,
)

__all__ = [
    "PAD_VALUE",
    "SyntheticTruth",
    "candidate_table",
    "example_batch",
    "random_split",
    "raw_log",
    "time_split",
    "leave_last_n_out",
    "interactions",
    "movielens_like",
    "movielens_like_schema",
    "read_table",
    "synthetic",
    "to_arrays",
    "to_tf_dataset",
]
