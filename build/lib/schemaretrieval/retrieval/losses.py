"""Pairwise losses: each row's positive score against its negatives' scores.

Every loss has `compute(positive_scores [B], negative_scores [B, N],
mask [B, N]) -> [B]`: the loss of each row, over the negatives whose mask
is True (a false negative, i.e. the row's own item drawn as a negative, is
masked out by the output). A row with no valid negative has loss 0.
Registered by name (``sr.registry``, kind "loss"): "bpr", "bpr-max",
"top1", "top1-max", "logistic", "hinge".

With d_j = positive - negative_j, over the valid negatives j of a row:

| name | per row |
| --- | --- |
| bpr | mean_j -log sigmoid(d_j) (Rendle et al. 2009) |
| logistic | mean_j log(1 + exp(-d_j)), keras-rs `PairwiseLogisticLoss`; equal to bpr in value, kept under Merlin's name |
| hinge | mean_j max(0, margin - d_j), keras-rs `PairwiseHingeLoss` |
| top1 | mean_j sigmoid(-d_j) + sigmoid(negative_j^2) (Hidasi et al. 2016) |
| bpr-max | -log sum_j s_j sigmoid(d_j) + reg * sum_j s_j negative_j^2, s = softmax of the negatives (Hidasi and Karatzas 2018) |
| top1-max | sum_j s_j (sigmoid(-d_j) + sigmoid(negative_j^2)) |
"""

from __future__ import annotations

import keras_rs
from keras import ops

from schemaretrieval import registry

# Softmax weight of masked negatives (the -max losses): a large finite negative.
_MASKED_LOGIT = -1e9


def _prepare(positive_scores, negative_scores, mask):
    negative = ops.cast(negative_scores, "float32")
    positive = ops.reshape(ops.cast(positive_scores, "float32"), (-1, 1))
    if mask is None:
        valid = ops.ones_like(negative)
    else:
        valid = ops.cast(mask, "float32")
    # Masked scores become 0 so that they cannot overflow into NaN.
    negative = negative * valid
    return positive, negative, valid


def _mean(values, valid):
    count = ops.sum(valid, axis=1)
    return ops.sum(values * valid, axis=1) / ops.maximum(count, 1.0)


def _softmax(negative, valid):
    weights = ops.softmax(ops.where(valid > 0, negative, _MASKED_LOGIT), axis=1)
    return weights * valid


@registry.register("loss")
class PairwiseLoss:
    """The interface: `compute(positive_scores, negative_scores, mask) -> [B]`.

    A loss of your own subclasses it; registered with
    ``@sr.registry.register("loss", "<name>")``, it is found by that name and
    a saved model that uses it loads. For example BPR on each row's
    highest-scoring valid negative only:

    >>> import numpy as np
    >>> from keras import ops
    >>> @registry.register("loss", "hardest-bpr")
    ... class HardestBPR(PairwiseLoss):
    ...     def compute(self, positive_scores, negative_scores, mask=None):
    ...         valid = ops.ones_like(negative_scores) if mask is None else ops.cast(mask, "float32")
    ...         hardest = ops.max(ops.where(valid > 0, negative_scores, -1e9), axis=1)
    ...         return ops.softplus(hardest - positive_scores)
    >>> loss = get_loss("hardest-bpr").compute(np.array([1.0]), np.array([[1.0, 3.0]]), np.array([[True, False]]))
    >>> round(float(loss[0]), 4)  # -log sigmoid(1 - 1): the masked 3.0 is not the hardest
    0.6931
    """

    def compute(self, positive_scores, negative_scores, mask=None):
        raise NotImplementedError

    def __call__(self, positive_scores, negative_scores, mask=None):
        return self.compute(positive_scores, negative_scores, mask)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"


@registry.register("loss", "bpr")
class BPRLoss(PairwiseLoss):
    """mean_j -log sigmoid(positive - negative_j).

    Example:

    >>> import numpy as np
    >>> loss = BPRLoss().compute(np.array([1.0]), np.array([[1.0, -3.0]]), np.array([[True, False]]))
    >>> round(float(loss[0]), 4)  # -log sigmoid(0); the masked negative is left out
    0.6931
    """

    def compute(self, positive_scores, negative_scores, mask=None):
        positive, negative, valid = _prepare(positive_scores, negative_scores, mask)
        return _mean(ops.softplus(negative - positive), valid)


class _KerasRSLoss(PairwiseLoss):
    """A keras-rs pairwise loss. Called on a list [positive, negatives...]
    with labels [1, 0, ...], keras-rs sums its `pairwise_loss` over every
    ordered pair of the list: [B, L, L] values, of which only the pairs
    (positive, negative_j) count here. So its elementwise `pairwise_loss` is
    applied to the [B, N] differences directly (the tests check this equals
    the full keras-rs call divided by the number of valid negatives)."""

    def _loss(self):
        raise NotImplementedError

    def compute(self, positive_scores, negative_scores, mask=None):
        positive, negative, valid = _prepare(positive_scores, negative_scores, mask)
        loss = self._loss()
        differences = (positive - negative) / loss.temperature
        return _mean(loss.pairwise_loss(differences), valid)


