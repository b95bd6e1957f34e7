"""Where the negatives of a batch come from.

A `CandidateSampler` is handed the batch's positive candidates and returns
`Negatives`: their ids, their embeddings and, when the sampler knows it, the
probability with which each was drawn (for logQ correction). Samplers are
named in `negative_samplers=` by instance or by a registered string.

The probability a sampler reports is the expected number of times the
item is among that sampler's negatives in one training step: for samplers
of distinct items (`UniformSampler`, `PopularitySampler`) its inclusion
probability; for in-batch negatives, where a popular item fills several
columns at once, each column its own draw, the batch size times the item's
share of the draws. That is the weight the softmax denominator gives the
item in expectation, and it keeps the logQ corrections of several samplers
mixed in one softmax on one scale. `CrossBatchSampler` is the exception:
it reports the chance that its bank holds the item at all, which measured
better when the bank is the only source of negatives (docs/samplers.md).

An id < 0 marks a slot to ignore (e.g. an empty place in a memory bank):
outputs always remove it.

Samplers that draw from the catalog (`UniformSampler`,
`PopularitySampler`) need a `CandidateTable` of every item's features to
run the candidate tower on what they draw. Give it to the sampler
(`UniformSampler(candidates=table)`), or let the model hand it over: a
sampler with `needs_catalog = True` receives `set_catalog(table,
item_counts)` from `TwoTowerModelV2.set_catalog`, which `fit` calls by
itself on a DataFrame (or path) when a sampler still lacks one.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
from keras import ops

from schemaretrieval import distributed


class Negatives(NamedTuple):
    """What a sampler returns: `ids` [M], `embeddings` [M, dim] and
    `probability` [M] (None when the sampler cannot say).

    Example:

    >>> negatives = Negatives(np.array([3, 5]), np.ones((2, 4)))
    >>> negatives.ids.tolist(), negatives.probability is None
    ([3, 5], True)
    """

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
    >>> tuple(FirstItemsSampler()(np.array([5, 6, 7]), np.ones((3, 4))).ids.shape)
    (2,)
    """

    in_batch = False
    # True for samplers that draw from the catalog: the model hands them a
    # `CandidateTable` through `set_catalog` (see the module docstring).
    needs_catalog = False

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def set_catalog(self, table: "CandidateTable", item_counts=None, replace: bool = False):
        """The hook through which a model gives the sampler the catalog and
        the item counts of the training data (indexed by item id). A sampler
        that was given its own catalog keeps it unless `replace`. The base
        class ignores it."""

    def has_catalog(self) -> bool:
        return True

    def wants_catalog(self) -> bool:
        """Whether `set_catalog` would give the sampler something it lacks
        (a model hands the catalog over on `fit` from a table when so)."""
        return self.needs_catalog and not self.has_catalog()

    def build_for_embeddings(self, embedding_dim: int):
        """Creates state sized by the candidate embeddings' width (a memory
        bank); the model calls it when it is built, so the state exists
        before saved weights are loaded. The base class has none."""

    def probability_of(self, ids):
        """The probability the sampler would report for each of `ids` [N]
        among its negatives, or None when it cannot say (the base class).

        Without in-batch negatives, `ContrastiveOutput` corrects each row's
        positive by it too: in a sampled softmax every column, the positive
        included, loses the log of its sampling probability, or the
        positive of a rarely drawn item is pushed down against negatives
        corrected upwards."""
        return None


