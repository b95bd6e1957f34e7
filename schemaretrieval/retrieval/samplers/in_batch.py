"""In-batch negatives: the other positives of the batch, `InBatchSampler`."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from schemaretrieval import registry, replicas
from schemaretrieval.arguments import counts, integer, number
from schemaretrieval.rows import read_rows, write_rows
from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives

__all__ = ["InBatchSampler", "InBatchSamplerV2"]


@registry.register("sampler", "in-batch")
class InBatchSampler(CandidateSampler):
    """The other positives of the batch are each row's negatives.

    In-batch negatives are drawn in proportion to popularity, so their
    logits want a logQ correction (`ContrastiveOutput(logq_sampling_correction=1.0)`).
    The sampler reports each negative's probability from one of:

    - `item_counts`: interaction counts indexed by item id; with `q =
      count / total` the share of one draw, a batch of B holds the item
      `B * q` times on average (not `1 - (1 - q)^B`, the chance of holding
      it at all: each copy is a column of the logits);
    - `num_items`: the size of the id space, for a streaming estimate learnt
      during training (Yi et al., RecSys 2019): per id, the moving averages
      of the steps between its occurrences (`interval`) and of its copies in
      the batches that hold it (`multiplicity`), and probability
      `multiplicity / interval`. The estimate is part of the model's
      weights, so it is saved and restored with them.

    With neither, negatives carry no probability.

    Args:
        item_counts: optional 1-D array of counts >= 0, indexed by item id.
        num_items: optional id-space size for the streaming estimate.
        estimate_rate: the moving averages' weight of the newest step.

    Example:

    >>> import numpy as np
    >>> sampler = InBatchSampler(item_counts=np.array([1.0, 3.0]))
    >>> negatives = sampler(np.array([0, 1]), np.ones((2, 4)))
    >>> [float(p) for p in negatives.probability]  # B * q, B = 2, q = 0.25, 0.75
    [0.5, 1.5]
    """

    in_batch = True

    def __init__(self, item_counts=None, num_items: int | None = None, estimate_rate: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        if item_counts is not None and num_items is not None:
            raise ValueError("InBatchSampler: give item_counts (fixed) or num_items (streaming estimate), not both")
        estimate_rate = number(estimate_rate, "InBatchSampler", "estimate_rate", above=0, at_most=1)
        if num_items is not None:
            num_items = integer(num_items, "InBatchSampler", "num_items")
        self.item_counts = None if item_counts is None else counts(item_counts, "InBatchSampler", "item_counts")
        self.num_items = num_items
        self.estimate_rate = estimate_rate
        self.item_probability = None
        self._set_counts()
        if num_items is not None:
            # Under tf.distribute every replica computes the same update from
            # the gathered global batch: the first replica's value is kept.
            # autocast=False: under a mixed policy the estimate stays float32
            # when read (in bfloat16 a step count stops counting at 256).
            state = {"trainable": False, "aggregation": "only_first_replica", "autocast": False}
            self.step = self.add_weight(shape=(), initializer="zeros", name="step", **state)
            # -1: never seen yet.
            self.last_seen = self.add_weight(shape=(num_items,), initializer=keras.initializers.Constant(-1.0), name="last_seen", **state)
            self.interval = self.add_weight(shape=(num_items,), initializer="ones", name="interval", **state)
            self.multiplicity = self.add_weight(shape=(num_items,), initializer="ones", name="multiplicity", **state)

    def _set_counts(self):
        if self.item_counts is None:
            return
        total = self.item_counts.sum()
        self.item_probability = ops.convert_to_tensor((self.item_counts / total).astype("float32"))

    def wants_catalog(self) -> bool:
        return self.item_counts is None and self.num_items is None

    def set_catalog(self, catalog, replace=False):
        """Takes the catalog's item counts when the sampler has no frequency
        source (so `"in-batch"` by name gets the logQ of the counts given)."""
        if catalog is None or catalog.counts is None or self.num_items is not None:
            return
        if self.item_counts is not None and not replace:
            return
        self.item_counts = counts(catalog.counts_by_id(0), "InBatchSampler", "the catalog's counts")
        self._set_counts()

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        # Under tf.distribute, the positives of every replica: negatives
        # grow with the global batch (outputs find their rows by offset).
        positive_ids = replicas.all_gather(positive_ids)
        positive_embeddings = replicas.all_gather(positive_embeddings)
        ids = ops.cast(positive_ids, "int32")
        probability = None
        if self.item_probability is not None:
            share = ops.take(self.item_probability, ids)
            probability = ops.cast(ops.shape(ids)[0], share.dtype) * share
        elif self.num_items is not None:
            if training:
                self._update_estimate(ids)
            probability = read_rows(self.multiplicity, ids) / read_rows(self.interval, ids)
        return Negatives(positive_ids, positive_embeddings, probability)

    def _update_estimate(self, ids):
        step = self.step + 1.0
        last = read_rows(self.last_seen, ids)
        first = last < 0
        # A first sighting has waited since the start: `step` steps.
        gap = ops.where(first, step, step - last)
        # Copies of each id in this batch: the width of its run in the sorted ids.
        ordered = ops.sort(ids)
        copies = ops.cast(
            ops.searchsorted(ordered, ids, side="right") - ops.searchsorted(ordered, ids, side="left"), "float32")
        rate = self.estimate_rate

        def blend(previous, newest):
            return ops.where(first, newest, (1.0 - rate) * previous + rate * newest)

        # The batch's rows alone: writing the whole vectors cost a pass over
        # the catalog at every step (issue #30). Duplicates in a batch
        # compute the same value, so any write wins.
        write_rows(self.interval, ids, blend(read_rows(self.interval, ids), gap))
        write_rows(self.multiplicity, ids, blend(read_rows(self.multiplicity, ids), copies))
        write_rows(self.last_seen, ids, ops.full(ops.shape(ids), step))
        self.step.assign(step)

    def get_config(self):
        return {
            **super().get_config(),
            "item_counts": None if self.item_counts is None else self.item_counts.tolist(),
            "num_items": self.num_items,
            "estimate_rate": self.estimate_rate,
        }


@registry.register("sampler")
class InBatchSamplerV2(InBatchSampler):
    """Merlin Models' ``InBatchSamplerV2``: what ``"in-batch"`` builds, `InBatchSampler` with
    no counts, under Merlin's name and argument.

    Args:
        batch_size: Merlin's, the number of negatives it gives: the batch's size, inferred
            from the batch when None (as Merlin does), kept as ``batch_size``. The
            negatives are the batch's positives whatever it says, as in Merlin.

    >>> import numpy as np
    >>> sampler = InBatchSamplerV2(batch_size=2)
    >>> negatives = sampler(np.array([4, 7]), np.ones((2, 3)))
    >>> np.asarray(negatives.ids).tolist(), sampler.batch_size, negatives.probability is None
    ([4, 7], 2, True)
    """

    def __init__(self, batch_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = None if batch_size is None else integer(batch_size, "InBatchSamplerV2", "batch_size")

    def get_config(self):
        return {**super().get_config(), "batch_size": self.batch_size}
