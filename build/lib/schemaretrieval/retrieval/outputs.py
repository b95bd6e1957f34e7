"""The retrieval loss: how a batch's positives and negatives become one number.

`ContrastiveOutput` owns the loss options of the TFRS Retrieval task
(temperature, accidental hits, hard negatives, sampling-probability
correction, sample weights) and asks its samplers for negatives.
`BPROutput` scores each row's positive against its negatives with a
pairwise loss of `schemaretrieval.retrieval.losses`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras_rs.layers import HardNegativeMining

from schemaretrieval import registry, replicas
from schemaretrieval.retrieval import losses as losses_lib
from schemaretrieval.retrieval.samplers import get_samplers

# Added to the logits of removed candidates: as TFRS, a large finite negative
# rather than -inf, so a row whose candidates are all removed stays finite.
MASK_VALUE = float(np.finfo(np.float32).min) / 100.0

# The smallest probability a logQ correction takes the log of (as keras-rs).
_PROBABILITY_FLOOR = 1e-6


def _logq_corrected(scores, probability, weight=1.0):
    """`scores - weight * log(probability)`. keras-rs's
    SamplingProbabilityCorrection also clips at 1, but samplers report
    expected copies (module docstring of `schemaretrieval.retrieval.samplers.base`), which
    pass 1 for popular items in large batches."""
    return scores - weight * ops.log(ops.maximum(probability, _PROBABILITY_FLOOR))


def _checked_logq_weight(name, logq_correction) -> float:
    """The weight of log(probability) that `logq_correction` asks for: True is
    1 (Yi et al.), False 0, a number >= 0 itself (Merlin's `reg_factor`)."""
    if isinstance(logq_correction, bool):
        return float(logq_correction)
    if isinstance(logq_correction, (int, float, np.integer, np.floating)) and 0 <= float(logq_correction) < np.inf:
        return float(logq_correction)
    raise ValueError(f"{name}: logq_correction must be True, False or a weight >= 0, got {logq_correction!r}")


class SampledOutput(keras.layers.Layer):
    """What the outputs share: their samplers and the hooks through which a
    model builds them and hands them the catalog, the options every output
    checks alike, and `call`: each output's `row_losses`, weighted and
    reduced."""

    REDUCTIONS = ("mean", "sum")

    def _check_options(self, logits_temperature, loss_reduction, logq_correction):
        name = type(self).__name__
        _checked_logq_weight(name, logq_correction)
        if logits_temperature <= 0:
            raise ValueError(f"{name}: logits_temperature must be > 0, got {logits_temperature}")
        if loss_reduction not in self.REDUCTIONS:
            raise ValueError(f"{name}: loss_reduction must be one of {self.REDUCTIONS}, got {loss_reduction!r}")

    @property
    def _logq_weight(self) -> float:
        return _checked_logq_weight(type(self).__name__, self.logq_correction)

    def build_samplers(self, embedding_dim: int):
        """Creates the samplers' state (e.g. a memory bank) for candidate
        embeddings of this width; the model calls it when it is built."""
        for sampler in self.negative_samplers:
            sampler.build_for_embeddings(int(embedding_dim))

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
                f"{type(self).__name__}: logq_correction={self.logq_correction!r} subtracts each negative's log "
                f"sampling probability, and {type(sampler).__name__} gives no probabilities: give it item counts "
                "(InBatchSampler(item_counts=...), or num_items= for a streaming estimate), or give the model a "
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
        raise NotImplementedError(
            f"{type(self).__name__}: an output defines row_losses(query, positive, positive_ids, ...)"
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
    ):
        """The reduced loss of one batch."""
        losses = self.row_losses(query, positive, positive_ids, candidate_sampling_probability, candidate_encoder,
                                 training)
        return self._reduce(losses, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "negative_samplers": [keras.saving.serialize_keras_object(s) for s in self.negative_samplers],
            "logits_temperature": self.logits_temperature,
            "logq_correction": self.logq_correction,
            "loss_reduction": self.loss_reduction,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["negative_samplers"] = [keras.saving.deserialize_keras_object(s) for s in config["negative_samplers"]]
        return cls(**config)


def _same_id(positive_ids, ids):
    return ops.equal(ops.expand_dims(positive_ids, 1), ops.expand_dims(ops.cast(ids, positive_ids.dtype), 0))


def _empty_slots(positive_ids, ids):
    """[B, M]: negatives with id < 0 (slots a sampler asks to ignore)."""
    empty = ops.expand_dims(ops.cast(ids, "int64") < 0, 0)
    return ops.broadcast_to(empty, (ops.shape(positive_ids)[0], ops.shape(ids)[0]))


@keras.saving.register_keras_serializable(package="schemaretrieval")
class ContrastiveOutput(SampledOutput):
    """Softmax cross-entropy of each query against its positive and negatives.

    With the in-batch sampler, the logits are `query @ positives.T` and row
    i's label is column i, exactly as in TFRS's Retrieval task; negatives of
    other samplers are appended as extra columns, negatives for every row.
    Without in-batch negatives, column 0 holds each row's own positive.

    The order of operations follows TFRS: divide by `logits_temperature`,
    subtract log of the sampling probability, remove accidental hits, keep
    the hardest negatives, then the cross-entropy.

    Args:
        negative_samplers: a sampler name ("in-batch", "uniform",
            "popularity", "cross-batch"), a `CandidateSampler` or a list of
            them whose negatives are concatenated (e.g. ["in-batch",
            "uniform"], mixed negatives).
        logits_temperature: the logits are divided by it.
        remove_accidental_hits: negatives with the same item id as the row's
            positive are removed from that row's softmax.
        num_hard_negatives: keep only this many highest-scoring negatives
            per row.
        logq_correction: subtract log(sampling probability) from the logits
            of every candidate whose sampler reports one (Yi et al. 2019);
            a number weighs it (`weight * log(probability)`; True is 1).
            Without in-batch negatives the positive's column is corrected
            too, by what its samplers' `probability_of` reports for it.
            Above 1 it leaves popular items higher in the results.
        loss_reduction: "mean" (Merlin's, sum of weighted losses / batch
            size) or "sum" (TFRS's).

    Example:

    >>> import numpy as np
    >>> output = ContrastiveOutput()
    >>> q = np.eye(2, dtype="float32"); c = np.eye(2, dtype="float32")
    >>> round(float(output(q, c, np.array([0, 1]))), 4)  # log(1 + e^-1)
    0.3133
    """

    def __init__(
        self,
        negative_samplers="in-batch",
        logits_temperature: float = 1.0,
        remove_accidental_hits: bool = False,
        num_hard_negatives: int | None = None,
        logq_correction: bool | float = False,
        loss_reduction: str = "mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._check_options(logits_temperature, loss_reduction, logq_correction)
        if num_hard_negatives is not None and num_hard_negatives < 1:
            raise ValueError(f"ContrastiveOutput: num_hard_negatives must be >= 1 or None, got {num_hard_negatives}")
        self.negative_samplers = get_samplers(negative_samplers)
        self.logits_temperature = float(logits_temperature)
        self.remove_accidental_hits = remove_accidental_hits
        self.num_hard_negatives = num_hard_negatives
        self.logq_correction = logq_correction
        self.loss_reduction = loss_reduction
        self._hard_negatives = HardNegativeMining(num_hard_negatives) if num_hard_negatives else None

    def logits_and_labels(
        self, query, positive, positive_ids, candidate_sampling_probability=None, candidate_encoder=None, training=False
    ):
        """The corrected, masked logits [B, C] and each row's label column [B].

        `candidate_sampling_probability` [B] is the probability of each row's
        positive (as in TFRS); when given, it corrects the positives' logits
        whatever `logq_correction` says.
        """
        query = ops.cast(query, "float32")
        positive = ops.cast(positive, "float32")
        batch = ops.shape(query)[0]
        blocks, masks = [], []
        in_batch, extra = self.draw_negatives(positive_ids, positive, candidate_encoder, training)

        positive_probability = candidate_sampling_probability
        if in_batch is not None:
            # The in-batch sampler's candidates are the positives of the whole
            # (global, under tf.distribute) batch; this replica's rows start
            # at `offset` among them.
            offset, _ = replicas.batch_offset(batch)
            labels = ops.arange(batch) + ops.cast(offset, "int32")
            scores = ops.matmul(query, ops.transpose(ops.cast(in_batch.embeddings, "float32")))
            if positive_probability is not None:
                positive_probability = replicas.all_gather(positive_probability)
            elif self._logq_weight:
                positive_probability = in_batch.probability
            probability_shape = (1, -1)
            same_id = _same_id(positive_ids, in_batch.ids)
            # The label column itself is the positive, never an accidental hit.
            own = ops.cast(ops.one_hot(labels, ops.shape(scores)[1]), "bool")
            masks.append(ops.logical_and(same_id, ops.logical_not(own)))
        else:
            labels = ops.zeros((batch,), dtype="int32")
            scores = ops.sum(query * positive, axis=1, keepdims=True)
            probability_shape = (-1, 1)
            masks.append(None)
            if positive_probability is None and self._logq_weight:
                positive_probability = self._probability_of_positives(positive_ids)
        blocks.append(self._corrected(scores, positive_probability, probability_shape))

        for negative in extra:
            scores = ops.matmul(query, ops.transpose(ops.cast(negative.embeddings, "float32")))
            probability = negative.probability if self._logq_weight else None
            blocks.append(self._corrected(scores, probability, (1, -1)))
            masks.append(_same_id(positive_ids, negative.ids))
            # Empty slots (id < 0) go whatever remove_accidental_hits says.
            blocks[-1] = blocks[-1] + MASK_VALUE * ops.cast(_empty_slots(positive_ids, negative.ids), "float32")

        if self.remove_accidental_hits:
            blocks = [b if m is None else b + MASK_VALUE * ops.cast(m, b.dtype) for b, m in zip(blocks, masks)]
        logits = blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=1)

        if self._hard_negatives is not None:
            one_hot = ops.one_hot(labels, ops.shape(logits)[1])
            logits, one_hot = self._hard_negatives(logits, one_hot)
            labels = ops.argmax(one_hot, axis=1)
        return logits, labels

    def _corrected(self, scores, probability, shape):
        scores = scores / self.logits_temperature
        if probability is None:
            return scores
        # A probability the caller gave (candidate_sampling_probability) is
        # taken at weight 1 when the output's own correction is off.
        weight = self._logq_weight or 1.0
        return _logq_corrected(scores, ops.reshape(ops.cast(probability, "float32"), shape), weight)

    def row_losses(self, query, positive, positive_ids, candidate_sampling_probability=None,
                   candidate_encoder=None, training=False):
        """Each row's cross-entropy [B], before sample weights and reduction."""
        logits, labels = self.logits_and_labels(
            query, positive, positive_ids, candidate_sampling_probability, candidate_encoder, training
        )
        return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    def get_config(self):
        return {
            **super().get_config(),
            "remove_accidental_hits": self.remove_accidental_hits,
            "num_hard_negatives": self.num_hard_negatives,
        }


@keras.saving.register_keras_serializable(package="schemaretrieval")
class BPROutput(SampledOutput):
    """A pairwise loss of each row's positive score against its negatives.

    The negatives are the samplers': with "in-batch", every other positive
    of the batch; other samplers' negatives are shared by every row. A
    negative with the row's own item id (a false negative) and empty slots
    (id < 0) are always left out, as is the row's own column.

    Args:
        negative_samplers: as for `ContrastiveOutput`.
        loss: a registered pairwise loss name ("bpr", "bpr-max", "top1",
            "top1-max", "logistic", "hinge") or a `PairwiseLoss`.
        logits_temperature: the scores are divided by it.
        logq_correction: subtract log(sampling probability) from the
            negatives' scores where the sampler reports one; a number
            weighs it, as in `ContrastiveOutput`.
        loss_reduction: "mean" or "sum" over the batch.

    Example:

    >>> import numpy as np
    >>> output = BPROutput(loss="bpr")
    >>> q = np.eye(2, dtype="float32"); c = np.eye(2, dtype="float32")
    >>> round(float(output(q, c, np.array([0, 1]))), 4)  # -log sigmoid(1 - 0)
    0.3133
    """

    def __init__(
        self,
        negative_samplers="in-batch",
        loss="bpr",
        logits_temperature: float = 1.0,
        logq_correction: bool | float = False,
        loss_reduction: str = "mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._check_options(logits_temperature, loss_reduction, logq_correction)
        self.negative_samplers = get_samplers(negative_samplers)
        self.loss = losses_lib.get_loss(loss)
        self.logits_temperature = float(logits_temperature)
        self.logq_correction = logq_correction
        self.loss_reduction = loss_reduction

    def scores_and_mask(self, query, positive, positive_ids, candidate_encoder=None, training=False):
        """Positive scores [B], negative scores [B, N] and their mask [B, N]."""
        query = ops.cast(query, "float32")
        positive = ops.cast(positive, "float32")
        batch = ops.shape(query)[0]
        in_batch, extra = self.draw_negatives(positive_ids, positive, candidate_encoder, training)
        positive_scores = ops.sum(query * positive, axis=1) / self.logits_temperature
        blocks, masks = [], []
        if in_batch is not None:
            # The positives of the whole (global) batch; see ContrastiveOutput.
            offset, _ = replicas.batch_offset(batch)
            scores = ops.matmul(query, ops.transpose(ops.cast(in_batch.embeddings, "float32")))
            own = ops.cast(ops.one_hot(ops.arange(batch) + ops.cast(offset, "int32"), ops.shape(scores)[1]), "bool")
            blocks.append(self._corrected(scores, in_batch.probability))
            masks.append(ops.logical_not(ops.logical_or(own, _same_id(positive_ids, in_batch.ids))))
        for negative in extra:
            scores = ops.matmul(query, ops.transpose(ops.cast(negative.embeddings, "float32")))
            blocks.append(self._corrected(scores, negative.probability))
            removed = ops.logical_or(_same_id(positive_ids, negative.ids), _empty_slots(positive_ids, negative.ids))
            masks.append(ops.logical_not(removed))
        negative_scores = blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=1)
        mask = masks[0] if len(masks) == 1 else ops.concatenate(masks, axis=1)
        return positive_scores, negative_scores, mask

    def _corrected(self, scores, probability):
        scores = scores / self.logits_temperature
        if probability is None or not self._logq_weight:
            return scores
        return _logq_corrected(scores, ops.reshape(ops.cast(probability, "float32"), (1, -1)), self._logq_weight)

    def row_losses(self, query, positive, positive_ids, candidate_sampling_probability=None,
                   candidate_encoder=None, training=False):
        """Each row's pairwise loss [B]. `candidate_sampling_probability` is
        accepted for the model's sake and unused: a pairwise loss compares
        the positive with each negative, not a softmax over candidates."""
        positive_scores, negative_scores, mask = self.scores_and_mask(
            query, positive, positive_ids, candidate_encoder, training
        )
        return self.loss(positive_scores, negative_scores, mask)

    def get_config(self):
        return {**super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Files saved before the registry hold {"name": ..., "config": ...}.
        loss = config["loss"]
        config["loss"] = (registry.lookup("loss", loss["name"]).from_config(loss["config"])
                          if isinstance(loss, dict) and "name" in loss and "class_name" not in loss
                          else losses_lib.get_loss(loss))
        return super().from_config(config)
