"""A Keras loss on a retrieval batch's logits, as a model's ``compile(loss=)`` applies it.

A retrieval output hands the loss Merlin's form of each batch: one-hot targets
[B, C] (the positive) and logits [B, C] over the positive and the sampled
negatives, with the columns of downscored false negatives (and empty sampler
slots) at ``MASK_VALUE``. Keras's compile takes a loss as a name, a function
or a ``keras.losses.Loss``; here each of them reads those logits, and:

* a loss that reads probabilities (``from_logits=False``, Keras's default for
  its cross-entropies) is refused: on logits it trains a model that ranks
  near chance, without an error;
* a sparse cross-entropy is refused: the targets are one-hot;
* label smoothing (``CategoricalCrossentropy(from_logits=True,
  label_smoothing=e)`` and the binary and focal ones) spreads ``e`` over the
  columns that are candidates (every column when none is masked, as Keras
  does); Keras's own would give the masked columns a share of ``e`` at a
  logit of ``MASK_VALUE``, a loss of about 1e33.
"""

from __future__ import annotations

import inspect

import keras
from keras import ops

from schemaretrieval.retrieval.outputs.base import MASK_VALUE, is_candidate

__all__ = ["logits_loss"]

CATEGORICAL = (keras.losses.CategoricalCrossentropy, keras.losses.CategoricalFocalCrossentropy)
BINARY = (keras.losses.BinaryCrossentropy, keras.losses.BinaryFocalCrossentropy)


def logits_loss(loss):
    """``loss`` (a Keras loss name, function or ``keras.losses.Loss``) as a function of (one-hot
    targets [B, C], logits [B, C], sample weights [B] or None) to the batch's loss.

    >>> import numpy as np
    >>> targets = np.array([[1.0, 0.0, 0.0]], "float32")
    >>> logits = np.array([[2.0, 0.0, MASK_VALUE]], "float32")  # column 2: a downscored false negative
    >>> smoothed = logits_loss(keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2))
    >>> # 0.9 on the positive and 0.1 on column 1: 0.9 * -log(e^2 / (e^2 + 1)) + 0.1 * -log(1 / (e^2 + 1))
    >>> round(float(smoothed(targets, logits, None)), 4)
    0.3269
    >>> logits_loss("binary_crossentropy")
    Traceback (most recent call last):
    ...
    ValueError: compile: loss 'binary_crossentropy' reads probabilities (from_logits=False), and a retrieval
    model's outputs are logits: give keras.losses.BinaryCrossentropy(from_logits=True)
    """
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", repr(loss))
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    sparse = isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    if sparse or loss is keras.losses.sparse_categorical_crossentropy:
        raise ValueError(f"compile: loss {name!r} takes integer labels, and a retrieval batch's targets are one-hot "
                         "over its columns: give keras.losses.CategoricalCrossentropy(from_logits=True)")
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
    else:  # a function of (y_true, y_pred), as Keras's compile takes one
        try:
            parameter = inspect.signature(loss).parameters.get("from_logits")
        except (TypeError, ValueError):  # a callable Python cannot read the signature of
            parameter = None
        config = {} if parameter is None else {"from_logits": parameter.default}
    if config.get("from_logits") is False:
        keras_class = type(loss).__name__ if isinstance(loss, keras.losses.Loss) else "".join(
            part.capitalize() for part in name.split("_"))  # binary_crossentropy: BinaryCrossentropy
        raise ValueError(f"compile: loss {name!r} reads probabilities (from_logits=False), and a retrieval model's "
                         f"outputs are logits: give keras.losses.{keras_class}(from_logits=True)")
    if not isinstance(loss, keras.losses.Loss):
        return _mean_of_rows(loss)
    smoothing = float(config.get("label_smoothing") or 0.0)
    if not smoothing or not isinstance(loss, CATEGORICAL + BINARY):
        return lambda targets, logits, sample_weight: loss(targets, logits, sample_weight=sample_weight)
    unsmoothed = type(loss).from_config({**config, "label_smoothing": 0.0})
    categorical = isinstance(loss, CATEGORICAL)

    def smoothed(targets, logits, sample_weight):
        candidates = ops.cast(is_candidate(logits), logits.dtype)
        share = candidates / ops.sum(candidates, axis=1, keepdims=True) if categorical else candidates / 2
        return unsmoothed(targets * (1.0 - smoothing) + smoothing * share, logits, sample_weight=sample_weight)

    return smoothed


def _mean_of_rows(function):
    """A loss function of (y_true, y_pred) -> each row's loss [B], weighed and averaged over the
    batch as Keras's compile does it ("sum_over_batch_size")."""

    def apply(targets, logits, sample_weight):
        values = ops.cast(function(targets, logits), "float32")
        if sample_weight is not None:
            values = values * ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))
        return ops.sum(values) / ops.cast(ops.size(values), "float32")

    return apply