@registry.register("loss", "logistic")
class LogisticLoss(_KerasRSLoss):
    """mean_j log(1 + exp(-(positive - negative_j))), by keras-rs.

    Example:

    >>> import numpy as np
    >>> round(float(LogisticLoss().compute(np.array([2.0]), np.array([[2.0]]))[0]), 4)  # log 2, as bpr
    0.6931
    """

    def _loss(self):
        return keras_rs.losses.PairwiseLogisticLoss(reduction="none")


@registry.register("loss", "hinge")
class HingeLoss(_KerasRSLoss):
    """mean_j max(0, margin - (positive - negative_j)), by keras-rs.

    keras-rs's hinge has margin 1 on differences divided by its
    temperature: max(0, 1 - d / m) * m = max(0, m - d) gives any margin.

    Example:

    >>> import numpy as np
    >>> loss = HingeLoss(margin=0.5).compute(np.array([1.0]), np.array([[0.8, 0.0]]))
    >>> round(float(loss[0]), 4)  # (max(0, 0.5 - 0.2) + max(0, 0.5 - 1.0)) / 2
    0.15
    """

    def __init__(self, margin: float = 1.0):
        if margin <= 0:
            raise ValueError(f"HingeLoss: margin must be > 0, got {margin}")
        self.margin = float(margin)

    def _loss(self):
        return keras_rs.losses.PairwiseHingeLoss(temperature=self.margin, reduction="none")

    def compute(self, positive_scores, negative_scores, mask=None):
        return super().compute(positive_scores, negative_scores, mask) * self.margin

    def get_config(self):
        return {"margin": self.margin}


@registry.register("loss", "top1")
class TOP1Loss(PairwiseLoss):
    """mean_j sigmoid(negative_j - positive) + sigmoid(negative_j^2).

    Example:

    >>> import numpy as np
    >>> round(float(TOP1Loss().compute(np.array([0.0]), np.array([[0.0]]))[0]), 4)  # sigmoid(0) + sigmoid(0)
    1.0
    """

    def compute(self, positive_scores, negative_scores, mask=None):
        positive, negative, valid = _prepare(positive_scores, negative_scores, mask)
        return _mean(ops.sigmoid(negative - positive) + ops.sigmoid(ops.square(negative)), valid)


@registry.register("loss", "bpr-max")
class BPRMaxLoss(PairwiseLoss):
    """-log sum_j s_j sigmoid(positive - negative_j) + reg * sum_j s_j negative_j^2,
    s the softmax of the valid negative scores.

    Example:

    >>> import numpy as np
    >>> loss = BPRMaxLoss(regularization=0.5).compute(np.array([0.0]), np.array([[0.0, 0.0]]))
    >>> round(float(loss[0]), 4)  # -log(2 * 0.5 * sigmoid(0)) + 0.5 * 0
    0.6931
    """

    def __init__(self, regularization: float = 1.0):
        if regularization < 0:
            raise ValueError(f"BPRMaxLoss: regularization must be >= 0, got {regularization}")
        self.regularization = float(regularization)

    def compute(self, positive_scores, negative_scores, mask=None):
        positive, negative, valid = _prepare(positive_scores, negative_scores, mask)
        weights = _softmax(negative, valid)
        any_valid = ops.cast(ops.sum(valid, axis=1) > 0, "float32")
        inside = ops.sum(weights * ops.sigmoid(positive - negative), axis=1)
        loss = -ops.log(ops.maximum(inside, 1e-24)) + self.regularization * ops.sum(weights * ops.square(negative), axis=1)
        return loss * any_valid

    def get_config(self):
        return {"regularization": self.regularization}


@registry.register("loss", "top1-max")
class TOP1MaxLoss(PairwiseLoss):
    """sum_j s_j (sigmoid(negative_j - positive) + sigmoid(negative_j^2)).

    Example:

    >>> import numpy as np
    >>> round(float(TOP1MaxLoss().compute(np.array([0.0]), np.array([[0.0, 0.0]]))[0]), 4)  # 0.5 * 1 + 0.5 * 1
    1.0
    """

    def compute(self, positive_scores, negative_scores, mask=None):
        positive, negative, valid = _prepare(positive_scores, negative_scores, mask)
        weights = _softmax(negative, valid)
        return ops.sum(weights * (ops.sigmoid(negative - positive) + ops.sigmoid(ops.square(negative))), axis=1)


def get_loss(spec) -> PairwiseLoss:
    """A pairwise loss from a registered name, a saved config or an instance.

    >>> type(get_loss("bpr-max")).__name__
    'BPRMaxLoss'
    """
    if isinstance(spec, PairwiseLoss):
        return spec
    if isinstance(spec, (str, dict)):
        return registry.get("loss", spec)
    raise TypeError(f"expected a pairwise loss name or a PairwiseLoss, got {type(spec).__name__}")


__all__ = [
    "PairwiseLoss",
    "BPRLoss",
    "BPRMaxLoss",
    "TOP1Loss",
    "TOP1MaxLoss",
    "LogisticLoss",
    "HingeLoss",
    "get_loss",
]
