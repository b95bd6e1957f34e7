"""What every output shares: `SampledOutput` (samplers, catalog hooks, options,
the weighted and reduced loss), Merlin's `Prediction`, and the logQ
correction and negative masks both outputs apply."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from schemaretrieval import replicas
from schemaretrieval.arguments import number
from schemaretrieval.retrieval.samplers import get_samplers

__all__ = ["MASK_VALUE", "PROBABILITY_FLOOR", "Prediction", "SampledOutput", "logq_corrected", "checked_logq_weight",
           "same_id", "empty_slots", "is_candidate"]

# Added to the logits of removed candidates: as TFRS, a large finite negative
# rather than -inf, so a row whose candidates are all removed stays finite.
MASK_VALUE = float(np.finfo(np.float32).min) / 100.0

# The smallest probability a logQ correction takes the log of (as keras-rs).
PROBABILITY_FLOOR = 1e-6


def logq_corrected(scores, probability, weight=1.0):
    """`scores - weight * log(probability)`, the probability floored at `PROBABILITY_FLOOR`.
    keras-rs's SamplingProbabilityCorrection also clips at 1, but samplers report
    expected copies (module docstring of `schemaretrieval.retrieval.samplers.base`), which
    pass 1 for popular items in large batches.

    >>> [round(float(x), 4) for x in logq_corrected(np.array([1.0, 1.0]), np.array([0.5, 2.0]), weight=2.0)]
    [2.3863, -0.3863]
    """
    return scores - weight * ops.log(ops.maximum(probability, PROBABILITY_FLOOR))


def checked_logq_weight(name, logq_sampling_correction) -> float | bool:
    """True (Merlin's), False, or a weight >= 0 (this library's); anything else is an error naming ``name``.

    >>> checked_logq_weight("ContrastiveOutput", True), checked_logq_weight("ContrastiveOutput", 1)
    (True, 1.0)
    >>> checked_logq_weight("ContrastiveOutput", -1)
    Traceback (most recent call last):
    ...
    ValueError: ContrastiveOutput: logq_sampling_correction must be True, False or a weight >= 0, got -1
    """
    if isinstance(logq_sampling_correction, (bool, np.bool_)):
        return bool(logq_sampling_correction)
    if isinstance(logq_sampling_correction, (int, float, np.integer, np.floating)) \
            and 0 <= float(logq_sampling_correction) < np.inf:
        return float(logq_sampling_correction)
    raise ValueError(f"{name}: logq_sampling_correction must be True, False or a weight >= 0, "
                     f"got {logq_sampling_correction!r}")


class Prediction(NamedTuple):
    """Merlin's ``Prediction``: what `ContrastiveOutput.predictions` returns and its ``post`` layer receives.

    ``outputs`` [B, C] logits, ``targets`` [B, C] one-hot (the positive's
    column), ``negative_candidate_ids`` the item id of each negative column
    (with ``store_negative_ids=True``; else None).

    >>> Prediction(np.zeros((1, 2)), np.eye(1, 2)).copy_with_updates(outputs=np.ones((1, 2))).outputs.tolist()
    [[1.0, 1.0]]
    """

    outputs: object
    targets: object = None
    negative_candidate_ids: object = None

    def copy_with_updates(self, **kwargs) -> "Prediction":
        """A copy with the given fields replaced (Merlin's name for ``_replace``)."""
        return self._replace(**kwargs)


class SampledOutput(keras.layers.Layer):
    """What the outputs share: their samplers and the hooks through which a
    model builds them and hands them the catalog, the options every output
    checks alike, and `call`: each output's `row_losses`, weighted and
    reduced. An output defines ``row_losses_and_prediction``.

    >>> from schemaretrieval.retrieval.outputs import ContrastiveOutput
    >>> issubclass(ContrastiveOutput, SampledOutput)
    True
    >>> [ContrastiveOutput(negative_samplers=s).needs_catalog() for s in ("in-batch", "uniform")]  # draws from it
    [False, True]
    """

    REDUCTIONS = ("mean", "sum")

    def _check_options(self, logits_temperature, loss_reduction, logq_sampling_correction):
        name = type(self).__name__
        checked_logq_weight(name, logq_sampling_correction)
        number(logits_temperature, name, "logits_temperature", above=0)
        if loss_reduction not in self.REDUCTIONS:
            raise ValueError(f"{name}: loss_reduction must be one of {self.REDUCTIONS}, got {loss_reduction!r}")

    @property
    def _logq_weight(self) -> float:
        """The weight of log(probability) subtracted from the temperature-scaled logits: Merlin's
        True subtracts it before the temperature, i.e. 1 / temperature after it."""
        weight = checked_logq_weight(type(self).__name__, self.logq_sampling_correction)
        if weight is True:
            return 1.0 / self.logits_temperature
        return float(weight)

    def set_negative_samplers(self, negative_samplers):
        """Merlin's: replaces the samplers (names, instances or a list), before the output is built."""
        if self.built:
            raise ValueError(f"{type(self).__name__}.set_negative_samplers: the output is built (it has trained or "
                             "scored a batch); give the samplers before, or build a new output")
        self.negative_samplers = get_samplers(negative_samplers)

    def build_samplers(self, embedding_dim: int):
        """Creates the samplers' state (e.g. a memory bank) for candidate
        embeddings of this width; the model calls it when it is built."""
        for sampler in self.negative_samplers:
            sampler.build_for_embeddings(int(embedding_dim))
        # Layers with no build of their own hold all their state now: built,
        # so that Keras does not build the model again from a batch (which,
        # under tf.distribute, it would make of the replicas' mean ids).
        for layer in (*self.negative_samplers, self):
            if not layer.built and type(layer).build is keras.layers.Layer.build:
                layer.built = True

    def wants_catalog(self) -> bool:
        """Whether a sampler would take something from `set_catalog` (item
        counts for logQ, or the catalog it draws from)."""
        return any(s.wants_catalog() for s in self.negative_samplers)

    def needs_catalog(self) -> bool:
        """Whether a sampler cannot run without `set_catalog` (it draws from the catalog and has none)."""
        return any(s.needs_catalog and not s.has_catalog() for s in self.negative_samplers)

    def set_catalog(self, catalog, replace: bool = False):
        """Hands a `sr.data.Catalog` (with its item counts) to the samplers that take one."""
        for sampler in self.negative_samplers:
            sampler.set_catalog(catalog, replace=replace)

    def draw_negatives(self, positive_ids, positive, candidate_encoder, training):
        """(in-batch negatives or None, [extra negatives]); with logQ on, each with its
        probabilities or an error saying how to give them."""
        negatives = [
            s(positive_ids, positive, candidate_encoder=candidate_encoder, training=training)
            for s in self.negative_samplers
        ]
        if self._logq_weight:
            for n, sampler in zip(negatives, self.negative_samplers):
                self.require_probability(n.probability, sampler)
        in_batch = [n for n, s in zip(negatives, self.negative_samplers) if s.in_batch]
        extra = [n for n, s in zip(negatives, self.negative_samplers) if not s.in_batch]
        return (in_batch[0] if in_batch else None), extra

    def require_probability(self, probability, sampler):
        """``probability``, or, when a sampler cannot give one that logQ needs, an error
        saying how to give it (a correction asked for is never dropped silently)."""
        if probability is None:
            raise ValueError(
                f"{type(self).__name__}: logq_sampling_correction={self.logq_sampling_correction!r} subtracts each "
                f"negative's log sampling probability, and {type(sampler).__name__} gives no probabilities: give it "
                "item counts (InBatchSampler(item_counts=...), or num_items= for a streaming estimate), or give the model a "
                "catalog with counts: model.fit(..., catalog=sr.data.Catalog.from_interactions(train, schema))")
        return probability

    def _probability_of_positives(self, positive_ids):
        """Each positive's probability among the samplers' negatives (summed
        over samplers), or None when a sampler cannot say."""
        parts = [s.probability_of(positive_ids) for s in self.negative_samplers]
        if not parts or any(p is None for p in parts):
            return None
        return sum(parts[1:], parts[0])

    def _reduce(self, losses, sample_weight):
        if sample_weight is not None:
            losses = losses * ops.reshape(ops.cast(sample_weight, losses.dtype), (-1,))
        total = ops.sum(losses)
        if self.loss_reduction == "sum":
            return total
        # Under tf.distribute, this replica's share of the global batch's
        # mean: Keras sums the replicas' gradients.
        return total / ops.cast(replicas.global_batch_size(ops.shape(losses)[0]), total.dtype)

    def row_losses(self, query, positive, positive_ids, candidate_sampling_probability=None,
                   candidate_encoder=None, training=False):
        """Each row's loss [B], before sample weights and reduction."""
        return self.row_losses_and_prediction(query, positive, positive_ids, candidate_sampling_probability,
                                              candidate_encoder, training)[0]

    def row_losses_and_prediction(self, query, positive, positive_ids, candidate_sampling_probability=None,
                                  candidate_encoder=None, training=False):
        """(each row's loss [B], the batch's `Prediction`: logits and one-hot targets, Merlin's form)."""
        raise NotImplementedError(
            f"{type(self).__name__}: an output defines row_losses_and_prediction(query, positive, positive_ids, ...)"
        )

    def call(
        self,
        query,
        positive,
        positive_ids,
        sample_weight=None,
        candidate_sampling_probability=None,
        candidate_encoder=None,
        training=False,
        return_prediction=False,
    ):
        """The reduced loss of one batch; with ``return_prediction``, (loss, `Prediction`)."""
        losses, prediction = self.row_losses_and_prediction(query, positive, positive_ids,
                                                            candidate_sampling_probability, candidate_encoder,
                                                            training)
        loss = self._reduce(losses, sample_weight)
        return (loss, prediction) if return_prediction else loss

    def get_config(self):
        return {
            **super().get_config(),
            "negative_samplers": [keras.saving.serialize_keras_object(s) for s in self.negative_samplers],
            "logits_temperature": self.logits_temperature,
            "logq_sampling_correction": self.logq_sampling_correction,
            "loss_reduction": self.loss_reduction,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "logq_correction" in config:  # saved before the Merlin names
            config["logq_sampling_correction"] = config.pop("logq_correction")
        config["negative_samplers"] = [keras.saving.deserialize_keras_object(s) for s in config["negative_samplers"]]
        return cls(**config)


def same_id(positive_ids, ids):
    """[B, M]: whether each negative's id is the row's positive id (a false negative).

    >>> same_id(np.array([1, 2]), np.array([2, 3])).numpy().tolist()
    [[False, False], [True, False]]
    """
    return ops.equal(ops.expand_dims(positive_ids, 1), ops.expand_dims(ops.cast(ids, positive_ids.dtype), 0))


def empty_slots(positive_ids, ids):
    """[B, M]: negatives with id < 0 (slots a sampler asks to ignore), for each of the B rows.

    >>> empty_slots(np.array([1, 2]), np.array([-1, 3])).numpy().tolist()
    [[True, False], [True, False]]
    """
    empty = ops.expand_dims(ops.cast(ids, "int64") < 0, 0)
    return ops.broadcast_to(empty, (ops.shape(positive_ids)[0], ops.shape(ids)[0]))


def is_candidate(logits):
    """Whether each logit is a candidate's: False where an output put `MASK_VALUE` (a downscored
    false negative, an empty slot), a column a loss on the logits reads as no negative.

    >>> is_candidate(np.array([[2.0, MASK_VALUE, -30.0]], "float32")).numpy().tolist()
    [[True, False, True]]
    """
    return ops.convert_to_tensor(logits) > MASK_VALUE / 2
