"""Where the negatives of a batch come from.

A `CandidateSampler` is handed the batch's positive candidates and returns
`Negatives`: their ids, their embeddings and, when the sampler knows it, the
probability with which each was drawn (for logQ correction). Samplers are
named in `negative_samplers=` by instance or by a registered string.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import ops


class Negatives(NamedTuple):
    """What a sampler returns: `ids` [M], `embeddings` [M, dim] and
    `probability` [M] (None when the sampler cannot say)."""

    ids: object
    embeddings: object
    probability: object = None


class CandidateSampler(keras.layers.Layer):
    """The interface of a negative sampler: subclass it and implement `call`.

    `call(positive_ids, positive_embeddings, candidate_encoder)` receives the
    batch's positive item ids [B], their candidate-tower embeddings [B, dim]
    and the candidate tower itself (to embed ids it draws), and returns
    `Negatives`.

    A sampler whose negatives are exactly the batch's positives sets
    `in_batch = True`; the output then scores them once, as TFRS does.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> class FirstItemsSampler(CandidateSampler):
    ...     def call(self, positive_ids, positive_embeddings, candidate_encoder=None):
    ...         return Negatives(positive_ids[:2], positive_embeddings[:2])
    >>> FirstItemsSampler()(np.array([5, 6, 7]), np.ones((3, 4))).ids.shape
    (2,)
    """

    in_batch = False

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None):
        raise NotImplementedError(f"{type(self).__name__} must implement call()")


@keras.saving.register_keras_serializable(package="schemaretrieval")
class InBatchSampler(CandidateSampler):
    """The other positives of the batch are each row's negatives.

    Args:
        item_counts: optional interaction count per item id (an array indexed
            by id). When given, each negative carries the probability
            `count / total`, so `logq_correction=True` can subtract its log
            (in-batch negatives are drawn in proportion to popularity).

    Example:

    >>> import numpy as np
    >>> sampler = InBatchSampler(item_counts=np.array([1.0, 3.0]))
    >>> negatives = sampler(np.array([0, 1]), np.ones((2, 4)))
    >>> [float(p) for p in negatives.probability]
    [0.25, 0.75]
    """

    in_batch = True

    def __init__(self, item_counts=None, **kwargs):
        super().__init__(**kwargs)
        self.item_counts = None if item_counts is None else np.asarray(item_counts, dtype="float64")
        self.item_probability = None
        if self.item_counts is not None:
            if self.item_counts.ndim != 1 or not self.item_counts.size or (self.item_counts < 0).any():
                raise ValueError("InBatchSampler: item_counts must be a 1-D array of counts >= 0, indexed by item id")
            total = self.item_counts.sum()
            if total <= 0:
                raise ValueError("InBatchSampler: item_counts sum to zero")
            self.item_probability = ops.convert_to_tensor((self.item_counts / total).astype("float32"))

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None):
        probability = None
        if self.item_probability is not None:
            probability = ops.take(self.item_probability, ops.cast(positive_ids, "int32"))
        return Negatives(positive_ids, positive_embeddings, probability)

    def get_config(self):
        counts = None if self.item_counts is None else self.item_counts.tolist()
        return {**super().get_config(), "item_counts": counts}


SAMPLERS = {
    "in-batch": InBatchSampler,
}


def get_sampler(spec) -> CandidateSampler:
    """A sampler from a registered name or an instance.

    >>> type(get_sampler("in-batch")).__name__
    'InBatchSampler'
    """
    if isinstance(spec, CandidateSampler):
        return spec
    if isinstance(spec, str) and spec in SAMPLERS:
        return SAMPLERS[spec]()
    raise ValueError(
        f"negative_samplers: unknown sampler {spec!r}; give a CandidateSampler instance or one of {sorted(SAMPLERS)}"
    )


def get_samplers(spec) -> list[CandidateSampler]:
    """A list of samplers from a name, an instance or a list of either."""
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ValueError("negative_samplers: give at least one sampler")
    samplers = [get_sampler(s) for s in specs]
    if sum(s.in_batch for s in samplers) > 1:
        raise ValueError("negative_samplers: name the in-batch sampler once")
    return samplers
