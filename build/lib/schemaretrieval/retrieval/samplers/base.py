"""Where the negatives of a batch come from: the sampler interface and `Negatives`.

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
`PopularitySampler`) need a `Catalog` of every item's features to run the
candidate tower on what they draw, and item counts where they draw by
popularity: give it to the sampler (``UniformSampler(catalog=catalog)``),
or to the model (``model.fit(train, catalog=catalog)``, or
``model.set_catalog(catalog)``), which passes it to every sampler that
lacks one (``wants_catalog()``). A sampler that needs a catalog and has none
fails at its first step, saying how to give one.

A sampler of one's own subclasses `CandidateSampler` and registers with
``@sr.registry.register("sampler", "<name>")``: it then saves and loads with
the model, and ``negative_samplers="<name>"`` builds it.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from schemaretrieval import registry

__all__ = ["Negatives", "CandidateSampler", "get_sampler", "get_samplers"]


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
    # True for samplers that draw from the catalog: they fail without one
    # (see the module docstring).
    needs_catalog = False

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def set_catalog(self, catalog, replace: bool = False):
        """The hook through which a model gives the sampler a `Catalog` (with
        its item counts when known). A sampler that was given its own catalog
        keeps it unless `replace`. The base class ignores it."""

    def has_catalog(self) -> bool:
        return True

    def wants_catalog(self) -> bool:
        """Whether `set_catalog` would give the sampler something it lacks."""
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


def get_sampler(spec) -> CandidateSampler:
    """A sampler from a registered name or an instance.

    >>> type(get_sampler("in-batch")).__name__
    'InBatchSampler'
    """
    if isinstance(spec, CandidateSampler):
        return spec
    if isinstance(spec, str):
        try:
            return registry.get("sampler", spec)
        except ValueError as err:
            raise ValueError(f"negative_samplers: {err}; or give a CandidateSampler instance") from None
    raise TypeError(f"negative_samplers: expected a sampler name or a CandidateSampler, got {type(spec).__name__}")


def get_samplers(spec) -> list[CandidateSampler]:
    """A list of samplers from a name, an instance or a list of either.

    >>> [type(s).__name__ for s in get_samplers(["in-batch", "uniform"])]
    ['InBatchSampler', 'UniformSampler']
    """
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ValueError("negative_samplers: give at least one sampler")
    samplers = [get_sampler(s) for s in specs]
    if sum(s.in_batch for s in samplers) > 1:
        raise ValueError("negative_samplers: name the in-batch sampler once")
    return samplers
