"""Cross-batch negatives: a memory bank of the last batches' candidates, `CrossBatchSampler`."""

from __future__ import annotations

import warnings

import keras
import numpy as np
from keras import ops

from schemaretrieval import registry, replicas
from schemaretrieval.arguments import counts, integer
from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives

__all__ = ["CrossBatchSampler", "CachedCrossBatchSampler"]


@registry.register("sampler", "cross-batch")
class CrossBatchSampler(CandidateSampler):
    """Negatives from a memory bank of the candidate embeddings and ids of the
    last batches (cross-batch memory, Wang et al. 2021).

    The bank is a FIFO of `capacity` rows (capacity = N x batch size keeps
    the last N batches). In a training step the bank's current content is
    returned as negatives (its stored rows without gradient, or re-embedded
    with gradient: `refresh`, below), then the batch's positives are
    written over the oldest rows. Empty rows carry id -1 and are removed by
    the output; ids are kept so accidental hits are removed too. The bank
    lives in non-trainable weights, so it is saved with the model. Under
    `tf.distribute` every replica enqueues the global batch (gathered from
    all replicas) and reads the same bank, as one device would.

    **Refreshing.** The bank's stored embeddings are stale (computed by the
    candidate tower of up to `capacity / batch` steps ago) and carry no
    gradient, so alone they leave the candidate tower to learn from the
    positives only. On the e-commerce log of `benchmarks/samplers.py`
    (string ids, brand, category, price, tags) that did not learn at all
    (loss at log(capacity), recall@10 0.022 against popularity's 0.073;
    docs/experiments/cross-batch.md). With a catalog, the sampler keeps the
    bank's ids and re-embeds them through the candidate tower at every
    call (with gradient): a candidate-tower pass over `capacity` rows per
    step, as catalog negatives cost. `refresh=None` (the default) refreshes
    whenever it has a catalog and the output hands it the candidate tower,
    and warns once when a training step runs on the stale bank; `True`
    requires a catalog (`fit` says what to give); `False` is the stale
    bank of Wang et al. / Merlin, without a warning.

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
        refresh: re-embed the bank's ids through the candidate tower at
            every call: None (when a catalog is given), True (always; needs
            a catalog) or False (never: the stored, stale embeddings).

    Example:

    >>> sampler = CrossBatchSampler(capacity=4, embedding_dim=2, refresh=False)  # the stored rows
    >>> _ = sampler(np.array([1, 2]), np.ones((2, 2)), training=True)
    >>> [int(i) for i in sampler(np.array([3]), np.ones((1, 2))).ids]  # the bank before this step; -1 is empty
    [1, 2, -1, -1]
    """

    def __init__(self, capacity: int = 1024, embedding_dim: int | None = None, item_counts=None,
                 refresh: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        capacity = integer(capacity, "CrossBatchSampler", "capacity")
        if embedding_dim is not None:
            embedding_dim = integer(embedding_dim, "CrossBatchSampler", "embedding_dim")
        if refresh is not None and not isinstance(refresh, bool):  # 1 == True, but 1 is not a choice
            raise ValueError(f"CrossBatchSampler: refresh must be None, True or False, got {refresh!r}")
        self.capacity = int(capacity)
        self.refresh = refresh
        self.table = None
        self._warned_stale = False
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

    @property
    def needs_catalog(self) -> bool:
        return self.refresh is True

    def has_catalog(self) -> bool:
        return self.table is not None

    def wants_catalog(self) -> bool:
        return self.item_counts is None or (self.refresh is not False and self.table is None)

    def set_catalog(self, catalog, replace=False):
        """Takes the catalog's item counts, for logQ, unless it has its own,
        and (unless ``refresh=False``) the catalog, to re-embed the bank."""
        if catalog is None:
            return
        if self.refresh is not False and (self.table is None or replace):
            catalog.tensors()  # eagerly: a training step's trace must not own them
            self.table = catalog
        if catalog.counts is None or (self.item_counts is not None and not replace):
            return
        self._set_counts(catalog.counts_by_id(0))

    def _set_counts(self, item_counts):
        self.item_counts = counts(item_counts, "CrossBatchSampler", "item_counts")
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
        if self.refresh is not False and self.table is not None and candidate_encoder is not None:
            embeddings = self._refreshed(ids, embeddings, candidate_encoder, training)
        elif self.refresh is True:
            raise ValueError("CrossBatchSampler(refresh=True) re-embeds the bank and needs a catalog and "
                             "candidate_encoder=: model.fit(train, catalog=sr.data.Catalog.from_interactions(train, "
                             "schema)) or model.set_catalog(...)")
        elif training and self.refresh is None and not self._warned_stale:
            self._warned_stale = True
            warnings.warn(
                "CrossBatchSampler trains on its stale bank (no catalog to re-embed it): on feature-rich "
                "candidate towers that measured below a popularity count (docs/samplers.md). Give the model "
                "a catalog (model.fit(..., catalog=...)), or pass refresh=False to keep the stale bank.",
                stacklevel=2)
        negatives = Negatives(ids, embeddings, self.probability_of(ids))
        if training:
            # Under tf.distribute, the positives of every replica in the
            # global batch's order: the bank one device would hold.
            ids = replicas.all_gather(ops.cast(positive_ids, "int64"))
            vectors = replicas.all_gather(ops.stop_gradient(ops.cast(positive_embeddings, self.bank.dtype)))
            self._enqueue(ids, vectors)
        return negatives

    def _refreshed(self, ids, stale, candidate_encoder, training):
        """The bank's ids through the candidate tower now (with gradient);
        ids the catalog lacks (and empty slots) keep the stored rows."""
        rows = self.table.rows(ids)
        fresh = candidate_encoder(self.table.gather(ops.maximum(rows, 0)), training=training)
        return ops.where(ops.expand_dims(rows >= 0, 1), ops.cast(fresh, stale.dtype), stale)

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
        return {**super().get_config(), "capacity": self.capacity, "embedding_dim": self.embedding_dim, "item_counts": counts,
                "refresh": self.refresh}


@registry.register("sampler")
class CachedCrossBatchSampler(CrossBatchSampler):
    """Merlin Models' ``CachedCrossBatchSampler(capacity, ignore_last_batch_on_sample=True)``: the
    `CrossBatchSampler`'s bank of the last ``capacity`` candidates, under Merlin's name.

    Merlin's default, ``ignore_last_batch_on_sample=True``, is this bank: a step's negatives are
    the bank before the step's own positives are written. False (the batch's own positives
    among the negatives, without gradient) is a NotImplementedError: `InBatchSampler` gives
    those, with gradient. ``**kwargs``: the `CrossBatchSampler`'s ``embedding_dim``, ``item_counts``, ``refresh`` (Merlin's
    bank is stale: ``refresh=False``).

    Example:

    >>> sampler = CachedCrossBatchSampler(capacity=3, embedding_dim=2, refresh=False)
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
