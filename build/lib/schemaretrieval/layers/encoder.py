"""One tower: `Encoder`, an `InputBlock` read from a schema, then blocks applied in order."""

from __future__ import annotations

import keras
from merlin.schema import Schema

from schemaretrieval import schema as schema_lib
from schemaretrieval.layers.embeddings import DEFAULT_UNTRAINED_USER_IDS
from schemaretrieval.layers.input_block import InputBlock

__all__ = ["Encoder"]


@keras.saving.register_keras_serializable(package="schemaretrieval")
class Encoder(keras.layers.Layer):
    """One tower: the schema's columns read by an `InputBlock`, then `blocks`.

    The encoder picks its own columns out of the batch, so both towers can be
    given the same feature dict.

    Args:
        schema: the columns this tower reads (e.g. `schema.select_by_tag(Tags.USER)`);
            may be empty when `history` is given.
        *blocks: Keras layers applied in order to the concatenated inputs,
            e.g. `MLPBlock([128, 64])` and `keras.layers.UnitNormalization()`.
        history: a `UserHistory` whose output is concatenated to the
            schema's columns (a query tower's): the tower then also reads
            its user-id column.
        untrained_user_ids: the `InputBlock`'s: "mean" (a user id that
            training never read reads the mean trained user) or None.

    Example:

    >>> import numpy as np
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
    ...     dtype="int64", properties={"domain": {"min": 0, "max": 99}})])
    >>> tuple(Encoder(s, keras.layers.Dense(8))({"item_id": np.array([3, 4]), "other": np.array([0, 0])}).shape)
    (2, 8)
    """

    def __init__(self, schema: Schema, *blocks: keras.layers.Layer, history=None,
                 untrained_user_ids: str | None = DEFAULT_UNTRAINED_USER_IDS, **kwargs):
        blocks = list(blocks) + list(kwargs.pop("blocks", []))
        super().__init__(**kwargs)
        if not schema.column_names and history is None:
            raise ValueError("Encoder: the schema has no columns and no history= is given; the tower reads nothing")
        self.schema = schema
        self.untrained_user_ids = untrained_user_ids
        self.inputs_block = (InputBlock(schema, untrained_user_ids=untrained_user_ids, name="inputs")
                             if schema.column_names else None)
        self.history = history
        self.blocks = blocks

    @property
    def column_names(self) -> list[str]:
        names = list(self.inputs_block.column_names) if self.inputs_block is not None else []
        if self.history is not None and self.history.user_id_column not in names:
            names.append(self.history.user_id_column)
        return names

    def build(self, input_shape=None):
        # The blocks take their shapes from the first batch they see.
        if self.inputs_block is not None:
            self.inputs_block.build(None)
        if self.history is not None and not self.history.built:
            self.history.build()
        self.built = True

    def call(self, features, training=None):
        parts = []
        if self.inputs_block is not None:
            parts.append(self.inputs_block({name: features[name] for name in self.inputs_block.column_names
                                            if name in features}))
        if self.history is not None:
            # All features: in training the history leaves out each row's own item.
            parts.append(self.history(features, training=training))
        x = parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, axis=-1)
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def get_config(self):
        config = {
            **super().get_config(),
            "schema": schema_lib.schema_to_dict(self.schema),
            "blocks": [keras.saving.serialize_keras_object(block) for block in self.blocks],
            "untrained_user_ids": self.untrained_user_ids,
        }
        if self.history is not None:
            config["history"] = keras.saving.serialize_keras_object(self.history)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Saved before the option existed: those users read their own rows,
        # and the file has no trained_rows to load.
        config.setdefault("untrained_user_ids", None)
        schema = schema_lib.schema_from_dict(config.pop("schema"))
        blocks = [keras.saving.deserialize_keras_object(block) for block in config.pop("blocks")]
        if "history" in config:
            config["history"] = keras.saving.deserialize_keras_object(config["history"])
        return cls(schema, *blocks, **config)
