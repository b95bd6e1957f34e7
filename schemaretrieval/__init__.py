"""schemaretrieval: schema-first two-tower retrieval on TensorFlow 2.21 and Keras 3.

>>> import schemaretrieval as sr
>>> schema = sr.load_schema("schemas/synthetic.yaml")
>>> model = sr.TwoTowerModel(schema)

Merlin Models' retrieval names are here too (docs/migrating.md): a Merlin
program changes its import to ``import schemaretrieval as mm``.

The package, from the bottom up (docs/ARCHITECTURE.md): ``schema``, ``data``
and ``datasets``, ``etl``, ``layers``, ``retrieval``, ``evaluation``,
``training``, ``models``, ``serving``, ``cli``; ``upstream``, ``registry``
and ``replicas`` underneath all of them.
"""

import os as _os
import warnings as _warnings

# TensorFlow's C++ start-up chatter drowns the output a user reads.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# merlin announces on import that PyTorch and Triton are absent; neither is used.
_warnings.filterwarnings("ignore", message=".*dtype mappings did not load successfully")

from schemaretrieval import upstream  # noqa: E402

upstream.apply()  # before merlin's first import: it imports dask.dataframe

from merlin.schema import Tags  # noqa: E402

from schemaretrieval import registry  # noqa: E402
from schemaretrieval import schema, schemas  # noqa: E402
from schemaretrieval import data, datasets  # noqa: E402
from schemaretrieval.data import Loader, ToTarget, unique_rows_by_features  # noqa: E402
from schemaretrieval import etl  # noqa: E402  (nvtabular is imported on first use)
from schemaretrieval.layers import (  # noqa: E402
    CategoricalEmbedding,
    Encoder,
    InputBlock,
    InputBlockV2,
    L2Norm,
    MLPBlock,
    UserHistory,
)
from schemaretrieval.retrieval import losses, samplers  # noqa: E402
from schemaretrieval.retrieval.outputs import BPROutput, ContrastiveOutput, Prediction  # noqa: E402
from schemaretrieval.retrieval.samplers import (  # noqa: E402
    CachedCrossBatchSampler,
    CandidateSampler,
    CrossBatchSampler,
    InBatchSampler,
    InBatchSamplerV2,
    Negatives,
    PopularityBasedSamplerV2,
    PopularitySampler,
    UniformSampler,
)
from schemaretrieval import evaluation  # noqa: E402
from schemaretrieval.evaluation import baselines  # noqa: E402
from schemaretrieval.evaluation.keras_metrics import (  # noqa: E402
    AvgPrecisionAt,
    MRRAt,
    NDCGAt,
    PrecisionAt,
    RecallAt,
)
from schemaretrieval import training  # noqa: E402
from schemaretrieval.training.optimizers import AveragedAdam, LazyAdam, default_optimizer  # noqa: E402
from schemaretrieval.models import (  # noqa: E402
    MatrixFactorizationModelV2,
    TopKEncoder,
    TopKPrediction,
    TwoTowerModel,
    TwoTowerModelV2,
    load_model,
)
from schemaretrieval import serving  # noqa: E402
from schemaretrieval.schema import SchemaError, load_schema, save_schema  # noqa: E402

__all__ = [
    "Tags",
    "registry",
    "schema",
    "schemas",
    "data",
    "datasets",
    "etl",
    "evaluation",
    "baselines",
    "training",
    "serving",
    "losses",
    "samplers",
    "CategoricalEmbedding",
    "Encoder",
    "InputBlock",
    "InputBlockV2",
    "L2Norm",
    "MLPBlock",
    "UserHistory",
    "ContrastiveOutput",
    "BPROutput",
    "Prediction",
    "Loader",
    "ToTarget",
    "unique_rows_by_features",
    "RecallAt",
    "NDCGAt",
    "MRRAt",
    "PrecisionAt",
    "AvgPrecisionAt",
    "TopKEncoder",
    "TopKPrediction",
    "CandidateSampler",
    "InBatchSampler",
    "InBatchSamplerV2",
    "UniformSampler",
    "PopularitySampler",
    "CrossBatchSampler",
    "PopularityBasedSamplerV2",
    "CachedCrossBatchSampler",
    "Negatives",
    "AveragedAdam",
    "LazyAdam",
    "default_optimizer",
    "TwoTowerModel",
    "TwoTowerModelV2",
    "MatrixFactorizationModelV2",
    "load_model",
    "SchemaError",
    "load_schema",
    "save_schema",
]
