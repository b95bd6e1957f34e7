"""The measured defaults of `TwoTowerModel` and `TwoTowerModelV2`.

Every value is one row of docs/defaults.md, which gives the evidence and the
script that reproduces it. A comment here says what the value does, not how
it was found.
"""

from __future__ import annotations

import numbers

from schemaretrieval.layers.embeddings import DEFAULT_UNTRAINED_USER_IDS
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "MAX_DEFAULT_EPOCHS",
    "ID_EMBEDDING_DIMS",
    "ID_EMBEDDING_PIVOT",
    "default_id_embedding_dim",
    "DEFAULT_QUERY_INPUT_DROPOUT",
    "DEFAULT_HISTORY_TEMPERATURE",
    "DEFAULT_HISTORY_QUERY_INPUT_DROPOUT",
    "DEFAULT_LOGQ_CORRECTION",
    "DEFAULT_UNTRAINED_USER_IDS",
    "FEW_USERS_PER_ITEM",
    "FEW_USERS_CANDIDATE_INPUT_DROPOUT",
    "FEW_USERS_LOGQ_CORRECTION",
    "few_users_per_item",
]

#: The cut-offs `evaluate_topk` reports by default.
DEFAULT_KS = (1, 5, 10, 50, 100)
#: Divides the cosine logits of unit-length towers: a softmax over values in
#: [-1, 1] needs sharpening to learn.
DEFAULT_TEMPERATURE = 0.2
#: The narrowest and the widest user-id and item-id embedding of
#: `default_id_embedding_dim` (Merlin's rule gives 16 at ML-100K's size).
ID_EMBEDDING_DIMS = (64, 128)
#: The catalog size up to which the id embeddings are the narrowest.
ID_EMBEDDING_PIVOT = 2000
#: The dropout rate on the query tower's input in training: it keeps the
#: user-id embedding from memorising each user's training items.
DEFAULT_QUERY_INPUT_DROPOUT = 0.5
#: With the user-history query tower: sharper logits, less input dropout.
DEFAULT_HISTORY_TEMPERATURE = 0.1
DEFAULT_HISTORY_QUERY_INPUT_DROPOUT = 0.25
#: The weight of log(probability) subtracted from in-batch logits (1 is the
#: textbook correction; above 1 adds a slight popularity prior).
DEFAULT_LOGQ_CORRECTION = 1.1
#: Below this many user ids per item id, a schema whose candidate tower reads
#: item features besides the id takes the few-users point: the item tower
#: leans on its features and on the rows' item-item structure, and the
#: logits keep more popularity (docs/defaults.md, the few-users rule).
FEW_USERS_PER_ITEM = 0.25
FEW_USERS_CANDIDATE_INPUT_DROPOUT = 0.3
FEW_USERS_LOGQ_CORRECTION = 1.35


def few_users_per_item(num_users: int, num_items: int) -> bool:
    """Whether a catalog of ``num_items`` item ids has fewer than `FEW_USERS_PER_ITEM`
    user ids per item id: where `TwoTowerModel` takes the few-users point.

    >>> few_users_per_item(943, 1682), few_users_per_item(236, 1395), few_users_per_item(610, 9742)
    (False, True, True)
    """
    return num_users < FEW_USERS_PER_ITEM * num_items


def default_id_embedding_dim(num_items: int) -> int:
    """The width of the user-id and item-id embeddings over a catalog of ``num_items`` item ids.

    64 up to `ID_EMBEDDING_PIVOT` items, then ``64 * (num_items / 2000) **
    0.25`` (the fourth root of Merlin's and TensorFlow's rules of thumb)
    rounded up to a multiple of 8, at most 128: a larger catalog gets wider
    id embeddings, the user's as well as the item's.

    >>> [default_id_embedding_dim(n) for n in (1682, 2000, 2001, 15435, 26744, 1_000_000)]
    [64, 64, 72, 112, 128, 128]
    >>> default_id_embedding_dim(0)
    Traceback (most recent call last):
    ...
    ValueError: default_id_embedding_dim: num_items must be an integer >= 1, got 0
    """
    if isinstance(num_items, bool) or not isinstance(num_items, numbers.Integral) or num_items < 1:
        raise ValueError(f"default_id_embedding_dim: num_items must be an integer >= 1, got {num_items!r}")
    narrowest, widest = ID_EMBEDDING_DIMS
    num_items, width = int(num_items), narrowest
    # the smallest multiple of 8 with width ** 4 >= narrowest ** 4 * num_items / pivot, in integers
    while width < widest and width**4 * ID_EMBEDDING_PIVOT < narrowest**4 * num_items:
        width += 8
    return width
