"""Cross-batch negatives: a memory bank of the last batches' candidates, `CrossBatchSampler`."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from schemaretrieval import registry, replicas
from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives

__all__ = ["CrossBatchSampler", "CachedCrossBatchSampler"]


@registry.register("sampler", "cross-batch")
class CrossBatchSampler(CandidateSampler):
    """Negatives from a memory bank of the candidate embeddings and ids of the
    last batches (cross-batch memory, Wang et al. 2021).

    The bank is a FIFO of `capacity` rows (capacity = N x batch size keeps
    the last N batches). In a training step the bank's current content is
    returned as negatives without gradient, then the batch's positives are
    written over the oldest rows. Empty rows carry id -1 and are removed by
    the output; ids are kept so accidental hits are removed too. The bank
    lives in non-trainable weights, so it is saved with the model. Under
    `tf.distribute` every replica enqueues the global batch (gathered from
    all replicas) and reads the same bank, as one device would.

    The bank fills in proportion to popularity, as in-batch negatives do:
    with item counts (given, or handed over by the model on `fit` from a
    table) each negative carries the chance of being in a bank of
    `capacity` draws, `1 - (1 - q)^capacity`, for `logq_sampling_correction`: the
    one sampler that does not report expected copies (see the module
    docstring).

    Args:
        capacity: rows of the bank.
        embedding_dim: the candidate tower's output width; when None, taken
            from the first call (the model builds it from its tower).
        item_counts: optional counts indexed by item id, for logQ.

    Example:

    >>> sampler = CrossBatchSampler(capacity=4, embedding_dim=2)
    >>> _ = sampler(np.array([1, 2]), np.ones((2, 2)), training=True)
    >>> [int(i) for i in sampler(np.array([3]), np.ones((1, 2))).ids]  # the bank before this step; -1 is empty
    [1, 2, -1, -1]
    """

    def __init__(self, capacity: int = 1024, embedding_dim: int | None = None, item_counts=None, **kwargs):
        super().__init__(**kwargs)
        if capacity < 1:
            raise ValueError(f"CrossBatchSampler: capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.embedding_dim = embedding_dim
        self.item_counts = None
        self._probability = None
        if item_counts is not None:
            self._set_counts(item_counts)
        if embedding_dim is not None:
            self.build((None,), (None, embedding_dim))

    def build(self, positive_ids_shape=None, positive_embeddings_shape=None):
        if self.built:
            return
        dim = int(positive_embeddings_shape[-1])
        self.embedding_dim = dim
        # Under tf.distribute every replica writes the same rows (the
        # gathered global batch): the first replica's write is kept.
        state = {"trainable": False, "aggregation": "only_first_replica"}
        self.bank = self.add_weight(shape=(self.capacity, dim), initializer="zeros", name="bank", **state)
        self.bank_ids = self.add_weight(
            shape=(self.capacity,), initializer=keras.initializers.Constant(-1), dtype="int64", name="bank_ids", **state)
        self.position = self.add_weight(shape=(), initializer="zeros", dtype="int64", name="position", **state)
        self.built = True

    def wants_catalog(self) -> bool:
        return self.item_counts is None

    def set_catalog(self, catalog, replace=False):
        """Takes the catalog's item counts, for logQ, unless it has its own."""
        if catalog is None or catalog.counts is None or (self.item_counts is not None and not replace):
            return
        self._set_counts(catalog.counts_by_id(0))

    def _set_counts(self, item_counts):
        self.item_counts = np.asarray(item_counts, dtype="float64")
        share = self.item_counts / self.item_counts.sum()
        # The chance of holding the item, not its expected copies (as
        # in-batch): with the bank alone copies measured worse, the
        # positive's column corrected or not (docs/samplers.md).
        probability = -np.expm1(self.capacity * np.log1p(-np.minimum(share, 1.0 - 1e-12)))
        self._probability = ops.convert_to_tensor(probability.astype("float32"))

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        # Copies: the values before this step's write (in eager too).
        ids = ops.copy(self.bank_ids)
        embeddings = ops.stop_gradient(ops.copy(self.bank))
        negatives = Negatives(ids, embeddings, self.probability_of(ids))
        if training:
            # Under tf.distribute, the positives of every replica in the
            # global batch's order: the bank one device would hold.
            ids = replicas.all_gather(ops.cast(positive_ids, "int64"))
            vectors = replicas.all_gather(ops.stop_gradient(ops.cast(positive_embeddings, self.bank.dtype)))
            self._enqueue(ids, vectors)
        return negatives

    def probability_of(self, ids):
        if self._probability is None:
            return None
        ids = ops.cast(ids, "int64")
        # Empty slots (-1) and ids past the counts: left uncorrected (1).
        known = ops.logical_and(ids >= 0, ids < ops.shape(self._probability)[0])
        return ops.where(known, ops.take(self._probability, ops.where(known, ids, 0)), 1.0)

    def _enqueue(self, ids, embeddings):
        # A batch larger than the bank keeps its last `capacity` rows.
        ids, embeddings = ids[-self.capacity :], embeddings[-self.capacity :]
        count = ops.shape(ids)[0]
        slots = ops.mod(self.position + ops.arange(count, dtype="int64"), self.capacity)
        slots = ops.expand_dims(slots, 1)
        self.bank.assign(ops.scatter_update(self.bank, slots, embeddings))
        self.bank_ids.assign(ops.scatter_update(self.bank_ids, slots, ids))
        self.position.assign(ops.mod(self.position + ops.cast(count, "int64"), self.capacity))

    def build_for_embeddings(self, embedding_dim: int):
        self.build((None,), (None, embedding_dim))

    def get_config(self):
        counts = None if self.item_counts is None else self.item_counts.tolist()
        return {**super().get_config(), "capacity": self.capacity, "embedding_dim": self.embedding_dim, "item_counts": counts}


@registry.register("sampler")
class CachedCrossBatchSampler(CrossBatchSampler):
    """Merlin Models' ``CachedCrossBatchSampler(capacity, ignore_last_batch_on_sample=True)``: the
    `CrossBatchSampler`'s bank of the last ``capacity`` candidates, under Merlin's name.

    Merlin's default, ``ignore_last_batch_on_sample=True``, is this bank: a step's negatives are
    the bank before the step's own positives are written. False (the batch's own positives
    among the negatives, without gradient) is a NotImplementedError: `InBatchSampler` gives
    those, with gradient. ``**kwargs``: the `CrossBatchSampler`'s ``embedding_dim``, ``item_counts``.

    Example:

    >>> sampler = CachedCrossBatchSampler(capacity=3, embedding_dim=2)
    >>> _ = sampler(np.array([4]), np.ones((1, 2)), training=True)
    >>> [int(i) for i in sampler(np.array([5]), np.ones((1, 2)), training=True).ids]  # 5 not yet in
    [4, -1, -1]
    """

    def __init__(self, capacity: int, ignore_last_batch_on_sample: bool = True, **kwargs):
        if not ignore_last_batch_on_sample:
            raise NotImplementedError(
                "CachedCrossBatchSampler: ignore_last_batch_on_sample=False is not supported; the bank gives the "
                "earlier batches, and negative_samplers=['in-batch', CachedCrossBatchSampler(...)] adds this "
                "batch's (with gradient)")
        self.ignore_last_batch_on_sample = True
        super().__init__(capacity, **kwargs)

    def get_config(self):
        return {**super().get_config(), "ignore_last_batch_on_sample": self.ignore_last_batch_on_sample}
