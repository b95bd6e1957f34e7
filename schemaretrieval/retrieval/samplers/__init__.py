"""Where the negatives of a batch come from (see ``base`` for the interface).

* ``in_batch``: `InBatchSampler`, "in-batch"; Merlin's `InBatchSamplerV2`.
* ``catalog``: `UniformSampler` ("uniform"), `PopularitySampler` ("popularity"),
  Merlin's `PopularityBasedSamplerV2` (log-uniform over the ids).
* ``cross_batch``: `CrossBatchSampler`, "cross-batch"; Merlin's `CachedCrossBatchSampler`.
"""

from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives, get_sampler, get_samplers
from schemaretrieval.retrieval.samplers.catalog import (
    PopularityBasedSamplerV2,
    PopularitySampler,
    UniformSampler,
    inclusion_probability,
)
from schemaretrieval.retrieval.samplers.cross_batch import CachedCrossBatchSampler, CrossBatchSampler
from schemaretrieval.retrieval.samplers.in_batch import InBatchSampler, InBatchSamplerV2

__all__ = [
    "CandidateSampler",
    "Negatives",
    "get_sampler",
    "get_samplers",
    "InBatchSampler",
    "InBatchSamplerV2",
    "UniformSampler",
    "PopularitySampler",
    "PopularityBasedSamplerV2",
    "CrossBatchSampler",
    "CachedCrossBatchSampler",
    "inclusion_probability",
]
