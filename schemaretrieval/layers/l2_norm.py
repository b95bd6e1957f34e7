"""`L2Norm`: Merlin Models' layer that scales each vector to unit length."""

from __future__ import annotations

import keras
from keras import ops

from schemaretrieval.arguments import number

__all__ = ["L2Norm"]


@keras.saving.register_keras_serializable(package="schemaretrieval")
class L2Norm(keras.layers.Layer):
    """Each vector along ``axis`` divided by its L2 norm, as ``tf.linalg.l2_normalize``:
    ``x / sqrt(max(sum(x ** 2), epsilon))``; a dict's values each, as Merlin's. A tower ending
    in it scores by cosine: ``mm.Encoder(schema, mm.MLPBlock([64]), post=mm.L2Norm())``.

    Args:
        epsilon: the floor under the squared norm (a zero vector stays zero).
        axis: the axis of the vectors' values.

    >>> import numpy as np
    >>> np.asarray(L2Norm()(np.array([[3.0, 4.0], [0.0, 0.0]])), np.float64).round(6).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """

    def __init__(self, epsilon: float = 1e-12, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = number(epsilon, "L2Norm", "epsilon", above=0)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"L2Norm: axis must be an integer, got {axis!r}")
        self.axis = axis

    def call(self, inputs):
        if isinstance(inputs, dict):
            return {name: self._normalize(values) for name, values in inputs.items()}
        return self._normalize(inputs)

    def _normalize(self, values):
        squared = ops.sum(ops.square(values), axis=self.axis, keepdims=True)
        return values * ops.rsqrt(ops.maximum(squared, ops.cast(self.epsilon, squared.dtype)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "axis": self.axis}
