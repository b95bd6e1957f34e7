"""Layers of a tower: embedding tables, the input block, dense layers, the encoder, the user's history.

* ``embeddings``: `CategoricalEmbedding`.
* ``input_block``: `InputBlock` (Merlin's name: `InputBlockV2`) and the readers of each tag.
* ``mlp``: `MLPBlock`.
* ``encoder``: `Encoder`, one tower.
* ``history``: `UserHistory`, the user's training items as a query feature.
* ``l2_norm``: `L2Norm`, Merlin's unit-length layer.
"""

from schemaretrieval.layers.embeddings import CategoricalEmbedding
from schemaretrieval.layers.encoder import Encoder
from schemaretrieval.layers.history import UserHistory
from schemaretrieval.layers.input_block import InputBlock, InputBlockV2
from schemaretrieval.layers.l2_norm import L2Norm
from schemaretrieval.layers.mlp import MLPBlock

__all__ = ["CategoricalEmbedding", "Encoder", "InputBlock", "InputBlockV2", "L2Norm", "MLPBlock", "UserHistory"]
