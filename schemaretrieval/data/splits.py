"""Train/test splits of an interactions table, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_split(data: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each row goes to the test part with probability `test_fraction`
    (exactly round(n * test_fraction) rows), the rest to train.

    >>> import pandas as pd
    >>> train, test = random_split(pd.DataFrame({"x": range(10)}), 0.2, seed=1)
    >>> len(train), len(test)
    (8, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"random_split: test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(data))
    cut = len(data) - int(round(len(data) * test_fraction))
    return data.iloc[np.sort(order[:cut])].reset_index(drop=True), data.iloc[np.sort(order[cut:])].reset_index(drop=True)
