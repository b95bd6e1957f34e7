"""Dense layers for a tower: `MLPBlock`."""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["MLPBlock"]


@keras.saving.register_keras_serializable(package="schemaretrieval")
class MLPBlock(keras.layers.Layer):
    """Dense layers, each optionally followed by normalisation and dropout.

    Args:
        units: the width of each dense layer, in order.
        activation: the activation of every layer but, with
            `no_activation_last_layer=True`, the last, which then stays
            linear (what a retrieval tower's output usually wants).
        dropout: the dropout rate after each layer but the last.
        normalization: None, "batch_norm" or "layer_norm", after each layer
            but the last.
        kernel_regularizer: passed to every dense layer, e.g. "l2".

    Example:

    >>> import numpy as np
    >>> tuple(MLPBlock([8, 4])(np.ones((2, 3))).shape)
    (2, 4)
    """

    NORMALIZATIONS = {
        "batch_norm": keras.layers.BatchNormalization,
        "layer_norm": keras.layers.LayerNormalization,
    }

    def __init__(
        self,
        units: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        normalization: str | None = None,
        no_activation_last_layer: bool = False,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not units:
            raise ValueError("MLPBlock: units must name at least one layer width, got []")
        if normalization is not None and normalization not in self.NORMALIZATIONS:
            raise ValueError(
                f"MLPBlock: normalization must be one of {sorted(self.NORMALIZATIONS)} or None, got {normalization!r}"
            )
        self.units = list(units)
        self.activation = activation
        self.dropout = dropout
        self.normalization = normalization
        self.no_activation_last_layer = no_activation_last_layer
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.layers = []
        for i, width in enumerate(self.units):
            last = i == len(self.units) - 1
            linear = last and no_activation_last_layer
            self.layers.append(
                keras.layers.Dense(
                    width,
                    activation=None if linear else activation,
                    kernel_regularizer=self.kernel_regularizer,
                    name=f"dense_{i}",
                )
            )
            if last:
                continue
            if normalization:
                self.layers.append(self.NORMALIZATIONS[normalization](name=f"{normalization}_{i}"))
            if dropout:
                self.layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i}"))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "normalization": self.normalization,
            "no_activation_last_layer": self.no_activation_last_layer,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer
            else None,
        }
