"""Models: `TwoTowerModelV2`, `TwoTowerModel(schema)` and their measured defaults.

* ``two_tower``: `TwoTowerModelV2` (a ``keras.Model``) and `load_model`.
* ``factory``: `TwoTowerModel`, the model built from the schema's tags.
* ``defaults``: the measured defaults (docs/defaults.md).
"""

from schemaretrieval.models.factory import TwoTowerModel
from schemaretrieval.models.two_tower import TwoTowerModelV2, load_model

__all__ = ["TwoTowerModel", "TwoTowerModelV2", "load_model"]
