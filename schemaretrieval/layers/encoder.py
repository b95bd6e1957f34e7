"""One tower: `Encoder`, an `InputBlock` read from a schema, then blocks applied in order.

As Merlin Models' ``mm.Encoder`` it is a ``keras.Model``: its first argument is
a schema or an input block (``mm.InputBlockV2(schema)``), it saves on its own
(``encoder.save(path)``: a ``.keras`` file, or a TensorFlow SavedModel
directory for any other path, as Merlin's did) and ``encoder.encode(dataset,
index=, batch_size=)`` runs it over a data set.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval import schema as schema_lib
from schemaretrieval.data.batches import Batches, example_batch
from schemaretrieval.data.loader import keras_input
from schemaretrieval.data.read import is_merlin_dataset, merlin_table, read_frame, require_columns
from schemaretrieval.layers.embeddings import DEFAULT_UNTRAINED_USER_IDS
from schemaretrieval.layers.history import UserHistory
from schemaretrieval.layers.input_block import InputBlock
from schemaretrieval.schema import columns

__all__ = ["Encoder", "embeddings_frame", "index_column", "export_saved_model"]


def index_column(schema: Schema, index) -> str:
    """The one column ``index`` (a name, Tags, ColumnSchema or one-column Schema) names in ``schema``.

    >>> index_column(Schema([ColumnSchema("item_id", tags=[Tags.ITEM, Tags.ID])]), Tags.ITEM_ID)
    'item_id'
    """
    names = columns.selected_columns(schema, index, "index")
    if len(names) != 1:
        raise ValueError(f"index: {index!r} must name exactly one column of {schema.column_names}, found {names}")
    return names[0]


def embeddings_frame(embeddings: np.ndarray, index_name: str | None = None, index_values=None):
    """Merlin's table of embeddings: columns "0", "1", ... (one per dimension), indexed by
    ``index_values`` under ``index_name`` when given.

    >>> embeddings_frame(np.eye(2, 3), "item_id", [7, 9])
             0    1    2
    item_id              
    7        1.0  0.0  0.0
    9        0.0  1.0  0.0
    """
    import pandas as pd

    frame = pd.DataFrame(np.asarray(embeddings), columns=[str(i) for i in range(np.shape(embeddings)[1])])
    if index_name is not None:
        frame.index = pd.Index(np.asarray(index_values), name=index_name)
    return frame


def export_saved_model(model: keras.Model, schema: Schema, path) -> None:
    """Writes ``model`` as a TensorFlow SavedModel directory at ``path`` whose ``serve`` (and
    ``serving_default``) function takes a dict of ``schema``'s columns: int64 ``[batch]`` ids,
    int64 ``[batch, length]`` lists padded with -1, float32 ``[batch]`` values.

    >>> import tempfile, tensorflow as tf
    >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
    ...     dtype="int64", properties={"domain": {"min": 0, "max": 9}})])
    >>> encoder, path = Encoder(s, keras.layers.Dense(2)), tempfile.mkdtemp()
    >>> export_saved_model(encoder, s, path)
    >>> loaded = tf.saved_model.load(path)
    >>> tuple(loaded.serve({"item_id": tf.constant([3, 4], tf.int64)}).shape)
    (2, 2)
    """
    import tensorflow as tf

    model(example_batch(schema))  # every weight exists before it is tracked
    spec = {}
    for col in columns.feature_columns(schema):
        dtype = tf.int64 if columns.kind(col) == columns.CATEGORICAL else tf.float32
        spec[col.name] = tf.TensorSpec([None, None] if columns.is_list(col) else [None], dtype, name=col.name)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda features: model(features, training=False), input_signature=[spec])
    archive.write_out(os.fspath(path), verbose=False)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class Encoder(keras.Model):
    """One tower: the schema's columns read by an `InputBlock`, then `blocks`.

    The encoder picks its own columns out of the batch, so both towers can be
    given the same feature dict.

    Args:
        inputs: the columns this tower reads, as a schema (e.g.
            ``schema.select_by_tag(Tags.USER)``; may be empty when `history`
            is given) or an `InputBlock` (``sr.InputBlockV2(schema)``).
        *blocks: Keras layers applied in order to the concatenated inputs,
            e.g. `MLPBlock([128, 64])` and `keras.layers.UnitNormalization()`.
        pre: a layer applied to the feature dict before the input block (Merlin's).
        post: a layer applied after the blocks (Merlin's).
        history: a `UserHistory` whose output is concatenated to the
            schema's columns (a query tower's): the tower then also reads
            its user-id column.
        untrained_user_ids: the `InputBlock`'s: "mean" (a user id that
            training never read reads the mean trained user) or None. With
            an `InputBlock` given, it is the block's.

    Example:

    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
    ...     dtype="int64", properties={"domain": {"min": 0, "max": 99}})])
    >>> tuple(Encoder(s, keras.layers.Dense(8))({"item_id": np.array([3, 4]), "other": np.array([0, 0])}).shape)
    (2, 8)
    """

    def __init__(self, inputs, *blocks: keras.layers.Layer, pre=None, post=None, history=None,
                 untrained_user_ids: str | None = DEFAULT_UNTRAINED_USER_IDS, **kwargs):
        given = kwargs.pop("blocks", [])
        if not isinstance(given, (list, tuple)):
            raise TypeError(f"Encoder: blocks= must be a list of Keras layers, got {given!r}")
        blocks = list(blocks) + list(given)
        kwargs.pop("schema", None)  # configs of before the Merlin names hold it twice
        super().__init__(**kwargs)
        if isinstance(inputs, InputBlock):
            if untrained_user_ids != inputs.untrained_user_ids and untrained_user_ids != DEFAULT_UNTRAINED_USER_IDS:
                raise ValueError(f"Encoder: untrained_user_ids={untrained_user_ids!r} differs from the given "
                                 f"InputBlock's {inputs.untrained_user_ids!r}; set it on the InputBlock")
            schema, untrained_user_ids, inputs_block = inputs.schema, inputs.untrained_user_ids, inputs
        elif isinstance(inputs, Schema):
            schema = inputs
            inputs_block = (InputBlock(schema, untrained_user_ids=untrained_user_ids, name="inputs")
                            if schema.column_names else None)
        else:
            raise TypeError(f"Encoder: inputs must be a merlin Schema or an InputBlock (sr.InputBlockV2(schema)), "
                            f"got {type(inputs).__name__}")
        if not schema.column_names and history is None:
            raise ValueError("Encoder: the schema has no columns and no history= is given; the tower reads nothing")
        for name, layer in (("pre", pre), ("post", post)):
            if layer is not None and not callable(layer):
                raise TypeError(f"Encoder: {name} must be a Keras layer or None, got {type(layer).__name__}")
        for i, block in enumerate(blocks):
            if not callable(block):
                raise TypeError(f"Encoder: block {i} must be a Keras layer (callable), got {block!r}")
        if history is not None and not isinstance(history, UserHistory):
            raise TypeError(f"Encoder: history must be a UserHistory or None, got {type(history).__name__}")
        self._schema = schema
        self.untrained_user_ids = untrained_user_ids
        self.inputs_block = inputs_block
        self.history = history
        self.blocks = blocks
        self.pre = pre
        self.post = post

    @property
    def schema(self) -> Schema:
        """The columns the tower reads (Merlin's ``encoder.schema``)."""
        return self._schema

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
        if self.pre is not None:
            features = self.pre(features)
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
        if self.post is not None:
            x = self.post(x)
        return x

    def fit(self, *args, **kwargs):
        raise NotImplementedError("Encoder: a tower is trained as part of a model (sr.TwoTowerModelV2), not alone")

    # -- running it over data --------------------------------------------------------

    def reading_schema(self) -> Schema:
        """The schema of the columns the tower reads (a history's user-id column included)."""
        read = [self.schema[n] for n in self.column_names if n in self.schema.column_names]
        if self.history is not None and self.history.user_id_column not in self.schema.column_names:
            read.append(ColumnSchema(self.history.user_id_column, tags=[Tags.USER_ID, Tags.CATEGORICAL],
                                     dtype="int64",
                                     properties={"domain": {"min": 0, "max": int(self.history.num_users) - 1}}))
        return Schema(read)

    def predict_table(self, data, batch_size: int = 4096) -> np.ndarray:
        """The tower's outputs [rows, dim] for a table (DataFrame, path, dict of arrays or ``merlin.io.Dataset``)."""
        import tensorflow as tf

        if is_merlin_dataset(data):
            data = merlin_table(data)
        functions = self.__dict__.setdefault("_inference", [])
        if not functions:  # one traced function for the tower's life, out of Keras's tracking
            functions.append(tf.function(lambda batch: self(batch, training=False), reduce_retracing=True))
        run = functions[0]
        batches = Batches(data, self.reading_schema(), batch_size).dataset()
        return np.concatenate([np.asarray(run(batch), dtype="float32") for batch in batches], axis=0)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras's: the tower's outputs of each row, in order; ``x`` may be a `Loader`, a
        ``merlin.io.Dataset`` or a table too (batches of ``batch_size``, else 4096)."""
        x, batch_size = keras_input(x, self.reading_schema(), batch_size, "Encoder.predict", 4096)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def encode(self, dataset, index=None, batch_size: int = 512):
        """Merlin's ``encode``: `batch_predict` keeping only the column ``index`` names (a name, Tags,
        ColumnSchema or Schema) as the index of the embeddings "0", "1", ...; without ``index``, the
        embeddings beside all the input's columns.

        >>> import pandas as pd
        >>> from merlin.io import Dataset
        >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
        ...     dtype="int64", properties={"domain": {"min": 0, "max": 9}})])
        >>> out = Encoder(s, keras.layers.Dense(2)).encode(Dataset(pd.DataFrame({"item_id": [4, 6]})), Tags.ITEM_ID)
        >>> out.compute().index.tolist(), list(out.compute().columns)
        ([4, 6], ['0', '1'])
        """
        if index is None:
            return self.batch_predict(dataset, batch_size)
        name = index_column(self.schema, index)
        return self.batch_predict(dataset, batch_size, output_schema=Schema([ColumnSchema(name)]), index=name)

    def batch_predict(self, dataset, batch_size: int, output_schema: Schema | None = None, index=None, **kwargs):
        """Merlin's ``batch_predict``: the tower over every row of ``dataset``, as a ``merlin.io.Dataset``
        (over a pandas DataFrame, one row per input row, in order) whose columns are the input's, then
        the embeddings "0", "1", ... (one per output dimension).

        Args:
            dataset: a ``merlin.io.Dataset``, a `sr.Loader` (its data set and batch size; a loader
                with ``map`` transforms is a NotImplementedError: the tower reads the data set's
                columns), or a table (DataFrame, path, dict of arrays).
            batch_size: rows per step.
            output_schema: the input columns to keep (their names); None keeps them all.
            index: one column (a name, Tags, ColumnSchema or one-column Schema of the tower's
                schema) that becomes the index of the result, out of its columns.
            **kwargs: Merlin passes them to its ``TFModelEncode`` (``output_names``, ``save_path``,
                ...); any is a NotImplementedError here.

        A ``merlin.io.Dataset`` whose schema lacks a column the tower reads is a ValueError, as Merlin's.

        >>> import pandas as pd
        >>> from merlin.io import Dataset
        >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
        ...     dtype="int64", properties={"domain": {"min": 0, "max": 9}})])
        >>> table = pd.DataFrame({"item_id": [4, 6], "price": [1.5, 2.5]})
        >>> out = Encoder(s, keras.layers.Dense(2)).batch_predict(Dataset(table), 1, index="item_id").compute()
        >>> out.index.tolist(), list(out.columns)
        ([4, 6], ['price', '0', '1'])
        """
        from merlin.io import Dataset

        if kwargs:
            raise NotImplementedError(f"Encoder.batch_predict: {sorted(kwargs)} (Merlin's TFModelEncode options) "
                                      "are not supported")
        from schemaretrieval.data.loader import Loader

        if isinstance(dataset, Loader):
            if dataset.transforms:
                raise NotImplementedError("Encoder.batch_predict: a Loader with map() transforms is not supported; "
                                          "give its data set (loader.dataset)")
            batch_size, dataset = dataset.batch_size, dataset.dataset
        if is_merlin_dataset(dataset) and dataset.schema.column_names:
            missing = [n for n in self.reading_schema().column_names if n not in dataset.schema.column_names]
            if missing:
                raise ValueError(f"Encoder.batch_predict: the tower reads {missing}, which the data set's schema "
                                 f"{dataset.schema.column_names} lacks")
        name = None if index is None else index_column(self.schema, index)
        if isinstance(dataset, dict):
            import pandas as pd

            frame = pd.DataFrame(dataset)
        else:
            frame, _ = read_frame(dataset, "Encoder.batch_predict")
        embeddings = self.predict_table(frame, batch_size)
        keep = list(frame.columns) if output_schema is None else list(output_schema.column_names)
        require_columns(frame, keep + ([name] if name is not None else []), "Encoder.batch_predict: the data set",
                        "output_schema and index")
        import pandas as pd

        out = pd.concat([frame[keep].reset_index(drop=True), embeddings_frame(embeddings)], axis=1)
        if name is not None:
            out.index = pd.Index(frame[name].to_numpy(), name=name)
            out = out.drop(columns=[name], errors="ignore")
        return Dataset(out)

    # -- saving ------------------------------------------------------------------------

    def save(self, filepath, overwrite: bool = True, **kwargs):
        """A ``.keras`` (or ``.h5``) path: Keras's format. Any other path: a TensorFlow SavedModel
        directory, as Merlin's ``encoder.save(path)`` wrote, served by its ``serve`` and
        ``serving_default`` functions on a dict of the schema's columns (int64 ``[batch]`` ids,
        ``[batch, length]`` lists padded with -1, float32 values); load it with
        ``tf.saved_model.load(path)`` or ``keras.layers.TFSMLayer(path)``."""
        path = os.fspath(filepath)
        if path.endswith((".keras", ".h5")):
            return super().save(path, overwrite=overwrite, **kwargs)
        if kwargs:
            raise TypeError(f"Encoder.save: {sorted(kwargs)} apply to .keras files only")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"Encoder.save: {path} exists and overwrite=False")
        export_saved_model(self, self.reading_schema(), path)

    # -- Keras plumbing ---------------------------------------------------------------------

    def _default_save_signature(self):
        # Keras gives a Model inside a tf.saved_model.save a "serving_default" traced on float32
        # inputs, which ids cannot take; `save` and the serving export write their own.
        return None

    def get_build_config(self):
        return {"from": "schema"} if self.built else None

    def build_from_config(self, config):
        # The blocks' weights take their shapes from a batch: one in-domain row creates them.
        self(example_batch(self.reading_schema()))

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "schema": schema_lib.schema_to_dict(self.schema),
            "blocks": [keras.saving.serialize_keras_object(block) for block in self.blocks],
            "untrained_user_ids": self.untrained_user_ids,
        }
        for key in ("history", "pre", "post"):
            if getattr(self, key) is not None:
                config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Saved before the option existed: those users read their own rows,
        # and the file has no trained_rows to load.
        config.setdefault("untrained_user_ids", None)
        schema = schema_lib.schema_from_dict(config.pop("schema"))
        blocks = [keras.saving.deserialize_keras_object(block) for block in config.pop("blocks")]
        for key in ("history", "pre", "post"):
            if key in config:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        config.pop("dtype", None)
        return cls(schema, *blocks, **config)
