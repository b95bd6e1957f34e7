"""schemaretrieval: schema-first two-tower retrieval on TensorFlow 2.21 and Keras 3.

>>> import schemaretrieval as sr
>>> schema = sr.load_schema("schemas/synthetic.yaml")
>>> model = sr.TwoTowerModel(schema)
"""

import os as _os
import warnings as _warnings

# TensorFlow's C++ start-up chatter drowns the output a user reads.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# merlin announces on import that PyTorch and Triton are absent; neither is used.
_warnings.filterwarnings("ignore", message=".*dtype mappings did not load successfully")

from schemaretrieval import upstream as _upstream  # noqa: E402

_upstream.apply()  # before merlin's first import: it imports dask.dataframe

from merlin.schema import Tags  # noqa: E402

from schemaretrieval import baselines, data, evaluation, schema  # noqa: E402
from schemaretrieval import datasets, etl  # noqa: E402  (etl imports nvtabular on first use)
from schemaretrieval.encoders import Encoder, MLPBlock  # noqa: E402
from schemaretrieval.history import UserHistory  # noqa: E402
from schemaretrieval.inputs import InputBlock  # noqa: E402
from schemaretrieval.models import TwoTowerModel, TwoTowerModelV2  # noqa: E402
from schemaretrieval import optimizers  # noqa: E402
from schemaretrieval.optimizers import AveragedAdam, default_optimizer  # noqa: E402
from schemaretrieval import losses  # noqa: E402
from schemaretrieval.outputs import BPROutput, ContrastiveOutput  # noqa: E402
from schemaretrieval.samplers import (  # noqa: E402
    CandidateSampler,
    CandidateTable,
    CrossBatchSampler,
    InBatchSampler,
    Negatives,
    PopularitySampler,
    UniformSampler,
)
from schemaretrieval.schema import SchemaError, load_schema, save_schema  # noqa: E402
from schemaretrieval.saving import load_model  # noqa: E402
from schemaretrieval import training  # noqa: E402  (the docs' sr.training.fit)

__all__ = [
    "Tags",
    "baselines",
    "data",
    "datasets",
    "etl",
    "evaluation",
    "schema",
    "Encoder",
    "UserHistory",
    "MLPBlock",
    "InputBlock",
    "TwoTowerModel",
    "TwoTowerModelV2",
    "optimizers",
    "AveragedAdam",
    "default_optimizer",
    "ContrastiveOutput",
    "BPROutput",
    "losses",
    "CandidateSampler",
    "CandidateTable",
    "InBatchSampler",
    "UniformSampler",
    "PopularitySampler",
    "CrossBatchSampler",
    "Negatives",
    "SchemaError",
    "load_schema",
    "save_schema",
    "load_model",
    "training",
]
