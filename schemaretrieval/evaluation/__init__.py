"""Evaluation over the whole catalog: ranks, metrics, baselines and recall curves.

* ``ranking``: `compute_ranks` and `evaluate_ranking` (one query per held-out interaction).
* ``metrics``: `metrics_from_ranks`: recall, NDCG, MRR, precision, MAP at k.
* ``keras_metrics``: Merlin's `RecallAt`, `NDCGAt`, `MRRAt`, `PrecisionAt`, `AvgPrecisionAt` for ``compile(metrics=)``.
* ``baselines``: `Popularity` and `EASE`, ranked by the same engines.
* ``report``: recall@k curves (CSV, PNG).
"""

from schemaretrieval.evaluation.baselines import EASE, Popularity
from schemaretrieval.evaluation.keras_metrics import AvgPrecisionAt, MRRAt, NDCGAt, PrecisionAt, RecallAt
from schemaretrieval.evaluation.metrics import metrics_from_ranks
from schemaretrieval.evaluation.ranking import compute_ranks, evaluate_ranking

__all__ = ["AvgPrecisionAt", "MRRAt", "NDCGAt", "PrecisionAt", "RecallAt", "EASE", "Popularity", "compute_ranks", "evaluate_ranking", "metrics_from_ranks"]
