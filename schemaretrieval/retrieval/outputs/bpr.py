"""`BPROutput`: a pairwise loss (`schemaretrieval.retrieval.losses`) of each
row's positive score against its negatives."""

from __future__ import annotations

import keras
from keras import ops

from schemaretrieval import registry, replicas
from schemaretrieval.retrieval import losses as losses_lib
from schemaretrieval.retrieval.outputs.base import (
    MASK_VALUE,
    Prediction,
    SampledOutput,
    empty_slots,
    logq_corrected,
    same_id,
)
from schemaretrieval.retrieval.samplers import get_samplers

__all__ = ["BPROutput"]


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
            "top1_v2", "top1-max", "logistic", "hinge") or a `PairwiseLoss`;
            each row's loss is the mean of its ``compute`` over the row's
            valid negatives (`PairwiseLoss.row_losses`).
        logits_temperature: the scores are divided by it.
        logq_sampling_correction: subtract log(sampling probability) from
            the negatives' scores where the sampler reports one: True or a
            weight, as in `ContrastiveOutput`.
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
        logq_sampling_correction: bool | float = False,
        loss_reduction: str = "mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._check_options(logits_temperature, loss_reduction, logq_sampling_correction)
        self.negative_samplers = get_samplers(negative_samplers)
        self.loss = losses_lib.get_loss(loss)
        self.logits_temperature = float(logits_temperature)
        self.logq_sampling_correction = logq_sampling_correction
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
            masks.append(ops.logical_not(ops.logical_or(own, same_id(positive_ids, in_batch.ids))))
        for negative in extra:
            scores = ops.matmul(query, ops.transpose(ops.cast(negative.embeddings, "float32")))
            blocks.append(self._corrected(scores, negative.probability))
            removed = ops.logical_or(same_id(positive_ids, negative.ids), empty_slots(positive_ids, negative.ids))
            masks.append(ops.logical_not(removed))
        negative_scores = blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=1)
        mask = masks[0] if len(masks) == 1 else ops.concatenate(masks, axis=1)
        return positive_scores, negative_scores, mask

    def _corrected(self, scores, probability):
        scores = scores / self.logits_temperature
        if probability is None or not self._logq_weight:
            return scores
        return logq_corrected(scores, ops.reshape(ops.cast(probability, "float32"), (1, -1)), self._logq_weight)

    def row_losses_and_prediction(self, query, positive, positive_ids, candidate_sampling_probability=None,
                                  candidate_encoder=None, training=False):
        """Each row's pairwise loss [B], and the `Prediction`: the positive's score in column 0, the
        negatives' after it (left-out ones at `MASK_VALUE`). `candidate_sampling_probability` is
        accepted for the model's sake and unused: a pairwise loss compares the positive with each
        negative, not a softmax over candidates."""
        positive_scores, negative_scores, mask = self.scores_and_mask(
            query, positive, positive_ids, candidate_encoder, training
        )
        logits = ops.concatenate([ops.expand_dims(positive_scores, 1),
                                  ops.where(mask, negative_scores, MASK_VALUE)], axis=1)
        targets = ops.one_hot(ops.zeros_like(positive_scores, dtype="int32"), ops.shape(logits)[1])
        return self.loss.row_losses(positive_scores, negative_scores, mask), Prediction(logits, targets)

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
