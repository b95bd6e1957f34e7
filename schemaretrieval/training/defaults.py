"""How long and in what batches `fit` trains when the caller does not say.

`fit` (and `model.fit` on a table, and ``schemaretrieval train``) takes
`DEFAULT_BATCH_SIZE` rows a batch and `default_epochs` of its training data:
12 epochs on data as dense in items as MovieLens-100K, more on a sparser
catalog, up to 32, and no more than `EXAMPLE_BUDGET` rows in all, so that
a large table takes fewer passes. `TwoTowerModelV2.compile` runs
`DEFAULT_STEPS_PER_EXECUTION` steps in each call of the compiled step.
docs/defaults.md gives the evidence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from schemaretrieval.data import parquet
from schemaretrieval.data.read import CSV_SUFFIXES, read_table

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_STEPS_PER_EXECUTION", "DEFAULT_EPOCHS", "MAX_DEFAULT_EPOCHS",
           "DENSE_ROWS_PER_ITEM", "EXAMPLE_BUDGET", "default_epochs", "table_shape", "table_epochs"]

#: Rows per batch of `fit` when none is given.
DEFAULT_BATCH_SIZE = 128
#: Keras's ``steps_per_execution`` in `TwoTowerModelV2.compile` (Keras's own is 1): the steps
#: of one call of the compiled training function. A step of batch 128 is short, and
#: Python's share of it large; the same steps in the same order run in one call.
DEFAULT_STEPS_PER_EXECUTION = 16
#: The fewest epochs `fit` takes when none is given (Keras's own is 1).
DEFAULT_EPOCHS = 12
#: The most: past it the validation figures stop rising while the time grows.
MAX_DEFAULT_EPOCHS = 32
# An item's embedding row moves mostly when the item is a positive, so a
# catalog with fewer rows per item needs more epochs to train each row as
# often. 48 is MovieLens-100K's training part (80,000 rows over 1,650 items),
# where 12 epochs are the measured best.
DENSE_ROWS_PER_ITEM = 48.0
#: The most rows (rows times epochs) the default epochs train on: past a few
#: million rows an epoch already shows each user and item many times, and
#: the held-out recall of the measured sets levels off within this budget.
EXAMPLE_BUDGET = 40_000_000


def default_epochs(rows: int, items: int) -> int:
    """`fit`'s epochs, when none is given, for `rows` interactions over `items`
    distinct item ids: `DEFAULT_EPOCHS` times ``sqrt(DENSE_ROWS_PER_ITEM /
    (rows / items))``, rounded, from 12 to `MAX_DEFAULT_EPOCHS` (32); then at
    most ``EXAMPLE_BUDGET // rows`` and at least 1.

    >>> default_epochs(80_000, 1_650)    # MovieLens-100K's training part
    12
    >>> default_epochs(80_000, 8_500)    # the same rows over five times the items
    27
    >>> default_epochs(74_267, 15_432)   # Last.fm 2k's
    32
    >>> default_epochs(5_000_000, 26_744), default_epochs(20_000_000, 26_744)   # the budget's share
    (8, 2)
    >>> default_epochs(0, 10)
    Traceback (most recent call last):
    ...
    ValueError: default_epochs: rows and items must be >= 1, got rows=0, items=10
    """
    if rows < 1 or items < 1:
        raise ValueError(f"default_epochs: rows and items must be >= 1, got rows={rows}, items={items}")
    scaled = DEFAULT_EPOCHS * math.sqrt(DENSE_ROWS_PER_ITEM * items / rows)
    by_density = min(MAX_DEFAULT_EPOCHS, max(DEFAULT_EPOCHS, round(scaled)))
    return int(max(1, min(by_density, EXAMPLE_BUDGET // rows)))


def table_shape(data, item_id_column: str) -> tuple[int, int]:
    """``(rows, distinct item ids)`` of an interactions table: a DataFrame, a
    mapping of column -> array (a table already read), or a parquet file or
    folder (only its item-id column is read, so a table larger than memory is
    counted without loading it), or a csv file.

    >>> table_shape(pd.DataFrame({"item_id": [1, 2, 3, 1]}), "item_id")
    (4, 3)
    >>> table_shape({"item_id": np.array([5, 5, 7])}, "item_id")
    (3, 2)
    """
    if isinstance(data, pd.DataFrame):
        return len(data), int(data[item_id_column].nunique())
    if isinstance(data, Mapping):
        ids = data[item_id_column]
    elif os.fspath(data).endswith(CSV_SUFFIXES):
        return table_shape(read_table(data), item_id_column)
    else:
        ids = parquet.read_columns(data, [item_id_column])[item_id_column]
    return len(ids), len(np.unique(ids))


def table_epochs(data, item_id_column: str) -> int:
    """`default_epochs` of an interactions table (`table_shape`).

    >>> table_epochs(pd.DataFrame({"item_id": [1, 2, 3, 1]}), "item_id")
    32
    >>> table_epochs(pd.DataFrame({"item_id": np.arange(80_000) % 1_650}), "item_id")
    12
    """
    return default_epochs(*table_shape(data, item_id_column))
