"""Pairwise losses, as Merlin Models' ``mm.losses``: each positive score against each negative's.

Every loss is a ``keras.losses.Loss`` with Merlin's interface:

* ``compute(positives_scores [B, 1], negatives_scores [B, N]) -> [B, N]``,
  the loss of each (positive, negative) pair;
* ``loss(y_true, y_pred, sample_weight=None, valid_negatives_mask=None)``
  on Merlin's form of a retrieval batch: ``y_pred`` [B, C] scores and
  ``y_true`` [B, C] with one 1 (the positive) per row; the other C - 1
  columns are the negatives. A row without a positive (top-k evaluation,
  where the positive fell out of the top k) has loss 0, and so does a pair
  whose ``valid_negatives_mask`` (the ``valid_negatives_mask`` attribute
  when not passed) is False (a false negative). The pairs' losses are then
  reduced by Keras's ``reduction`` ("auto" is Keras 3's
  "sum_over_batch_size": the mean over every pair of the batch);
* ``PairwiseLoss.parse(name_or_class_or_instance)``, and the registry
  (``sr.registry``, kind "loss") by Merlin's names.
* ``compile_loss(loss)``: what a model's ``compile(loss=)`` applies to that
  form of each batch in place of its output's loss (a pairwise loss,
  "categorical_crossentropy" or a Keras loss, through `logits_loss`).

With p the positive's score and n a negative's, s = softmax of the row's negatives:

| name | class | per pair |
| --- | --- | --- |
| "bpr" | `BPRLoss` | -log sigmoid(p - n) (Rendle et al. 2009) |
| "bpr-max" | `BPRmaxLoss` | -log(sigmoid(p - n) s) + reg_lambda s n^2 (Hidasi and Karatzoglou 2018, as Merlin writes it) |
| "top1" | `TOP1Loss` | sigmoid(n - p) + sigmoid(n^2) (Hidasi et al. 2016) |
| "top1_v2" | `TOP1v2Loss` | mean_j [sigmoid(n_j - p) + sigmoid(n_j^2)] - sigmoid(p^2) / N, the same for each pair of a row |
| "top1-max" | `TOP1maxLoss` | (sigmoid(n - p) + sigmoid(n^2)) s |
| "logistic" | `LogisticLoss` | log(1 + exp(n - p)) |
| "hinge" | `HingeLoss` | max(0, margin + n - p), margin 1 in Merlin |

`BPROutput` uses them per row: the mean of ``compute`` over the row's
valid negatives (`PairwiseLoss.row_losses`).
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from schemaretrieval import registry
from schemaretrieval.arguments import number
from schemaretrieval.retrieval.logits_loss import logits_loss
from schemaretrieval.retrieval.outputs.base import is_candidate
from schemaretrieval.retrieval.softmax import softmax_cross_entropy

__all__ = [
    "PairwiseLoss",
    "BPRLoss",
    "BPRmaxLoss",
    "TOP1Loss",
    "TOP1v2Loss",
    "TOP1maxLoss",
    "LogisticLoss",
    "HingeLoss",
    "get_loss",
    "compile_loss",
]

# Merlin's epsilon under a log (add_epsilon_to_zeros).
_EPSILON = 1e-24
# The score `row_losses` gives masked negatives before `compute`: low enough to
# take no softmax weight, small enough that its square stays finite.
MASKED_SCORE = -1e4
_REDUCTIONS = ("auto", "sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _log(x):
    return ops.log(ops.where(ops.equal(x, 0.0), _EPSILON, x))


@registry.register("loss")
class PairwiseLoss(keras.losses.Loss):
    """The base of the pairwise losses (see the module docstring): subclass it and define `compute`.

    Args:
        reduction: Keras's, over the [B, N] pair losses; "auto" (Merlin's
            default) is "sum_over_batch_size", the mean over the pairs.
        name: the loss's name (default: the class name in snake case).

    A loss of one's own registers with ``@sr.registry.register("loss", "<name>")``:
    it is then found by that name and a saved model that uses it loads.

    >>> @registry.register("loss", "squared-margin")
    ... class SquaredMargin(PairwiseLoss):
    ...     def compute(self, positives_scores, negatives_scores):
    ...         return ops.square(ops.relu(1.0 + negatives_scores - positives_scores))
    >>> loss = PairwiseLoss.parse("squared-margin")
    >>> float(loss(np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, 1.5, 2.5]])))  # ((0.5)^2 + (1.5)^2) / 2
    1.25
    """

    def __init__(self, reduction="auto", name=None, **kwargs):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.reduction_given = reduction
        name = name or re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(self).__name__).lower()
        super().__init__(name=name, reduction="sum_over_batch_size" if reduction == "auto" else reduction, **kwargs)
        self._valid_negatives_mask = None

    # -- Merlin's interface --------------------------------------------------------------

    def compute(self, positives_scores, negatives_scores):
        """The loss of each pair [B, N], from the positives' scores [B, 1] and the negatives' [B, N]."""
        raise NotImplementedError(f"{type(self).__name__} must define compute(positives_scores, negatives_scores)")

    @property
    def valid_negatives_mask(self):
        """[B, N] (or [B, C], the positive's column included) booleans, False for a false negative:
        its pair loss is set to 0. Set by ``__call__(..., valid_negatives_mask=)``."""
        return self._valid_negatives_mask

    @valid_negatives_mask.setter
    def valid_negatives_mask(self, value):
        self._valid_negatives_mask = value

    @classmethod
    def parse(cls, class_or_str):
        """A loss from a registered name, a loss class or an instance (Merlin's ``parse``).

        >>> type(PairwiseLoss.parse("bpr-max")).__name__, type(PairwiseLoss.parse(TOP1Loss)).__name__
        ('BPRmaxLoss', 'TOP1Loss')
        """
        if isinstance(class_or_str, PairwiseLoss):
            return class_or_str
        if isinstance(class_or_str, type) and issubclass(class_or_str, PairwiseLoss):
            return class_or_str()
        if isinstance(class_or_str, (str, dict)):
            loss = registry.get("loss", class_or_str)
            if isinstance(loss, PairwiseLoss):
                return loss
        raise TypeError(f"expected a pairwise loss name ({', '.join(registry.names('loss'))}), a PairwiseLoss class "
                        f"or instance, got {class_or_str!r}")

    def __call__(self, y_true, y_pred, sample_weight=None, valid_negatives_mask=None):
        if valid_negatives_mask is not None:
            self.valid_negatives_mask = valid_negatives_mask
        if sample_weight is not None:
            # A row's weight [B] (a table's weight column, Keras's sample_weight) weighs each of its
            # pairs [B, N]: Keras's reduction multiplies them without broadcasting a [B] vector.
            sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        """The pair losses [B, C - 1] of a batch in Merlin's form (see the module docstring)."""
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_true.shape.rank != 2 or y_pred.shape.rank != 2:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred must be [batch, scores], got "
                             f"{y_true.shape} and {y_pred.shape}")
        positives, negatives, has_positive, keep = self._split(y_true, y_pred)
        # A downscored false negative (an output's MASK_VALUE) is no candidate: its pairs count 0, and
        # `compute` reads it at MASKED_SCORE, as `row_losses` does (its square overflowed bpr-max to NaN).
        candidate = is_candidate(negatives)
        loss = self.compute(positives, tf.where(candidate, negatives, tf.cast(MASKED_SCORE, negatives.dtype)))
        loss = loss * tf.cast(has_positive, loss.dtype)[:, None] * tf.cast(candidate, loss.dtype)
        mask = self.valid_negatives_mask
        if mask is not None:
            mask = tf.convert_to_tensor(mask)
            if mask.shape.rank == 2 and mask.shape[1] is not None and mask.shape[1] == y_pred.shape[1]:
                mask = tf.reshape(tf.boolean_mask(mask, keep), tf.shape(negatives))
            loss = loss * tf.cast(mask, loss.dtype)
        return loss

    @staticmethod
    def _split(y_true, y_pred):
        """(positives [B, 1], negatives [B, C - 1], rows with a positive [B], kept columns [B, C])."""
        has_positive = tf.reduce_sum(y_true, axis=1) > 0
        tf.debugging.assert_less_equal(tf.reduce_max(tf.reduce_sum(y_true, axis=1)), tf.constant(1.0, y_true.dtype),
                                       message="a pairwise loss takes at most one positive per row")
        # A row without a positive takes its first column as one, then loses its loss.
        first = tf.one_hot(tf.zeros(tf.shape(y_true)[:1], tf.int32), tf.shape(y_true)[1], dtype=y_true.dtype)
        y_true = tf.where(has_positive[:, None], y_true, first)
        positives = tf.reduce_sum(y_true * y_pred, axis=1, keepdims=True)
        keep = tf.equal(y_true, 0.0)
        negatives = tf.reshape(tf.boolean_mask(y_pred, keep), [tf.shape(y_pred)[0], tf.shape(y_pred)[1] - 1])
        return positives, negatives, has_positive, keep

    # -- per row, for BPROutput -------------------------------------------------------------

    def row_losses(self, positives_scores, negatives_scores, mask=None):
        """Each row's loss [B]: the mean of `compute` over its valid negatives (``mask`` [B, N]);
        0 for a row without one. Masked negatives score `MASKED_SCORE` in `compute`, so that the
        softmax of the -max losses gives them no weight.

        >>> BPRLoss().row_losses(np.array([1.0]), np.array([[1.0, -3.0]]), np.array([[True, False]])).numpy().round(4)
        array([0.6931], dtype=float32)
        """
        negatives = ops.cast(negatives_scores, "float32")
        positives = ops.reshape(ops.cast(positives_scores, "float32"), (-1, 1))
        valid = ops.ones_like(negatives) if mask is None else ops.cast(mask, "float32")
        pairs = self.compute(positives, ops.where(valid > 0, negatives, MASKED_SCORE))
        return ops.sum(pairs * valid, axis=1) / ops.maximum(ops.sum(valid, axis=1), 1.0)

    def get_config(self):
        return {"reduction": self.reduction_given, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("loss", "bpr")
class BPRLoss(PairwiseLoss):
    """The Bayesian Personalised Ranking loss: -log sigmoid(p - n) per pair (Rendle et al. 2009).

    >>> BPRLoss().compute(np.array([[1.0]]), np.array([[1.0, 3.0]])).numpy().round(4).tolist()  # log 2, log(1 + e^2)
    [[0.6931, 2.1269]]
    """

    def compute(self, positives_scores, negatives_scores):
        return -_log(ops.sigmoid(positives_scores - negatives_scores))


@registry.register("loss", "bpr-max")
class BPRmaxLoss(PairwiseLoss):
    """BPR-max as Merlin computes it per pair: -log(sigmoid(p - n) s) + reg_lambda s n^2, s the softmax
    of the row's negatives.

    Args:
        reg_lambda: the weight of the score regularisation (Merlin's name and default, 1.0).

    >>> BPRmaxLoss(reg_lambda=0.5).compute(np.array([[0.0]]), np.array([[0.0, 0.0]])).numpy().round(4).tolist()
    [[1.3863, 1.3863]]
    """

    def __init__(self, reg_lambda: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.reg_lambda = number(reg_lambda, "BPRmaxLoss", "reg_lambda", at_least=0)

    def compute(self, positives_scores, negatives_scores):
        weights = ops.softmax(negatives_scores, axis=-1)
        regularization = ops.square(negatives_scores) * weights * self.reg_lambda
        return -_log(ops.sigmoid(positives_scores - negatives_scores) * weights) + regularization

    def get_config(self):
        return {**super().get_config(), "reg_lambda": self.reg_lambda}


@registry.register("loss", "top1")
class TOP1Loss(PairwiseLoss):
    """TOP1: sigmoid(n - p) + sigmoid(n^2) per pair (Hidasi et al. 2016).

    >>> TOP1Loss().compute(np.array([[0.0]]), np.array([[0.0]])).numpy().tolist()  # sigmoid(0) + sigmoid(0)
    [[1.0]]
    """

    def compute(self, positives_scores, negatives_scores):
        return ops.sigmoid(negatives_scores - positives_scores) + ops.sigmoid(ops.square(negatives_scores))


@registry.register("loss", "top1_v2")
class TOP1v2Loss(PairwiseLoss):
    """TOP1 as GRU4Rec computes it: the row's mean of sigmoid(n - p) + sigmoid(n^2), less
    sigmoid(p^2) / N, given to each of the row's pairs (Merlin's "top1_v2").

    >>> TOP1v2Loss().compute(np.array([[0.0]]), np.array([[0.0, 0.0]])).numpy().tolist()  # 1 - 0.5 / 2
    [[0.75, 0.75]]
    """

    def compute(self, positives_scores, negatives_scores):
        per_pair = ops.sigmoid(negatives_scores - positives_scores) + ops.sigmoid(ops.square(negatives_scores))
        count = ops.cast(ops.shape(negatives_scores)[1], per_pair.dtype)
        row = ops.mean(per_pair, axis=-1, keepdims=True) - ops.sigmoid(ops.square(positives_scores)) / count
        return ops.broadcast_to(row, ops.shape(negatives_scores))


@registry.register("loss", "top1-max")
class TOP1maxLoss(PairwiseLoss):
    """TOP1-max per pair: (sigmoid(n - p) + sigmoid(n^2)) s, s the softmax of the row's negatives.

    >>> TOP1maxLoss().compute(np.array([[0.0]]), np.array([[0.0, 0.0]])).numpy().tolist()  # 0.5 * 1 each
    [[0.5, 0.5]]
    """

    def compute(self, positives_scores, negatives_scores):
        weights = ops.softmax(negatives_scores, axis=-1)
        return (ops.sigmoid(negatives_scores - positives_scores) + ops.sigmoid(ops.square(negatives_scores))) * weights


@registry.register("loss", "logistic")
class LogisticLoss(PairwiseLoss):
    """The pairwise log loss log(1 + exp(n - p)) (Sun et al. 2020), stable for large differences.

    >>> LogisticLoss().compute(np.array([[2.0]]), np.array([[2.0, 1002.0]])).numpy().round(4).tolist()
    [[0.6931, 1000.0]]
    """

    def compute(self, positives_scores, negatives_scores):
        return ops.softplus(negatives_scores - positives_scores)


@registry.register("loss", "hinge")
class HingeLoss(PairwiseLoss):
    """The pairwise hinge max(0, margin + n - p) (Sun et al. 2020).

    Args:
        margin: 1.0 in Merlin, which has no argument for it (an option of this library).

    >>> HingeLoss(margin=0.5).compute(np.array([[1.0]]), np.array([[0.8, 0.0]])).numpy().round(4).tolist()
    [[0.3, 0.0]]
    """

    def __init__(self, margin: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.margin = number(margin, "HingeLoss", "margin", above=0)

    def compute(self, positives_scores, negatives_scores):
        return ops.relu(self.margin + negatives_scores - positives_scores)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def get_loss(spec) -> PairwiseLoss:
    """A pairwise loss from a registered name, a saved config, a class or an instance (`PairwiseLoss.parse`).

    >>> type(get_loss("bpr-max")).__name__
    'BPRmaxLoss'
    """
    return PairwiseLoss.parse(spec)


def compile_loss(loss):
    """A model's ``compile(loss=)`` as a function of (one-hot targets, logits, sample_weight),
    or None for the output's own loss, as Merlin's ``compile(loss=)`` takes it: a pairwise loss
    (a name, class or instance), "categorical_crossentropy" or any Keras loss.

    >>> targets = np.array([[1.0, 0.0, 0.0]], "float32")
    >>> logits = np.array([[2.0, 0.0, 0.0]], "float32")
    >>> round(float(compile_loss("categorical_crossentropy")(targets, logits, None)), 4)  # -log(e^2 / (e^2 + 2))
    0.2395
    >>> round(float(compile_loss("bpr")(targets, logits, None)), 4)  # -log sigmoid(2 - 0)
    0.1269
    """
    if loss is None:
        return None
    if loss == "categorical_crossentropy":
        return _mean_cross_entropy
    if isinstance(loss, (str, type, PairwiseLoss)):
        try:
            loss = PairwiseLoss.parse(loss)
        except (TypeError, ValueError) as pairwise:
            try:
                loss = keras.losses.get(loss)
            except ValueError:  # neither ours nor Keras's: the registry's did-you-mean says what is
                raise ValueError(f"compile: loss {loss!r} is neither a pairwise loss nor a Keras loss: "
                                 f"{pairwise}") from None
    if not callable(loss):
        raise ValueError(f"compile: loss must be None, a pairwise loss name ({', '.join(registry.names('loss'))}), "
                         f"'categorical_crossentropy' or a Keras loss, got {loss!r}")
    return logits_loss(loss)


def _mean_cross_entropy(targets, logits, sample_weight):
    """``keras.losses.CategoricalCrossentropy(from_logits=True)`` of one-hot targets (a weighted
    sum over the batch's size), by `softmax_cross_entropy` from each row's label column rather
    than TensorFlow's dense kernel (docs/training.md)."""
    losses = softmax_cross_entropy(ops.argmax(targets, axis=1), ops.cast(logits, "float32"), sample_weight)
    return ops.sum(losses) / ops.cast(ops.shape(losses)[0], "float32")
