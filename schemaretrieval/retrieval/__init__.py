"""Retrieval: where negatives come from, the losses, and the one top-k engine.

* ``samplers``: `InBatchSampler`, `UniformSampler`, `PopularitySampler`, `CrossBatchSampler`.
* ``losses``: the pairwise family (`BPRLoss` and others), Merlin's `compute(positives_scores, negatives_scores)`.
* ``outputs``: `ContrastiveOutput` and `BPROutput`, the loss layers that own the loss options.
* ``topk``: the chunked top-k engine evaluation, baselines, indexes and the export share.
"""

from schemaretrieval.retrieval import losses, samplers, topk
from schemaretrieval.retrieval.outputs import BPROutput, ContrastiveOutput, Prediction

__all__ = ["losses", "samplers", "topk", "BPROutput", "ContrastiveOutput", "Prediction"]
