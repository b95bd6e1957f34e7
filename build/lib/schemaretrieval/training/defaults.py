"""How long and in what batches `fit` trains when the caller does not say.

`fit` (and `model.fit` on a table, and ``schemaretrieval train``) takes
`DEFAULT_BATCH_SIZE` rows a batch and `default_epochs` of its training data:
12 epochs on data as dense in items as MovieLens-100K, more on a sparser
catalog, up to 32. docs/defaults.md gives the evidence for both.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from schemaretrieval.data import parquet
from schemaretrieval.data.read import CSV_SUFFIXES, read_table

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS", "MAX_DEFAULT_EPOCHS", "DENSE_ROWS_PER_ITEM",
           "default_epochs", "table_epochs"]

#: Rows per batch of `fit` when none is given.
DEFAULT_BATCH_SIZE = 128
#: The fewest epochs `fit` takes when none is given (Keras's own is 1).
DEFAULT_EPOCHS = 12
#: The most: past it the validation figures stop rising while the time grows.
MAX_DEFAULT_EPOCHS = 32
# An item's embedding row moves mostly when the item is a positive, so a
# catalog with fewer rows per item needs more epochs to train each row as
# often. 48 is MovieLens-100K's training part (80,000 rows over 1,650 items),
# where 12 epochs are the measured best.
DENSE_ROWS_PER_ITEM = 48.0


def default_epochs(rows: int, items: int) -> int:
    """`fit`'s epochs, when none is given, for `rows` interactions over `items`
    distinct item ids: `DEFAULT_EPOCHS` times ``sqrt(DENSE_ROWS_PER_ITEM /
    (rows / items))``, rounded, from 12 to `MAX_DEFAULT_EPOCHS` (32).

    >>> default_epochs(80_000, 1_650)    # MovieLens-100K's training part
    12
    >>> default_epochs(80_000, 8_500)    # the same rows over five times the items
    27
    >>> default_epochs(74_267, 15_432)   # Last.fm 2k's
    32
    >>> default_epochs(0, 10)
    Traceback (most recent call last):
    ...
    ValueError: default_epochs: rows and items must be >= 1, got rows=0, items=10
    """
    if rows < 1 or items < 1:
        raise ValueError(f"default_epochs: rows and items must be >= 1, got rows={rows}, items={items}")
    scaled = DEFAULT_EPOCHS * math.sqrt(DENSE_ROWS_PER_ITEM * items / rows)
    return int(min(MAX_DEFAULT_EPOCHS, max(DEFAULT_EPOCHS, round(scaled))))


def table_epochs(data, item_id_column: str) -> int:
    """`default_epochs` of an interactions table: a DataFrame, or a parquet
    file or folder (only its item-id column is read, so a table larger than
    memory is counted without loading it).

    >>> table_epochs(pd.DataFrame({"item_id": [1, 2, 3, 1]}), "item_id")
    32
    >>> table_epochs(pd.DataFrame({"item_id": np.arange(80_000) % 1_650}), "item_id")
    12
    """
    if not isinstance(data, pd.DataFrame) and os.fspath(data).endswith(CSV_SUFFIXES):
        data = read_table(data)
    if isinstance(data, pd.DataFrame):
        return default_epochs(len(data), int(data[item_id_column].nunique()))
    ids = parquet.read_columns(data, [item_id_column])[item_id_column]
    return default_epochs(len(ids), len(np.unique(ids)))
