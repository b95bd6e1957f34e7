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

    `call(positive_ids, positive_embeddings, candidate_encoder, training)`
    receives the batch's positive item ids [B], their candidate-tower
    embeddings [B, dim], the candidate tower itself (to embed ids it draws)
    and whether this is a training step (when state such as a frequency
    estimate or a memory bank may change), and returns `Negatives`.

    A sampler whose negatives are exactly the batch's positives sets
    `in_batch = True`; the output then scores them once, as TFRS does.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> class FirstItemsSampler(CandidateSampler):
    ...     def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
    ...         return Negatives(positive_ids[:2], positive_embeddings[:2])
    >>> FirstItemsSampler()(np.array([5, 6, 7]), np.ones((3, 4))).ids.shape
    (2,)
    """

    in_batch = False

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement call()")


@keras.saving.register_keras_serializable(package="schemaretrieval")
class InBatchSampler(CandidateSampler):
    """The other positives of the batch are each row's negatives.

    In-batch negatives are drawn in proportion to popularity, so their
    logits want a logQ correction (`ContrastiveOutput(logq_correction=True)`).
    The sampler reports each negative's probability from one of:

    - `item_counts`: interaction counts indexed by item id; the probability
      is `count / total`;
    - `num_items`: the size of the id space, for a streaming estimate learnt
      during training (Yi et al., RecSys 2019): per id, the moving average
      `interval` of the steps between its occurrences, and probability
      `1 / interval`. The estimate is part of the model's weights, so it is
      saved and restored with them.

    With neither, negatives carry no probability.

    Args:
        item_counts: optional 1-D array of counts >= 0, indexed by item id.
        num_items: optional id-space size for the streaming estimate.
        estimate_rate: the moving average's weight of the newest interval.

    Example:

    >>> import numpy as np
    >>> sampler = InBatchSampler(item_counts=np.array([1.0, 3.0]))
    >>> negatives = sampler(np.array([0, 1]), np.ones((2, 4)))
    >>> [float(p) for p in negatives.probability]
    [0.25, 0.75]
    """

    in_batch = True

    def __init__(self, item_counts=None, num_items: int | None = None, estimate_rate: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        if item_counts is not None and num_items is not None:
            raise ValueError("InBatchSampler: give item_counts (fixed) or num_items (streaming estimate), not both")
        if not 0.0 < estimate_rate <= 1.0:
            raise ValueError(f"InBatchSampler: estimate_rate must be in (0, 1], got {estimate_rate}")
        self.item_counts = None if item_counts is None else np.asarray(item_counts, dtype="float64")
        self.num_items = num_items
        self.estimate_rate = estimate_rate
        self.item_probability = None
        if self.item_counts is not None:
            if self.item_counts.ndim != 1 or not self.item_counts.size or (self.item_counts < 0).any():
                raise ValueError("InBatchSampler: item_counts must be a 1-D array of counts >= 0, indexed by item id")
            total = self.item_counts.sum()
            if total <= 0:
                raise ValueError("InBatchSampler: item_counts sum to zero")
            self.item_probability = ops.convert_to_tensor((self.item_counts / total).astype("float32"))
        if num_items is not None:
            if num_items < 1:
                raise ValueError(f"InBatchSampler: num_items must be >= 1, got {num_items}")
            self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="step")
            # -1: never seen yet.
            self.last_seen = self.add_weight(shape=(num_items,), initializer=keras.initializers.Constant(-1.0), trainable=False, name="last_seen")
            self.interval = self.add_weight(shape=(num_items,), initializer="ones", trainable=False, name="interval")

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        ids = ops.cast(positive_ids, "int32")
        probability = None
        if self.item_probability is not None:
            probability = ops.take(self.item_probability, ids)
        elif self.num_items is not None:
            if training:
                self._update_estimate(ids)
            probability = 1.0 / ops.take(self.interval, ids)
        return Negatives(positive_ids, positive_embeddings, probability)

    def _update_estimate(self, ids):
        step = self.step + 1.0
        last = ops.take(self.last_seen, ids)
        previous = ops.take(self.interval, ids)
        # A first sighting has waited since the start: `step` steps.
        gap = ops.where(last < 0, step, step - last)
        blended = ops.where(last < 0, gap, (1.0 - self.estimate_rate) * previous + self.estimate_rate * gap)
        indices = ops.expand_dims(ids, 1)
        # Duplicates in a batch compute the same value, so any write wins.
        self.interval.assign(ops.scatter_update(self.interval, indices, blended))
        self.last_seen.assign(ops.scatter_update(self.last_seen, indices, ops.full(ops.shape(ids), step)))
        self.step.assign(step)

    def get_config(self):
        counts = None if self.item_counts is None else self.item_counts.tolist()
        return {
            **super().get_config(),
            "item_counts": counts,
            "num_items": self.num_items,
            "estimate_rate": self.estimate_rate,
        }


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
