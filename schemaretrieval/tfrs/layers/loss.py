"""The logit transforms of TFRS's retrieval loss (`tfrs.layers.loss`), as Keras 3 layers.

Each layer's transform is also a function (`hard_negative_mining`, ...),
which `tasks.Retrieval` calls. It applies them in this order: temperature, then
`SamplingProbablityCorrection`, `RemoveAccidentalHits`, the score mask and
`HardNegativeMining`. Each gives the numbers of its TFRS 0.7.7 namesake
(tests/test_tfrs_tasks.py compares them with TFRS's own). The misspelt
`SamplingProbablityCorrection` is TFRS's name; `SamplingProbabilityCorrection`
is the same class.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from schemaretrieval.arguments import integer

__all__ = [
    "MAX_FLOAT",
    "MIN_FLOAT",
    "hard_negative_mining",
    "remove_accidental_hits",
    "sampling_probability_correction",
    "HardNegativeMining",
    "RemoveAccidentalHits",
    "SamplingProbablityCorrection",
    "SamplingProbabilityCorrection",
]

# TFRS's constants: large finite values rather than infinities, so that a
# row whose negatives are all removed keeps a finite loss.
MAX_FLOAT = float(np.finfo(np.float32).max) / 100.0
MIN_FLOAT = float(np.finfo(np.float32).min) / 100.0

# The smallest probability whose log the correction takes (TFRS's clip).
PROBABILITY_FLOOR = 1e-6


def hard_negative_mining(logits, labels, num_hard_negatives: int):
    """`HardNegativeMining`'s transform as a function (``num_hard_negatives >= 1``).

    >>> kept, _ = hard_negative_mining(tf.constant([[1.0, 5.0, 3.0]]), tf.constant([[1.0, 0.0, 0.0]]), 1)
    >>> sorted(kept.numpy()[0].tolist())
    [1.0, 5.0]
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, logits.dtype)
    num_kept = tf.minimum(num_hard_negatives + 1, tf.shape(logits)[1])
    # Lifting the positive above everything makes top_k take it and the
    # hardest negatives in one pass, with no boolean mask.
    _, columns = tf.math.top_k(logits + labels * MAX_FLOAT, k=num_kept, sorted=False)
    return tf.gather(logits, columns, batch_dims=1), tf.gather(labels, columns, batch_dims=1)


def remove_accidental_hits(labels, logits, candidate_ids):
    """`RemoveAccidentalHits`'s transform as a function.

    >>> out = remove_accidental_hits(tf.eye(2), tf.zeros((2, 2)), tf.constant(["a", "a"]))
    >>> (out.numpy() < -1e30).tolist()
    [[False, True], [True, False]]
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, logits.dtype)
    candidate_ids = tf.convert_to_tensor(candidate_ids)
    positive_ids = tf.gather(candidate_ids, tf.math.argmax(labels, axis=1))
    same_id = tf.cast(tf.equal(positive_ids[:, None], candidate_ids[None, :]), logits.dtype)
    return logits + (same_id - labels) * MIN_FLOAT


def sampling_probability_correction(logits, candidate_sampling_probability):
    """`SamplingProbablityCorrection`'s transform as a function.

    >>> out = sampling_probability_correction(tf.zeros((1, 2)), tf.constant([1.0, 1e-9]))  # 1e-9 clipped to 1e-6
    >>> [round(float(x), 2) for x in out.numpy()[0]]
    [0.0, 13.82]
    """
    logits = tf.convert_to_tensor(logits)
    probability = tf.cast(candidate_sampling_probability, logits.dtype)
    return logits - tf.math.log(tf.clip_by_value(probability, PROBABILITY_FLOOR, 1.0))


class HardNegativeMining(keras.layers.Layer):
    """Keeps each row's positive and its ``num_hard_negatives`` highest-scoring negatives.

    Returns ``(logits, labels)`` of shape ``[batch, min(num_hard_negatives + 1,
    num_candidates)]``; the kept columns are in no particular order (as in
    TFRS), which a softmax loss does not see.

    >>> import numpy as np
    >>> logits = np.array([[1.0, 5.0, 3.0, 4.0]], "float32")
    >>> labels = np.array([[1.0, 0.0, 0.0, 0.0]], "float32")
    >>> kept_logits, kept_labels = HardNegativeMining(2)(logits, labels)
    >>> sorted(kept_logits.numpy()[0].tolist()), float(kept_labels.numpy().sum())
    ([1.0, 4.0, 5.0], 1.0)
    """

    def __init__(self, num_hard_negatives: int, **kwargs):
        super().__init__(**kwargs)
        self.num_hard_negatives = integer(num_hard_negatives, "HardNegativeMining", "num_hard_negatives")

    def call(self, logits, labels):
        return hard_negative_mining(logits, labels, self.num_hard_negatives)

    def get_config(self):
        return {**super().get_config(), "num_hard_negatives": self.num_hard_negatives}


class RemoveAccidentalHits(keras.layers.Layer):
    """Pushes down the logits of negatives that share the positive's candidate id.

    ``call(labels, logits, candidate_ids)``: for each row, every column whose
    id equals the id of that row's positive (other than the positive itself)
    gets ``MIN_FLOAT`` added, so the softmax gives it no weight.

    >>> import numpy as np
    >>> labels = np.eye(3, dtype="float32")
    >>> logits = np.ones((3, 3), "float32")
    >>> out = RemoveAccidentalHits()(labels, logits, np.array([7, 8, 7]))
    >>> (out.numpy() < -1e30).astype(int).tolist()
    [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    """

    def call(self, labels, logits, candidate_ids):
        return remove_accidental_hits(labels, logits, candidate_ids)


class SamplingProbablityCorrection(keras.layers.Layer):
    """The logQ correction: ``logits - log(clip(candidate_sampling_probability, 1e-6, 1))``.

    Candidates drawn often as negatives are over-penalised by a sampled
    softmax; subtracting the log of their sampling probability corrects it
    (Yi et al., RecSys 2019). As in TFRS, probabilities are clipped to
    ``[1e-6, 1]``.

    >>> import numpy as np
    >>> out = SamplingProbablityCorrection()(np.zeros((1, 3), "float32"), np.array([0.5, 1.0, 2.0], "float32"))
    >>> [round(float(x), 4) for x in out.numpy()[0]]
    [0.6931, 0.0, 0.0]
    """

    def call(self, logits, candidate_sampling_probability):
        return sampling_probability_correction(logits, candidate_sampling_probability)


SamplingProbabilityCorrection = SamplingProbablityCorrection
