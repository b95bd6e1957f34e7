"""Models: `TwoTowerModelV2`, `TwoTowerModel(schema)` and their measured defaults.

* ``two_tower``: `TwoTowerModelV2` (a ``keras.Model``).
* ``loading``: `load_model`, a model written by ``model.save(path)``.
* ``factory``: `TwoTowerModel`, the model built from the schema's tags.
* ``defaults``: the measured defaults (docs/defaults.md).
* ``topk_encoder``: `TopKEncoder`, Merlin's top-k encoder (``model.to_top_k_encoder``).
* ``matrix_factorization``: Merlin's `MatrixFactorizationModelV2`, a `TwoTowerModelV2` of two id embeddings.
"""

from schemaretrieval.models.factory import TwoTowerModel
from schemaretrieval.models.matrix_factorization import MatrixFactorizationModelV2
from schemaretrieval.models.topk_encoder import TopKEncoder, TopKPrediction
from schemaretrieval.models.loading import load_model
from schemaretrieval.models.two_tower import TwoTowerModelV2

__all__ = ["MatrixFactorizationModelV2", "TopKEncoder", "TopKPrediction", "TwoTowerModel", "TwoTowerModelV2", "load_model"]
