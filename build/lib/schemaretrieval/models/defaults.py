"""The measured defaults of `TwoTowerModel` and `TwoTowerModelV2`.

Every value is one row of docs/defaults.md, which gives the evidence and the
script that reproduces it. A comment here says what the value does, not how
it was found.
"""

from __future__ import annotations

from schemaretrieval.layers.embeddings import DEFAULT_UNTRAINED_USER_IDS
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "MAX_DEFAULT_EPOCHS",
    "DEFAULT_ID_EMBEDDING_DIM",
    "DEFAULT_QUERY_INPUT_DROPOUT",
    "DEFAULT_HISTORY_TEMPERATURE",
    "DEFAULT_HISTORY_QUERY_INPUT_DROPOUT",
    "DEFAULT_LOGQ_CORRECTION",
    "DEFAULT_UNTRAINED_USER_IDS",
]

#: The cut-offs `evaluate_topk` reports by default.
DEFAULT_KS = (1, 5, 10, 50, 100)
#: Divides the cosine logits of unit-length towers: a softmax over values in
#: [-1, 1] needs sharpening to learn.
DEFAULT_TEMPERATURE = 0.2
#: The narrowest user-id and item-id embedding (Merlin's rule gives 16 at ML-100K's size).
DEFAULT_ID_EMBEDDING_DIM = 64
#: The dropout rate on the query tower's input in training: it keeps the
#: user-id embedding from memorising each user's training items.
DEFAULT_QUERY_INPUT_DROPOUT = 0.5
#: With the user-history query tower: sharper logits, less input dropout.
DEFAULT_HISTORY_TEMPERATURE = 0.1
DEFAULT_HISTORY_QUERY_INPUT_DROPOUT = 0.25
#: The weight of log(probability) subtracted from in-batch logits (1 is the
#: textbook correction; above 1 adds a slight popularity prior).
DEFAULT_LOGQ_CORRECTION = 1.1
