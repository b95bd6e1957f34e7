"""`ContrastiveOutput`: softmax cross-entropy over a batch's positives and
negatives, with Merlin Models' arguments; it owns the loss options
(temperature, false negatives, logQ correction, hard negatives)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras_rs.layers import HardNegativeMining
from merlin.schema import ColumnSchema, Schema

from schemaretrieval import replicas
from schemaretrieval import schema as schema_lib
from schemaretrieval.arguments import flag, integer, number
from schemaretrieval.retrieval.outputs.base import (
    MASK_VALUE,
    Prediction,
    SampledOutput,
    empty_slots,
    logq_corrected,
    same_id,
)
from schemaretrieval.retrieval.samplers import CandidateSampler, get_samplers
from schemaretrieval.retrieval.softmax import softmax_cross_entropy

__all__ = ["ContrastiveOutput", "DEFAULT_DOWNSCORE_FALSE_NEGATIVES"]

# Merlin's default: negatives with the positive's own item id leave the softmax
# (docs/migrating.md: measured against the alternative).
DEFAULT_DOWNSCORE_FALSE_NEGATIVES = True


@keras.saving.register_keras_serializable(package="schemaretrieval")
class ContrastiveOutput(SampledOutput):
    """Softmax cross-entropy of each query against its positive and negatives, with
    Merlin Models' arguments in Merlin's order.

    With the in-batch sampler, the logits are `query @ positives.T` and row
    i's label is column i, as in TFRS's Retrieval task; negatives of other
    samplers are appended as extra columns, negatives for every row. Without
    in-batch negatives, column 0 holds each row's own positive.

    The order of operations is Merlin's: the dot products, the logQ
    correction, false negatives set to `false_negative_score`, `post`, then
    division by `logits_temperature`; then (this library's) the hardest
    `num_hard_negatives`, then the cross-entropy.

    Args:
        to_call: the item-id column, as a one-column Schema or a
            ColumnSchema (Merlin's ``schema.select_by_tag(Tags.ITEM_ID)``),
            or None: the model's candidate-id column. Merlin's other forms
            (``DotProduct()``, an ``EmbeddingTable`` for weight tying) are a
            NotImplementedError.
        negative_samplers: a sampler name ("in-batch", "uniform",
            "popularity", "cross-batch"), a `CandidateSampler` or a list of
            them whose negatives are concatenated (mixed negatives).
        target_name: the column holding each row's positive item id (default
            `to_call`'s name, else the model's candidate-id column).
        pre: a layer called on ``{"query": ..., "candidate": ...}`` (the
            towers' outputs) before the scores; it returns the same dict.
        post: a layer called on the `Prediction` (logits before the
            temperature, one-hot targets, the negatives' ids) after the
            false negatives are set; it returns a `Prediction` or the logits.
        logits_temperature: the logits are divided by it.
        name: the layer's name.
        default_loss: "categorical_crossentropy" (Merlin's and the only one
            here: a pairwise loss is `BPROutput(loss=...)`).
        default_metrics_fn: a function returning the metrics a model
            compiled without ``metrics=`` reports (Merlin's default reports
            recall, MRR, NDCG, MAP and precision at 10; here None: none).
        downscore_false_negatives: a negative with the row's own item id
            (an in-batch duplicate of a popular item) gets
            `false_negative_score`, which takes it out of the softmax.
        false_negative_score: that score (Merlin's: the float32 minimum / 100).
        query_name, candidate_name: Merlin's names of the towers' outputs;
            only "query" and "candidate".
        store_negative_ids: fill `Prediction.negative_candidate_ids` with the
            negatives' item ids, for `post` and `predictions`.
        logq_sampling_correction: subtract log(sampling probability) from
            the score of every candidate whose sampler reports one (Yi et al.
            2019): True as Merlin, before the temperature, ``(score - log q)
            / T``; a number w >= 0 (this library's) subtracts ``w log q``
            after it: ``score / T - w log q``. Without in-batch negatives the
            positive's column is corrected too (`probability_of`).
        num_hard_negatives: keep only this many highest-scoring negatives
            per row (TFRS's; not in Merlin).
        loss_reduction: "mean" (Merlin's: the sum of weighted losses / batch
            size) or "sum" (TFRS's).

    Example:

    >>> q = np.eye(2, dtype="float32"); c = np.eye(2, dtype="float32")
    >>> round(float(ContrastiveOutput(None, "in-batch")(q, c, np.array([0, 1]))), 4)  # log(1 + e^-1)
    0.3133
    >>> round(float(ContrastiveOutput(None, "in-batch")(q, c, np.array([5, 5]))), 4)  # the same item: log(1)
    0.0
    """

    def __init__(
        self,
        to_call=None,
        negative_samplers="in-batch",
        target_name: str | None = None,
        pre=None,
        post=None,
        logits_temperature: float = 1.0,
        name: str | None = None,
        default_loss="categorical_crossentropy",
        default_metrics_fn=None,
        downscore_false_negatives: bool = DEFAULT_DOWNSCORE_FALSE_NEGATIVES,
        false_negative_score: float = MASK_VALUE,
        query_name: str = "query",
        candidate_name: str = "candidate",
        store_negative_ids: bool = False,
        logq_sampling_correction: bool | float = False,
        num_hard_negatives: int | None = None,
        loss_reduction: str = "mean",
        **kwargs,
    ):
        # Merlin's keyword forms: schema= the target column (for a to_call that names none), target= its name
        schema, target = kwargs.pop("schema", None), kwargs.pop("target", None)
        super().__init__(name=name, **kwargs)
        self._check_options(logits_temperature, loss_reduction, logq_sampling_correction)
        if schema is not None:
            if to_call is not None:
                raise ValueError("ContrastiveOutput: give the item-id column as to_call or as schema=, not both")
            to_call = schema
        if target is not None:
            if target_name is not None and target_name != target:
                raise ValueError(f"ContrastiveOutput: target={target!r} and target_name={target_name!r} differ; "
                                 "give one")
            target_name = target
        if num_hard_negatives is not None:
            num_hard_negatives = integer(num_hard_negatives, "ContrastiveOutput", "num_hard_negatives")
        if isinstance(to_call, Schema):
            if len(to_call.column_names) != 1:
                raise ValueError(f"ContrastiveOutput: to_call must be a one-column schema (the item id), got "
                                 f"{to_call.column_names}")
            to_call = to_call[to_call.column_names[0]]
        if isinstance(to_call, (str, list, tuple, CandidateSampler)):
            raise TypeError(f"ContrastiveOutput: the first argument (Merlin's to_call) is the item-id column or None; "
                            f"give samplers as negative_samplers= (the second), got {to_call!r}")
        if to_call is not None and not isinstance(to_call, ColumnSchema):
            raise NotImplementedError(
                f"ContrastiveOutput: to_call={type(to_call).__name__} is not supported; give the item-id column "
                "(schema.select_by_tag(Tags.ITEM_ID)) or None: the scores are always the towers' dot product")
        if default_loss != "categorical_crossentropy":
            raise NotImplementedError(f"ContrastiveOutput: default_loss={default_loss!r} is not supported (only "
                                      "'categorical_crossentropy'); for a pairwise loss use BPROutput(loss=...)")
        if default_metrics_fn is not None and not callable(default_metrics_fn):
            raise TypeError(f"ContrastiveOutput: default_metrics_fn must be a callable or None, got "
                            f"{type(default_metrics_fn).__name__}")
        if (query_name, candidate_name) != ("query", "candidate"):
            raise NotImplementedError(f"ContrastiveOutput: query_name={query_name!r}, candidate_name="
                                      f"{candidate_name!r} are not supported (only 'query' and 'candidate')")
        number(false_negative_score, "ContrastiveOutput", "false_negative_score")
        for arg, value in (("downscore_false_negatives", downscore_false_negatives),
                           ("store_negative_ids", store_negative_ids)):
            flag(value, "ContrastiveOutput", arg)
        if target_name is not None and not isinstance(target_name, str):
            raise TypeError(f"ContrastiveOutput: target_name must be a column name or None, got {target_name!r}")
        for arg, layer in (("pre", pre), ("post", post)):
            if layer is not None and not callable(layer):
                raise TypeError(f"ContrastiveOutput: {arg} must be a Keras layer or callable, "
                                f"got {type(layer).__name__}")
        self.negative_samplers = get_samplers(negative_samplers)
        self.col_schema = to_call
        self.target_name = target_name or (to_call.name if to_call is not None else None)
        self.pre = pre
        self.post = post
        self.logits_temperature = float(logits_temperature)
        self.default_loss = default_loss
        self.default_metrics_fn = default_metrics_fn
        self.downscore_false_negatives = bool(downscore_false_negatives)
        self.false_negative_score = float(false_negative_score)
        self.store_negative_ids = bool(store_negative_ids)
        self.logq_sampling_correction = logq_sampling_correction
        self.num_hard_negatives = num_hard_negatives
        self.loss_reduction = loss_reduction
        self._hard_negatives = HardNegativeMining(num_hard_negatives) if num_hard_negatives else None

    def predictions(self, query, positive, positive_ids, candidate_sampling_probability=None,
                    candidate_encoder=None, training=False) -> Prediction:
        """Merlin's `Prediction` of a batch: the logits [B, C] (temperature applied, hard negatives
        kept), the one-hot targets [B, C], and the negatives' ids with `store_negative_ids`.

        `candidate_sampling_probability` [B] is the probability of each row's
        positive (as in TFRS); when given, it corrects the positives' logits
        whatever `logq_sampling_correction` says (at weight 1, after the temperature).
        """
        return self._labelled_predictions(query, positive, positive_ids, candidate_sampling_probability,
                                          candidate_encoder, training)[0]

    def _labelled_predictions(self, query, positive, positive_ids, candidate_sampling_probability,
                              candidate_encoder, training):
        """(`Prediction`, each row's label column [B]): the loss reads the labels
        as they are, not back from the one-hot targets (a pass over [B, C])."""
        if self.pre is not None:
            towers = self.pre({"query": query, "candidate": positive})
            query, positive = towers["query"], towers["candidate"]
        query = ops.cast(query, "float32")
        positive = ops.cast(positive, "float32")
        batch = ops.shape(query)[0]
        blocks, masks, ids = [], [], []
        in_batch, extra = self.draw_negatives(positive_ids, positive, candidate_encoder, training)
        # Before the temperature: Merlin's True subtracts log q there; a weight w after it is w * T here.
        weight = self._logq_weight * self.logits_temperature

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
            elif weight:
                positive_probability = in_batch.probability
            shape = (1, -1)
            # The label column itself is the positive, never a false negative.
            other = ops.not_equal(ops.expand_dims(labels, 1), ops.expand_dims(ops.arange(ops.shape(scores)[1]), 0))
            masks.append(ops.logical_and(same_id(positive_ids, in_batch.ids), other))
            ids.append(in_batch.ids)
        else:
            labels = ops.zeros((batch,), dtype="int32")
            scores = ops.sum(query * positive, axis=1, keepdims=True)
            shape = (-1, 1)
            masks.append(None)
            if positive_probability is None and weight:
                positive_probability = self._probability_of_positives(positive_ids)
        given = candidate_sampling_probability is not None and not weight
        blocks.append(self._corrected(scores, positive_probability, shape,
                                      self.logits_temperature if given else weight))

        for negative in extra:
            scores = ops.matmul(query, ops.transpose(ops.cast(negative.embeddings, "float32")))
            blocks.append(self._corrected(scores, negative.probability if weight else None, (1, -1), weight))
            masks.append(same_id(positive_ids, negative.ids))
            ids.append(negative.ids)
            # Empty slots (id < 0) go whatever downscore_false_negatives says.
            blocks[-1] = blocks[-1] + MASK_VALUE * ops.cast(empty_slots(positive_ids, negative.ids), "float32")

        if self.downscore_false_negatives:
            blocks = [b if m is None else ops.where(m, ops.cast(self.false_negative_score, b.dtype), b)
                      for b, m in zip(blocks, masks)]
        logits = blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=1)
        targets = ops.one_hot(labels, ops.shape(logits)[1])
        negative_ids = None
        if self.store_negative_ids and ids:
            negative_ids = ids[0] if len(ids) == 1 else ops.concatenate([ops.cast(i, "int64") for i in ids], axis=0)
        if self.post is not None:
            out = self.post(Prediction(logits, targets, negative_ids))
            logits = out.outputs if isinstance(out, Prediction) else out
        if self.logits_temperature != 1.0 or self.post is not None:
            # Far below any real logit, scaled values (and a post layer's) stay finite, not -inf,
            # for the gradients. Without either every logit is finite already (a pass saved).
            logits = ops.maximum(logits / self.logits_temperature, MASK_VALUE)

        if self._hard_negatives is not None:
            logits, targets = self._hard_negatives(logits, targets)
            labels = ops.argmax(targets, axis=1)  # [B, 1 + num_hard_negatives]: a small pass
        return Prediction(logits, targets, negative_ids), labels

    def logits_and_labels(self, query, positive, positive_ids, candidate_sampling_probability=None,
                          candidate_encoder=None, training=False):
        """The corrected, masked logits [B, C] and each row's label column [B] (`predictions`)."""
        prediction, labels = self._labelled_predictions(query, positive, positive_ids, candidate_sampling_probability,
                                                        candidate_encoder, training)
        return prediction.outputs, labels

    def _corrected(self, scores, probability, shape, weight):
        if probability is None or not weight:
            return scores
        return logq_corrected(scores, ops.reshape(ops.cast(probability, "float32"), shape), weight)

    def row_losses_and_prediction(self, query, positive, positive_ids, candidate_sampling_probability=None,
                                  candidate_encoder=None, training=False):
        """Each row's cross-entropy [B], before sample weights and reduction, and the `Prediction`."""
        prediction, labels = self._labelled_predictions(query, positive, positive_ids, candidate_sampling_probability,
                                                        candidate_encoder, training)
        return softmax_cross_entropy(labels, prediction.outputs), prediction

    def get_config(self):
        config = {
            **super().get_config(),
            "to_call": None if self.col_schema is None else schema_lib.schema_to_dict(Schema([self.col_schema])),
            "target_name": self.target_name,
            "downscore_false_negatives": self.downscore_false_negatives,
            "false_negative_score": self.false_negative_score,
            "store_negative_ids": self.store_negative_ids,
            "num_hard_negatives": self.num_hard_negatives,
        }
        for key in ("pre", "post"):
            if getattr(self, key) is not None:
                config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "remove_accidental_hits" in config:  # saved before the Merlin names
            config["downscore_false_negatives"] = config.pop("remove_accidental_hits")
        if config.get("to_call") is not None:
            config["to_call"] = schema_lib.schema_from_dict(config["to_call"])
        for key in ("pre", "post"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return super().from_config(config)
