"""Readers of public data sets from a local directory, in their own formats. Nothing here downloads.

* ``movielens``: GroupLens's MovieLens folders (ml-100k, ml-1m, ml-latest(-small), ml-20m, ml-25m, ml-32m),
  and ``split_by_ids``: a given split of one (ids files such as ml-100k's u1.base / u1.test).
* ``lastfm``: the HetRec 2011 Last.fm 2k folder (user, artist, play count, friends).
"""

from schemaretrieval.datasets.lastfm import LASTFM_2K_MD5, lastfm, lastfm_schema_path, lastfm_tags
from schemaretrieval.datasets.movielens import (
    ML_100K_GENRES,
    MOVIELENS_VARIANTS,
    guess_variant,
    movielens,
    movielens_schema_path,
    read_id_pairs,
    split_by_ids,
)

__all__ = ["movielens", "MOVIELENS_VARIANTS", "ML_100K_GENRES", "movielens_schema_path", "guess_variant",
           "read_id_pairs", "split_by_ids", "lastfm", "lastfm_tags", "lastfm_schema_path", "LASTFM_2K_MD5"]