@keras.saving.register_keras_serializable(package="schemaretrieval")
class InBatchSampler(CandidateSampler):
    """The other positives of the batch are each row's negatives.

    In-batch negatives are drawn in proportion to popularity, so their
    logits want a logQ correction (`ContrastiveOutput(logq_correction=True)`).
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
        if not 0.0 < estimate_rate <= 1.0:
            raise ValueError(f"InBatchSampler: estimate_rate must be in (0, 1], got {estimate_rate}")
        self.item_counts = None if item_counts is None else np.asarray(item_counts, dtype="float64")
        self.num_items = num_items
        self.estimate_rate = estimate_rate
        self.item_probability = None
        self._set_counts()
        if num_items is not None:
            if num_items < 1:
                raise ValueError(f"InBatchSampler: num_items must be >= 1, got {num_items}")
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
        if self.item_counts.ndim != 1 or not self.item_counts.size or (self.item_counts < 0).any():
            raise ValueError("InBatchSampler: item_counts must be a 1-D array of counts >= 0, indexed by item id")
        total = self.item_counts.sum()
        if total <= 0:
            raise ValueError("InBatchSampler: item_counts sum to zero")
        self.item_probability = ops.convert_to_tensor((self.item_counts / total).astype("float32"))

    def wants_catalog(self) -> bool:
        return self.item_counts is None and self.num_items is None

    def set_catalog(self, table, item_counts=None, replace=False):
        """Takes the item counts when the sampler has no frequency source
        (so `"in-batch"` by name gets the logQ of the training data)."""
        if item_counts is None or self.num_items is not None or (self.item_counts is not None and not replace):
            return
        self.item_counts = np.asarray(item_counts, dtype="float64")
        self._set_counts()

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        # Under tf.distribute, the positives of every replica: negatives
        # grow with the global batch (outputs find their rows by offset).
        positive_ids = distributed.all_gather(positive_ids)
        positive_embeddings = distributed.all_gather(positive_embeddings)
        ids = ops.cast(positive_ids, "int32")
        probability = None
        if self.item_probability is not None:
            share = ops.take(self.item_probability, ids)
            probability = ops.cast(ops.shape(ids)[0], share.dtype) * share
        elif self.num_items is not None:
            if training:
                self._update_estimate(ids)
            probability = ops.take(self.multiplicity, ids) / ops.take(self.interval, ids)
        return Negatives(positive_ids, positive_embeddings, probability)

    def _update_estimate(self, ids):
        step = self.step + 1.0
        last = ops.take(self.last_seen, ids)
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

        indices = ops.expand_dims(ids, 1)
        # Duplicates in a batch compute the same value, so any write wins.
        self.interval.assign(ops.scatter_update(self.interval, indices, blend(ops.take(self.interval, ids), gap)))
        self.multiplicity.assign(
            ops.scatter_update(self.multiplicity, indices, blend(ops.take(self.multiplicity, ids), copies)))
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

class CandidateTable:
    """Every candidate with its features, gatherable inside the graph.

    Built from a table with one row per item (e.g.
    `sr.data.candidate_table(interactions, schema)`): the candidate-side
    columns become padded arrays (list columns padded with -1, as in
    batches), held as constants. `lookup(ids)` and `gather(rows)` return the
    feature dict the candidate tower reads.

    Args:
        candidates: a DataFrame with one row per item, or a dict of arrays.
        schema: the schema (whole or candidate side); its item-id column
            identifies the rows.

    Example:

    >>> import pandas as pd, schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> frame = sr.data.candidate_table(sr.data.synthetic(schema, 500, seed=0), schema)
    >>> table = CandidateTable(frame, schema)
    >>> features = table.lookup(np.array([int(frame.item_id[3])]))
    >>> int(features["item_id"][0]) == int(frame.item_id[3]), sorted(features)[:2]
    (True, ['item_category', 'item_id'])
    """

    def __init__(self, candidates, schema):
        from schemaretrieval.data import tables
        from schemaretrieval.schema import candidate_schema, item_id_column

        self.id_column = item_id_column(schema)
        self.schema = candidate_schema(schema)
        arrays = tables.to_arrays(candidates, self.schema, source="CandidateTable")
        ids = arrays[self.id_column]
        if len(np.unique(ids)) != len(ids):
            raise ValueError(
                f"CandidateTable: item ids of column {self.id_column!r} repeat; give one row per item "
                "(sr.data.candidate_table(interactions, schema) builds one)"
            )
        self.ids_array = ids.astype("int64")
        self.size = len(ids)
        row_of_id = np.full(int(ids.max()) + 1, -1, dtype="int64")
        row_of_id[ids] = np.arange(self.size)
        self._row_of_id = ops.convert_to_tensor(row_of_id.astype("int32"))
        self.ids = ops.convert_to_tensor(ids.astype("int64"))
        self.features = {name: ops.convert_to_tensor(values) for name, values in arrays.items()}

    def __len__(self):
        return self.size

    def rows(self, ids):
        """Row of each id [M] (-1 for ids not in the table)."""
        ids = ops.cast(ids, "int32")
        inside = ops.logical_and(ids >= 0, ids < ops.shape(self._row_of_id)[0])
        rows = ops.take(self._row_of_id, ops.where(inside, ids, 0))
        return ops.where(inside, rows, -1)

    def gather(self, rows):
        """The feature dict of the given rows [M]."""
        rows = ops.cast(rows, "int32")
        return {name: ops.take(values, rows, axis=0) for name, values in self.features.items()}

    def lookup(self, ids):
        """The feature dict of the given item ids [M]; every id must be in the table."""
        return self.gather(ops.maximum(self.rows(ids), 0))

    def counts(self, item_counts):
        """Counts per row from counts indexed by item id (0 past their end)."""
        item_counts = np.asarray(item_counts, dtype="float64")
        padded = np.zeros(max(len(item_counts), int(self.ids_array.max()) + 1))
        padded[: len(item_counts)] = item_counts
        return padded[self.ids_array]

    @staticmethod
    def item_counts(interactions, id_column) -> np.ndarray:
        """Counts of each item id in an interactions table, indexed by id."""
        return np.bincount(np.asarray(interactions[id_column], dtype="int64")).astype("float64")


def inclusion_probability(share, num_samples: int) -> np.ndarray:
    """The chance that each item is among `num_samples` distinct items drawn
    without replacement, item i with chance `share[i]` per draw (draws that
    repeat an item are redrawn).

    This is the correction for sampling without replacement that TF's
    unique candidate samplers apply, `1 - (1 - q)^T`, with the number of
    draws T solved so that the probabilities sum to `num_samples` (Rosén's
    approximation of successive sampling) instead of taken from one run.

    >>> [round(float(p), 3) for p in inclusion_probability(np.array([0.25, 0.25, 0.5]), 3)]
    [1.0, 1.0, 1.0]
    >>> round(float(inclusion_probability(np.full(10, 0.1), 4).sum()), 6)
    4.0
    """
    share = np.asarray(share, dtype="float64")
    share = share / share.sum()
    positive = share > 0
    if num_samples >= positive.sum():
        return positive.astype("float64")
    log_stay = np.log1p(-np.minimum(share, 1.0 - 1e-12))

    def expected(draws):
        return -np.expm1(draws * log_stay).sum()

    low, high = float(num_samples), float(num_samples)
    while expected(high) < num_samples:
        high *= 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if expected(middle) < num_samples else (low, middle)
    return -np.expm1(0.5 * (low + high) * log_stay)


class _CatalogSampler(CandidateSampler):
    """Draws `num_samples` distinct catalog items per step with chances
    proportional to `_weights(counts)`, embeds them with the candidate tower
    and reports their inclusion probabilities."""

    needs_catalog = True

    def __init__(self, num_samples: int = 256, candidates=None, item_counts=None, schema=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if num_samples < 1:
            raise ValueError(f"{type(self).__name__}: num_samples must be >= 1, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.table = None
        self._own_catalog = False
        if candidates is not None:
            if not isinstance(candidates, CandidateTable):
                if schema is None:
                    raise ValueError(
                        f"{type(self).__name__}: candidates= as a table needs schema=, or give a CandidateTable"
                    )
                candidates = CandidateTable(candidates, schema)
            self.set_catalog(candidates, item_counts, replace=True)
            self._own_catalog = True
        elif item_counts is not None:
            raise ValueError(f"{type(self).__name__}: item_counts= needs candidates= too")

    def has_catalog(self) -> bool:
        return self.table is not None

    def _weights(self, table, item_counts):
        raise NotImplementedError

    def set_catalog(self, table, item_counts=None, replace=False):
        if self.table is not None and self._own_catalog and not replace:
            return
        weights = np.asarray(self._weights(table, item_counts), dtype="float64")
        if not (weights > 0).any():
            raise ValueError(f"{type(self).__name__}: no item of the catalog can be drawn (all weights are zero)")
        self.table = table
        self.samples = int(min(self.num_samples, (weights > 0).sum()))
        share = weights / weights.sum()
        with np.errstate(divide="ignore"):
            # Items of weight 0 are never drawn: a large finite negative.
            self._log_weights = ops.convert_to_tensor(np.where(share > 0, np.log(share), -1e9).astype("float32"))
        self.share = share
        self.probability_array = inclusion_probability(share, self.samples)
        self._probability = ops.convert_to_tensor(self.probability_array.astype("float32"))

    def draw_rows(self, training=True):
        """`samples` distinct rows: the top of log weight + Gumbel noise,
        which is drawing one by one without replacement.

        Outside training (the val_loss of `fit(validation_data=...)`,
        `evaluate`) every call draws the same rows, from the fixed seed
        `seed` (0 when None): the training draws stay those of the seed
        whether or not the run validates, and the loss on held-out data is
        comparable from one epoch to the next."""
        seed = self.seed_generator if training else (0 if self.seed is None else int(self.seed))
        uniform = keras.random.uniform((self.table.size,), minval=1e-9, maxval=1.0, seed=seed)
        _, rows = ops.top_k(self._log_weights - ops.log(-ops.log(uniform)), self.samples)
        return rows

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        if self.table is None:
            raise ValueError(
                f"{type(self).__name__} has no catalog to draw from: pass {type(self).__name__}(candidates="
                "sr.CandidateTable(sr.data.candidate_table(interactions, schema), schema)), call "
                "model.set_catalog(candidates), or fit the model on a DataFrame (it hands over the catalog)"
            )
        if candidate_encoder is None:
            raise ValueError(f"{type(self).__name__} needs candidate_encoder= to embed the items it draws")
        rows = self.draw_rows(training)
        embeddings = candidate_encoder(self.table.gather(rows), training=training)
        return Negatives(ops.take(self.table.ids, rows), embeddings, ops.take(self._probability, rows))

    def probability_of(self, ids):
        if self.table is None:
            return None
        rows = self.table.rows(ids)
        # An id the catalog lacks is never drawn: it is left uncorrected (1).
        return ops.where(rows >= 0, ops.take(self._probability, ops.maximum(rows, 0)), 1.0)

    def get_config(self):
        # The catalog is training data, not configuration: a loaded model
        # gets it again from set_catalog or from fit on a DataFrame.
        return {**super().get_config(), "num_samples": self.num_samples, "seed": self.seed}


@keras.saving.register_keras_serializable(package="schemaretrieval")
class UniformSampler(_CatalogSampler):
    """`num_samples` distinct items drawn uniformly from the catalog each step
    (probability `num_samples / catalog size`).

    Args:
        num_samples: negatives per step (shared by every row of the batch).
        candidates: a `CandidateTable` (or a table with `schema=`); when
            None, the model hands one over (see `set_catalog`).
        seed: for the draws.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> frame = sr.data.candidate_table(sr.data.synthetic(schema, 500, seed=0), schema)
    >>> sampler = UniformSampler(num_samples=8, candidates=frame, schema=schema, seed=0)
    >>> tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([4]))
    >>> negatives = sampler(np.array([1]), np.ones((1, 4)), candidate_encoder=tower)
    >>> tuple(negatives.embeddings.shape), round(float(negatives.probability[0]) * len(frame), 6)
    ((8, 4), 8.0)
    """

    def _weights(self, table, item_counts):
        return np.ones(table.size)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class PopularitySampler(_CatalogSampler):
    """`num_samples` distinct items drawn in proportion to their counts in the
    training data (`item_counts`, indexed by item id; + `smoothing` each),
    not an assumed Zipf order of the ids. Each negative carries its exact
    inclusion probability under sampling without replacement (see
    `inclusion_probability`), for `logq_correction`.

    Args:
        num_samples: distinct negatives per step.
        candidates: a `CandidateTable` (or a table with `schema=`); when
            None, the model hands one over with the counts of its training
            data.
        item_counts: counts indexed by item id; required with `candidates`.
        smoothing: added to every count, so unseen items can be drawn.
        seed: for the draws.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> frame = sr.data.synthetic(schema, 500, seed=0)
    >>> counts = CandidateTable.item_counts(frame, "item_id")
    >>> sampler = PopularitySampler(num_samples=8, candidates=sr.data.candidate_table(frame, schema),
    ...                             item_counts=counts, schema=schema, seed=0)
    >>> tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([4]))
    >>> negatives = sampler(np.array([1]), np.ones((1, 4)), candidate_encoder=tower)
    >>> tuple(negatives.embeddings.shape), round(float(sampler.probability_array.sum()), 6)  # 8 distinct items
    ((8, 4), 8.0)
    """

    def __init__(self, num_samples: int = 256, candidates=None, item_counts=None, schema=None, smoothing: float = 0.0, seed=None, **kwargs):
        if smoothing < 0:
            raise ValueError(f"PopularitySampler: smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
        if candidates is not None and item_counts is None:
            raise ValueError("PopularitySampler: candidates= needs item_counts= (counts indexed by item id)")
        super().__init__(num_samples, candidates, item_counts, schema, seed, **kwargs)

    def _weights(self, table, item_counts):
        if item_counts is None:
            raise ValueError(
                "PopularitySampler needs item counts: give item_counts= (indexed by item id), "
                "or fit the model on a DataFrame so it counts them"
            )
        return table.counts(item_counts) + self.smoothing

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


@keras.saving.register_keras_serializable(package="schemaretrieval")
class CrossBatchSampler(CandidateSampler):
    """Negatives from a memory bank of the candidate embeddings and ids of the
    last batches (cross-batch memory, Wang et al. 2021).

    The bank is a FIFO of `capacity` rows (capacity = N x batch size keeps
    the last N batches). In a training step the bank's current content is
    returned as negatives without gradient, then the batch's positives are
    written over the oldest rows. Empty rows carry id -1 and are removed by
    the output; ids are kept so accidental hits are removed too. The bank
    lives in non-trainable weights, so it is saved with the model.

    The bank fills in proportion to popularity, as in-batch negatives do:
    with item counts (given, or handed over by the model on `fit` from a
    table) each negative carries the chance of being in a bank of
    `capacity` draws, `1 - (1 - q)^capacity`, for `logq_correction`: the
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
            self.set_catalog(None, item_counts, replace=True)
        if embedding_dim is not None:
            self.build((None,), (None, embedding_dim))

    def build(self, positive_ids_shape=None, positive_embeddings_shape=None):
        if self.built:
            return
        dim = int(positive_embeddings_shape[-1])
        self.embedding_dim = dim
        self.bank = self.add_weight(shape=(self.capacity, dim), initializer="zeros", trainable=False, name="bank")
        self.bank_ids = self.add_weight(
            shape=(self.capacity,), initializer=keras.initializers.Constant(-1), dtype="int64", trainable=False, name="bank_ids"
        )
        self.position = self.add_weight(shape=(), initializer="zeros", dtype="int64", trainable=False, name="position")
        self.built = True

    def wants_catalog(self) -> bool:
        return self.item_counts is None

    def set_catalog(self, table, item_counts=None, replace=False):
        if item_counts is None or (self.item_counts is not None and not replace):
            return
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
            self._enqueue(ops.cast(positive_ids, "int64"), ops.stop_gradient(ops.cast(positive_embeddings, self.bank.dtype)))
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


SAMPLERS = {
    "in-batch": InBatchSampler,
    "uniform": UniformSampler,
    "popularity": PopularitySampler,
    "cross-batch": CrossBatchSampler,
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
