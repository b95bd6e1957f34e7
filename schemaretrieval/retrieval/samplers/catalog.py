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
from schemaretrieval.data.catalog import Catalog
from schemaretrieval.retrieval.samplers.base import CandidateSampler, Negatives

__all__ = ["UniformSampler", "PopularitySampler", "inclusion_probability"]


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
        if num_samples < 1:
            raise ValueError(f"{type(self).__name__}: num_samples must be >= 1, got {num_samples}")
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
        if smoothing < 0:
            raise ValueError(f"PopularitySampler: smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
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
