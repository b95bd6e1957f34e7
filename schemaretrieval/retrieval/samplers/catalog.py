"""Negatives drawn from the catalog: `UniformSampler` and `PopularitySampler`.

Each step draws ``num_samples`` distinct items (without replacement), embeds
them with the candidate tower and reports each one's inclusion probability,
for the logQ correction.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from schemaretrieval import registry
from schemaretrieval.arguments import integer, number
from schemaretrieval.data.catalog import Catalog
from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives

__all__ = ["UniformSampler", "PopularitySampler", "PopularityBasedSamplerV2", "inclusion_probability", "log_uniform_share"]


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

    def __init__(self, num_samples: int = 256, catalog: Catalog | None = None, seed=None, **kwargs):
        super().__init__(**kwargs)
        num_samples = integer(num_samples, type(self).__name__, "num_samples")
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(f"{type(self).__name__}: catalog= expects a sr.data.Catalog, got {type(catalog).__name__}")
        self.num_samples = int(num_samples)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.table = None
        self._own_catalog = False
        if catalog is not None:
            self.set_catalog(catalog, replace=True)
            self._own_catalog = True

    def has_catalog(self) -> bool:
        return self.table is not None

    def _weights(self, catalog):
        raise NotImplementedError

    def set_catalog(self, catalog, replace=False):
        if catalog is None or (self.table is not None and self._own_catalog and not replace):
            return
        weights = np.asarray(self._weights(catalog), dtype="float64")
        if not (weights > 0).any():
            raise ValueError(f"{type(self).__name__}: no item of the catalog can be drawn (all weights are zero)")
        catalog.tensors()  # eagerly: a training step's trace must not own them
        self.table = catalog
        self.samples = int(min(self.num_samples, (weights > 0).sum()))
        share = weights / weights.sum()
        with np.errstate(divide="ignore"):
            # Items of weight 0 are never drawn: a large finite negative.
            self._log_weights = ops.convert_to_tensor(np.where(share > 0, np.log(share), -1e9).astype("float32"))
        self.share = share
        self.probability_array = inclusion_probability(share, self.samples)
        self._ids = ops.convert_to_tensor(catalog.ids.astype("int64"))
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
        uniform = keras.random.uniform((len(self.table),), minval=1e-9, maxval=1.0, seed=seed)
        _, rows = ops.top_k(self._log_weights - ops.log(-ops.log(uniform)), self.samples)
        return rows

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        if self.table is None:
            raise ValueError(
                f"{type(self).__name__} has no catalog to draw from: give it one, "
                f"{type(self).__name__}(catalog=sr.data.Catalog.from_interactions(train, schema)), or to the model: "
                "model.fit(train, catalog=...) or model.set_catalog(...)"
            )
        if candidate_encoder is None:
            raise ValueError(f"{type(self).__name__} needs candidate_encoder= to embed the items it draws")
        rows = self.draw_rows(training)
        embeddings = candidate_encoder(self.table.gather(rows), training=training)
        return Negatives(ops.take(self._ids, rows), embeddings, ops.take(self._probability, rows))

    def probability_of(self, ids):
        if self.table is None:
            return None
        rows = self.table.rows(ids)
        # An id the catalog lacks is never drawn: it is left uncorrected (1).
        return ops.where(rows >= 0, ops.take(self._probability, ops.maximum(rows, 0)), 1.0)

    def get_config(self):
        # The catalog is training data, not configuration: a loaded model
        # gets it again from set_catalog or fit(catalog=).
        return {**super().get_config(), "num_samples": self.num_samples, "seed": self.seed}


@registry.register("sampler", "uniform")
class UniformSampler(_CatalogSampler):
    """`num_samples` distinct items drawn uniformly from the catalog each step
    (probability `num_samples / catalog size`).

    Args:
        num_samples: negatives per step (shared by every row of the batch).
        catalog: a `sr.data.Catalog`; when None, the model gives one
            (``fit(catalog=)``, ``set_catalog``).
        seed: for the draws.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> catalog = sr.data.Catalog.from_interactions(sr.data.synthetic(schema, 500, seed=0), schema)
    >>> sampler = UniformSampler(num_samples=8, catalog=catalog, seed=0)
    >>> tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([4]))
    >>> negatives = sampler(np.array([1]), np.ones((1, 4)), candidate_encoder=tower)
    >>> tuple(negatives.embeddings.shape), round(float(negatives.probability[0]) * len(catalog), 6)
    ((8, 4), 8.0)
    """

    def _weights(self, catalog):
        return np.ones(len(catalog))


@registry.register("sampler", "popularity")
class PopularitySampler(_CatalogSampler):
    """`num_samples` distinct items drawn in proportion to their counts in the
    training data (the catalog's ``counts``; + `smoothing` each), not an
    assumed Zipf order of the ids. Each negative carries its exact inclusion
    probability under sampling without replacement (see
    `inclusion_probability`), for `logq_sampling_correction`.

    Args:
        num_samples: distinct negatives per step.
        catalog: a `sr.data.Catalog` with counts
            (``Catalog.from_interactions(train, schema)``); when None, the
            model gives one (``fit(catalog=)``, ``set_catalog``).
        smoothing: added to every count, so unseen items can be drawn.
        seed: for the draws.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> catalog = sr.data.Catalog.from_interactions(sr.data.synthetic(schema, 500, seed=0), schema)
    >>> sampler = PopularitySampler(num_samples=8, catalog=catalog, seed=0)
    >>> tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([4]))
    >>> negatives = sampler(np.array([1]), np.ones((1, 4)), candidate_encoder=tower)
    >>> tuple(negatives.embeddings.shape), round(float(sampler.probability_array.sum()), 6)  # 8 distinct items
    ((8, 4), 8.0)
    """

    def __init__(self, num_samples: int = 256, catalog: Catalog | None = None, smoothing: float = 0.0, seed=None,
                 **kwargs):
        self.smoothing = number(smoothing, "PopularitySampler", "smoothing", at_least=0)
        super().__init__(num_samples, catalog, seed, **kwargs)

    def _weights(self, catalog):
        if catalog.counts is None:
            raise ValueError(
                "PopularitySampler needs item counts: give a catalog built from interactions, "
                "sr.data.Catalog.from_interactions(train, schema), or Catalog(table, schema, counts=...)"
            )
        return catalog.counts + self.smoothing

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


def log_uniform_share(ids, max_id: int, min_id: int = 0) -> np.ndarray:
    """The log-uniform (Zipf) share of each id that TF's ``log_uniform_candidate_sampler`` and
    Merlin's ``PopularityBasedSamplerV2`` draw with: id ``i`` in ``[min_id, max_id)`` gets
    ``(log(i - min_id + 2) - log(i - min_id + 1)) / log(max_id - min_id + 1)``, any other id 0.

    >>> [round(float(s), 4) for s in log_uniform_share(np.arange(4), max_id=3, min_id=1)]
    [0.0, 0.6309, 0.3691, 0.0]
    """
    rank = np.asarray(ids, dtype="float64") - min_id
    inside = (rank >= 0) & (rank < max_id - min_id)
    share = (np.log(rank + 2.0, where=inside, out=np.zeros_like(rank))
             - np.log(rank + 1.0, where=inside, out=np.zeros_like(rank))) / np.log(max_id - min_id + 1.0)
    return np.where(inside, share, 0.0)


@registry.register("sampler")
class PopularityBasedSamplerV2(_CatalogSampler):
    """Merlin Models' ``PopularityBasedSamplerV2``: ``max_num_samples`` distinct items per step,
    drawn with the log-uniform (Zipf) share of their ids (`log_uniform_share`), which assumes
    the ids are ordered by decreasing frequency (NVTabular's ``Categorify`` numbers them so).
    It is this module's catalog sampler with those weights: the drawn items' features come
    from the catalog, and each negative carries its inclusion probability
    (`inclusion_probability`) for the logQ correction.

    Args (Merlin's, in its order):
        max_id: ids ``>= max_id`` are never drawn (Merlin: the id column's cardinality).
        min_id: ids ``< min_id`` are never drawn (reserved ones: nulls, out-of-vocabulary).
        max_num_samples: distinct negatives per step, at most ``max_id``.
        unique: Merlin's; only True (distinct items) is supported.
        seed: for the draws.
        catalog: the library's: a `sr.data.Catalog` holding every id of ``[min_id, max_id)``
            (``sr.data.Catalog.of_domain(schema)`` when the candidate tower reads only the id);
            when None, the model gives one (``fit(catalog=)``, ``set_catalog``). A catalog that
            lacks one of those ids is a ValueError: the draws would not be Merlin's.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.schema.schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"],
    ...     "dtype": "int64", "domain": {"min": 0, "max": 9}}}})
    >>> sampler = PopularityBasedSamplerV2(max_id=10, min_id=1, max_num_samples=4, seed=0,
    ...                                    catalog=sr.data.Catalog.of_domain(schema))
    >>> negatives = sampler(np.array([1]), np.ones((1, 4)), candidate_encoder=sr.Encoder(schema, sr.MLPBlock([4])))
    >>> sorted(set(negatives.ids.numpy().tolist()) - set(range(1, 10))), round(float(sampler.share[1]), 4)
    ([], 0.301)
    """

    def __init__(self, max_id: int, min_id: int = 0, max_num_samples: int = 10, unique: bool = True, seed=None,
                 catalog: Catalog | None = None, **kwargs):
        if not unique:
            raise NotImplementedError("PopularityBasedSamplerV2: unique=False (repeated draws) is not supported; "
                                      "the catalog samplers draw distinct items")
        max_id = integer(max_id, "PopularityBasedSamplerV2", "max_id")
        min_id = integer(min_id, "PopularityBasedSamplerV2", "min_id", minimum=0)
        max_num_samples = integer(max_num_samples, "PopularityBasedSamplerV2", "max_num_samples")
        if not 0 <= min_id < max_id:
            raise ValueError(f"PopularityBasedSamplerV2: expected 0 <= min_id < max_id, got min_id={min_id}, "
                             f"max_id={max_id}")
        if max_num_samples > max_id:
            raise ValueError(f"PopularityBasedSamplerV2: max_num_samples ({max_num_samples}) must be at most "
                             f"max_id ({max_id})")
        self.max_id, self.min_id, self.unique = int(max_id), int(min_id), True
        super().__init__(max_num_samples, catalog, seed, **kwargs)

    @property
    def max_num_samples(self) -> int:
        return self.num_samples

    def _weights(self, catalog):
        missing = np.setdiff1d(np.arange(self.min_id, self.max_id), catalog.ids)
        if len(missing):
            raise ValueError(
                f"PopularityBasedSamplerV2: the catalog lacks {len(missing)} id(s) of [min_id, max_id) = "
                f"[{self.min_id}, {self.max_id}) (first {missing[:5].tolist()}), which Merlin's draws can "
                "return; give a catalog of every id (sr.data.Catalog.of_domain(schema) when the candidate "
                "tower reads only the id) or lower max_id")
        return log_uniform_share(catalog.ids, self.max_id, self.min_id)

    def get_config(self):
        config = super().get_config()
        config.pop("num_samples")
        return {**config, "max_id": self.max_id, "min_id": self.min_id, "max_num_samples": self.num_samples,
                "unique": self.unique}
