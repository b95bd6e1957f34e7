"""Dense layers for a tower: `MLPBlock`, with Merlin Models' arguments in Merlin's order."""

from __future__ import annotations

from typing import Sequence

import keras

from schemaretrieval.arguments import integer, number

__all__ = ["MLPBlock"]


@keras.saving.register_keras_serializable(package="schemaretrieval")
class MLPBlock(keras.layers.Layer):
    """Dense layers, each followed by dropout and normalisation, as Merlin Models' `MLPBlock`.

    Layer ``i`` is ``Dense(dimensions[i])``, then ``Dropout(dropout)``
    (``AlphaDropout`` for a "selu" activation), then the normalisation:
    Merlin's order. With `no_activation_last_layer=True` the last dense
    layer is linear and has no dropout after it; its normalisation stays,
    as in Merlin.

    Args:
        dimensions: the width of each dense layer, in order.
        activation: one activation for every layer, or a list of one per layer.
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer, activity_regularizer: passed to every
            ``keras.layers.Dense``.
        dropout: the dropout rate after each layer (None or 0: none).
        normalization: None, "batch_norm", "layer_norm" (not in Merlin), or
            a Keras layer, whose copy (same config, own weights) follows each
            dense layer; Merlin reuses the one instance, which only builds
            when every layer has the same width.
        filter: Merlin's selection of the input features; not supported (an
            `Encoder` reads its schema's columns and hands the MLP one
            tensor): anything but None is an error.
        no_activation_last_layer: the last dense layer is linear and
            undropped (what a retrieval tower's output usually wants).
        block_name: the layer's name when ``name=`` is not given.

    Example:

    >>> import numpy as np
    >>> tuple(MLPBlock([8, 4])(np.ones((2, 3))).shape)
    (2, 4)
    >>> MLPBlock([8, 4], filter=["age"])
    Traceback (most recent call last):
    ...
    NotImplementedError: MLPBlock: filter= (Merlin's selection of input features) is not supported: an Encoder reads its schema's columns and gives the MLP one tensor; select the columns with the Encoder's schema, got ['age']
    """

    NORMALIZATIONS = {
        "batch_norm": keras.layers.BatchNormalization,
        "layer_norm": keras.layers.LayerNormalization,
    }

    def __init__(
        self,
        dimensions: Sequence[int],
        activation="relu",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        dropout: float | None = None,
        normalization=None,
        filter=None,
        no_activation_last_layer: bool = False,
        block_name: str = "MLPBlock",
        **kwargs,
    ):
        if "units" in kwargs:
            raise TypeError("MLPBlock: the layer widths are `dimensions` (Merlin's name), not `units`")
        kwargs.setdefault("name", block_name if block_name != "MLPBlock" else None)
        super().__init__(**kwargs)
        if isinstance(dimensions, (int, str)) or not dimensions:
            raise ValueError(f"MLPBlock: dimensions must list at least one layer width, got {dimensions!r}")
        if filter is not None:
            raise NotImplementedError(
                "MLPBlock: filter= (Merlin's selection of input features) is not supported: an Encoder reads its "
                f"schema's columns and gives the MLP one tensor; select the columns with the Encoder's schema, got {filter!r}")
        activations = list(activation) if isinstance(activation, (list, tuple)) else [activation] * len(dimensions)
        if len(activations) != len(dimensions):
            raise ValueError(f"MLPBlock: activation lists {len(activations)} activations for {len(dimensions)} "
                             "dimensions; give one, or one per layer")
        if isinstance(normalization, str) and normalization not in self.NORMALIZATIONS:
            raise ValueError(f"MLPBlock: normalization must be one of {sorted(self.NORMALIZATIONS)}, a Keras layer "
                             f"or None, got {normalization!r}")
        if normalization is not None and not isinstance(normalization, (str, keras.layers.Layer, dict)):
            raise ValueError(f"MLPBlock: normalization must be one of {sorted(self.NORMALIZATIONS)}, a Keras layer "
                             f"or None, got {type(normalization).__name__}")
        if dropout is not None:
            dropout = number(dropout, "MLPBlock", "dropout", at_least=0, below=1)
        self.dimensions = [integer(d, "MLPBlock", f"dimensions[{i}]") for i, d in enumerate(dimensions)]
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.activity_regularizer_ = keras.regularizers.get(activity_regularizer)
        self.dropout = dropout
        if isinstance(normalization, dict):  # a saved layer
            normalization = keras.saving.deserialize_keras_object(normalization)
        self.normalization = normalization
        self.no_activation_last_layer = bool(no_activation_last_layer)
        self.block_name = block_name
        self.layers = []
        for i, width in enumerate(self.dimensions):
            linear_last = self.no_activation_last_layer and i == len(self.dimensions) - 1
            act = None if linear_last else activations[i]
            self.layers.append(keras.layers.Dense(
                width, activation=act, use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config()),
                bias_initializer=self.bias_initializer.__class__.from_config(self.bias_initializer.get_config()),
                kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
                activity_regularizer=self.activity_regularizer_, name=f"dense_{i}"))
            if dropout and not linear_last:
                selu = act in ("selu", keras.activations.selu)
                self.layers.append((keras.layers.AlphaDropout if selu else keras.layers.Dropout)(
                    float(dropout), name=f"dropout_{i}"))
            if isinstance(normalization, str):
                self.layers.append(self.NORMALIZATIONS[normalization](name=f"{normalization}_{i}"))
            elif normalization is not None:
                self.layers.append(normalization.__class__.from_config(
                    {**normalization.get_config(), "name": f"normalization_{i}"}))

    @property
    def units(self) -> list[int]:
        """The layer widths (`dimensions`)."""
        return self.dimensions

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
        return (*tuple(input_shape)[:-1], self.dimensions[-1])

    def get_config(self):
        def ser(obj, kind):
            return kind.serialize(obj) if obj is not None else None

        normalization = self.normalization
        if isinstance(normalization, keras.layers.Layer):
            normalization = keras.saving.serialize_keras_object(normalization)
        return {
            **super().get_config(),
            "dimensions": self.dimensions,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": ser(self.kernel_regularizer, keras.regularizers),
            "bias_regularizer": ser(self.bias_regularizer, keras.regularizers),
            "activity_regularizer": ser(self.activity_regularizer_, keras.regularizers),
            "dropout": self.dropout,
            "normalization": normalization,
            "no_activation_last_layer": self.no_activation_last_layer,
            "block_name": self.block_name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "units" in config:  # saved before the Merlin names
            config["dimensions"] = config.pop("units")
        return cls(**config)
