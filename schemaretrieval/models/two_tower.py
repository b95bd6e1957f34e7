"""The two-tower model: a query tower, a candidate tower and an output, `TwoTowerModelV2`.

It is a ``keras.Model`` whose loss is computed in ``compute_loss`` (Keras's
hook), so ``train_step`` is Keras's, behind checks of the batch against the
schema. It keeps no table beside its weights: the catalog (`sr.data.Catalog`),
exclusions (`sr.data.Exclusions`) and a user-history tower's interactions
are given to the calls that use them.
"""

from __future__ import annotations

import threading
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops
from merlin.schema import Schema, Tags

from schemaretrieval import replicas
from schemaretrieval import schema as schema_lib
from schemaretrieval import training
from schemaretrieval.arguments import integer
from schemaretrieval.data import checks
from schemaretrieval.data.batches import Batches, example_batch
from schemaretrieval.data.catalog import Catalog, as_catalog
from schemaretrieval.data.exclusions import as_exclusions, catalog_positions
from schemaretrieval.data.loader import Loader, keras_input
from schemaretrieval.data.read import is_merlin_dataset, merlin_table, read_frame, require_columns
from schemaretrieval.data.validate import to_arrays
from schemaretrieval.evaluation.ranking import evaluate_ranking
from schemaretrieval.layers.encoder import Encoder, embeddings_frame, index_column
from schemaretrieval.models.defaults import DEFAULT_KS
from schemaretrieval.progress import Progress
from schemaretrieval.retrieval import losses as losses_lib
from schemaretrieval.retrieval.outputs import ContrastiveOutput, SampledOutput
from schemaretrieval.retrieval.topk import embedding_scorer
from schemaretrieval.training.callbacks import FiniteLoss
from schemaretrieval.training.defaults import DEFAULT_STEPS_PER_EXECUTION
from schemaretrieval.training.executions import whole_calls
from schemaretrieval.training.optimizers import default_optimizer
from schemaretrieval.training.svd_start import ITEM_ID_STARTS

__all__ = ["TwoTowerModelV2"]


@keras.saving.register_keras_serializable(package="schemaretrieval")
class TwoTowerModelV2(keras.Model):
    """A query tower and a candidate tower trained so that a query scores its
    positive item above the negatives, by the dot product of their outputs.

    `fit`, `evaluate` and `predict` are Keras's. They take what Keras takes
    (a `tf.data.Dataset` of feature dicts, dicts of arrays) and, besides, a
    pandas DataFrame or a parquet/csv path, batched from the schema with
    `batch_size`: `fit` on a table is `sr.training.fit`, the one training
    path (streaming, resume, early stopping, logs). `evaluate` reports the
    training loss on held-out data; `evaluate_topk` ranks the whole catalog.

    Args (Merlin Models' ``TwoTowerModelV2``'s, in its order):
        query_tower: an `Encoder` of the query (user) side.
        candidate_tower: an `Encoder` of the candidate (item) side.
        candidate_id_tag: the tag of the column that identifies a candidate.
        outputs: the loss layer; default `ContrastiveOutput` built from
            `negative_samplers` and `logits_temperature`. Giving `outputs`
            and either of those (a temperature other than 1.0) is an error:
            they belong to the output (Merlin ignores them).
        logits_temperature: for the default output.
        negative_samplers: for the default output ("in-batch" when None).
        schema: the whole schema, needed when the candidate tower does not
            read the id column itself; default both towers' schemas.
        item_id_start: None (Keras's initialiser) or "svd": `fit` on a
            table starts the item-id table from the training rows' SVD
            (`sr.training.start_item_ids`) when the model is not yet built.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> query = sr.Encoder(sr.schema.query_schema(schema), sr.MLPBlock([16]))
    >>> candidate = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([16]))
    >>> model = sr.TwoTowerModelV2(query, candidate, sr.Tags.ITEM_ID, logits_temperature=0.1)
    >>> model.compile(optimizer="adam", metrics=[sr.RecallAt(10)])
    >>> history = model.fit(sr.data.synthetic(schema, 2000, seed=0), batch_size=256, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['loss', 'recall_at_10']
    """

    def __init__(
        self,
        query_tower: Encoder,
        candidate_tower: Encoder,
        candidate_id_tag=Tags.ITEM_ID,
        outputs: ContrastiveOutput | None = None,
        logits_temperature: float = 1.0,
        negative_samplers=None,
        schema: Schema | None = None,
        item_id_start: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if item_id_start not in ITEM_ID_STARTS:
            raise ValueError(f"TwoTowerModelV2: item_id_start must be one of {ITEM_ID_STARTS}, got {item_id_start!r}")
        if isinstance(outputs, (list, tuple)):
            raise NotImplementedError("TwoTowerModelV2: a list of outputs (Merlin's multi-task) is not supported; "
                                      "give one ContrastiveOutput or BPROutput")
        if outputs is not None and (logits_temperature != 1.0 or negative_samplers is not None):
            raise ValueError(
                "TwoTowerModelV2: logits_temperature and negative_samplers configure the default output; "
                "with outputs= given, pass them to the output instead"
            )
        for name, tower in (("query_tower", query_tower), ("candidate_tower", candidate_tower)):
            if not isinstance(tower, Encoder):
                raise TypeError(f"TwoTowerModelV2: {name} must be an Encoder (sr.Encoder(schema, ...)), got "
                                f"{type(tower).__name__}")
        try:
            self.candidate_id_tag = Tags(candidate_id_tag)
        except ValueError:
            raise ValueError(f"TwoTowerModelV2: candidate_id_tag must be a merlin Tags (e.g. Tags.ITEM_ID), got "
                             f"{candidate_id_tag!r}") from None
        if outputs is None:
            samplers = "in-batch" if negative_samplers is None else negative_samplers
            outputs = ContrastiveOutput(negative_samplers=samplers, logits_temperature=logits_temperature)
        elif not isinstance(outputs, SampledOutput):
            raise TypeError(f"TwoTowerModelV2: outputs must be a ContrastiveOutput or BPROutput, got {outputs!r}")
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.output_layer = outputs
        self.schema = schema if schema is not None else query_tower.schema + candidate_tower.schema
        self._schema_given = schema is not None
        id_columns = self.schema.select_by_tag(self.candidate_id_tag).column_names
        if len(id_columns) != 1:
            raise ValueError(
                f"TwoTowerModelV2: expected one column tagged {self.candidate_id_tag.value!r} in the schema "
                f"(pass schema= when the candidate tower does not read it), found {id_columns}"
            )
        self.candidate_id_column = id_columns[0]
        target = getattr(outputs, "target_name", None)
        if target is not None and target not in self.schema.column_names:
            raise ValueError(f"TwoTowerModelV2: the output's target {target!r} is not a column of the schema "
                             f"{self.schema.column_names}")
        # The column whose ids are the positives: the output's target when it names one.
        self.positive_id_column = target or self.candidate_id_column
        user_ids = self.schema.select_by_tag(Tags.USER_ID).column_names
        self.query_id_column = user_ids[0] if user_ids else None
        if item_id_start == "svd" and self.query_id_column is None:
            raise ValueError('TwoTowerModelV2: item_id_start="svd" starts the item ids from the user x item '
                             "matrix and the schema tags no user_id column; tag one, or pass item_id_start=None")
        self.item_id_start = item_id_start

    @property
    def query_encoder(self) -> Encoder:
        """The query tower (Merlin's name); ``model.query_encoder.save(path)`` exports it."""
        return self.query_tower

    @property
    def candidate_encoder(self) -> Encoder:
        """The candidate tower (Merlin's name)."""
        return self.candidate_tower

    # Keras plumbing ------------------------------------------------------

    def _in_strategy(self) -> bool:
        """Whether the model was built in a tf.distribute strategy's scope (Keras keeps the
        strategy it was created under; None outside any)."""
        return getattr(self, "_distribute_strategy", None) is not None

    def compile(self, optimizer=None, loss=None, metrics=None, steps_per_execution=None, **kwargs):
        """Keras's `compile`; without an optimizer, the measured
        `default_optimizer()` (Adam 1e-3, fit ending on the moving average
        of the weights) rather than Keras's RMSprop; without
        ``steps_per_execution``, 16 rather than Keras's 1 (the same steps,
        fewer calls from Python: a callback's ``on_train_batch_end`` runs
        after each 16 steps), and 1 for a model built in a tf.distribute
        strategy's scope. A ``steps_per_epoch``, ``validation_steps`` or
        ``steps`` given to `fit`, `evaluate` or `predict` is run exactly
        (`sr.training.executions`), not rounded up to whole calls as Keras does.

        ``metrics``: Keras metrics on Merlin's form of each batch (the
        output's logits over the positive and the sampled negatives, the
        one-hot positive as ``y_true``), e.g. ``sr.RecallAt(10)``; without
        them, the output's ``default_metrics_fn()`` when it has one.
        ``loss``: None (the output's), a pairwise loss name or instance
        ("bpr", ...: `sr.losses`), "categorical_crossentropy" or a Keras
        loss, applied to that same form, as Merlin's ``compile(loss=)``."""
        if metrics is None and getattr(self.output_layer, "default_metrics_fn", None) is not None:
            metrics = self.output_layer.default_metrics_fn()
        self.__dict__["_batch_loss"] = losses_lib.compile_loss(loss)
        self.__dict__["_loss_argument"] = loss  # for get_compile_config: Keras's compile is not given it
        if steps_per_execution is None:
            # Under a strategy Keras's multi-step loop fails on TF 2.21 ("You must feed a value for
            # placeholder tensor", tests/training/test_distributed.py): one step a call there.
            steps_per_execution = 1 if self._in_strategy() else DEFAULT_STEPS_PER_EXECUTION
        super().compile(optimizer=default_optimizer() if optimizer is None else optimizer, metrics=metrics,
                        steps_per_execution=steps_per_execution, **kwargs)

    def get_compile_config(self):
        # The loss goes to the output's place (compute_loss), not to Keras's compile, whose
        # config would save it as None: a loaded model would train on the output's loss.
        config = super().get_compile_config()
        if config is not None and self.__dict__.get("_loss_argument") is not None:
            config["loss"] = keras.saving.serialize_keras_object(self.__dict__["_loss_argument"])
        return config

    def compile_from_config(self, config):
        # Keras's own skips any model whose compile is overridden; this one
        # only fills in a missing optimizer, so a loaded model compiles as saved.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, features, training=None):
        return {
            "query": self.query_tower(features, training=training),
            "candidate": self.candidate_tower(features, training=training),
        }

    def train_step(self, data):
        """Keras's step behind checks of the batch against the schema: a
        batch that did not come through `sr.data.to_arrays` (a user's
        tf.data) with ids beyond the embedding tables, NaN/inf or no rows
        fails naming the column and step, before any weight, sampler state
        or optimizer count moves. (Under `jit_compile=True` XLA drops the
        assertions; tables are checked by `to_arrays` either way.)"""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        assertions = checks.batch_assertions(x, self.schema, self.optimizer.iterations + 1)
        with tf.control_dependencies(assertions):
            return _multi_worker_logs(super().train_step(data))

    def predict_step(self, data):
        # Merlin's output outside training scores each row's own pair (its DotProduct): [B, 1]
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        towers = self(x, training=False)
        return ops.sum(ops.cast(towers["query"], "float32") * ops.cast(towers["candidate"], "float32"), axis=-1,
                       keepdims=True)

    def test_step(self, data):
        return _multi_worker_logs(super().test_step(data))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss, prediction = self.output_layer(
            y_pred["query"],
            y_pred["candidate"],
            x[self.positive_id_column],
            sample_weight=sample_weight,
            candidate_encoder=self.candidate_tower,
            training=training,
            return_prediction=True,
        )
        batch_loss = self.__dict__.get("_batch_loss")
        if batch_loss is not None:
            loss = batch_loss(prediction.targets, prediction.outputs, sample_weight)
        # compute_metrics, next in the same step, reads it. Under
        # MirroredStrategy each replica runs the step in its own thread: one
        # prediction per thread, or a replica would read another's.
        self.__dict__.setdefault("_predictions", {})[threading.get_ident()] = prediction
        if self.losses:
            # Each replica adds them; Keras sums the replicas' gradients.
            extra = ops.sum(ops.stack([ops.cast(l, loss.dtype) for l in self.losses]))
            loss = loss + extra / replicas.num_replicas()
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras's, on Merlin's form of the batch: ``y_true`` the one-hot positive, ``y_pred`` the
        output's logits (the `Prediction` of the loss just computed)."""
        prediction = self.__dict__.setdefault("_predictions", {}).pop(threading.get_ident(), None)
        if prediction is None:
            _, prediction = self.output_layer(y_pred["query"], y_pred["candidate"], x[self.positive_id_column],
                                              candidate_encoder=self.candidate_tower, return_prediction=True)
        return super().compute_metrics(x, prediction.targets, prediction.outputs, sample_weight=sample_weight)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, validation_data=None, shuffle=True,
            seed=None, callbacks=None, verbose="auto", catalog: Catalog | None = None, **kwargs):
        """Keras's `fit`; a DataFrame or path `x` goes through `sr.training.fit` (the one
        training path: batched from the schema, streamed when too large, resumable
        with ``checkpoint_dir=``, early stopping with ``early_stopping=``), and the
        result is a Keras ``History``. Unless given, a table's `epochs` follow its
        rows per item and its size (`sr.training.default_epochs`: 12 to 32, fewer
        past 3.3M rows; not Keras's 1), other input's are `DEFAULT_EPOCHS` (12), and
        a table's `batch_size` is `DEFAULT_BATCH_SIZE` (128) (docs/defaults.md). ``catalog=``: a `sr.data.Catalog` for samplers that
        draw from one and for ranking ``validation_data``. On a table, ``sample_weight=`` names a continuous
        column whose value weighs each row's loss (`sr.training.weights`); on Keras's inputs it is Keras's."""
        if isinstance(x, Loader):
            x = x.to_tf_dataset()
        if isinstance(validation_data, Loader):
            validation_data = validation_data.to_tf_dataset()
        if is_merlin_dataset(x):
            # Merlin's data set: the table it holds, through the one training path. The unique items
            # of it and of the validation data are the catalog validation ranks: nothing else gives one.
            x = merlin_table(x)
            if is_merlin_dataset(validation_data):
                validation_data = merlin_table(validation_data)
            if validation_data is not None and catalog is None and not self._has_default_catalog():
                catalog = _ranked_with_training_counts(x, validation_data, self.schema)
        if isinstance(x, np.ndarray):  # Keras would fail inside the towers, naming a SymbolicTensor
            raise TypeError(f"fit: x is an array of shape {x.shape}; the towers read named columns: give a table "
                            "(DataFrame or path), a dict of feature arrays or a tf.data.Dataset of dicts")
        if not _is_table(x):
            # as training.fit checks a table's: Keras's own fit takes 0 and -1 as no training at all
            if epochs is not None:
                epochs = integer(epochs, "fit", "epochs")
            if batch_size is not None:
                batch_size = integer(batch_size, "fit", "batch_size")
            if catalog is not None:
                self.set_catalog(catalog)
            if self.item_id_start == "svd" and not self.built and verbose != 0:
                print("fit: the item-id table keeps its initialiser: item_id_start='svd' reads the rows of a table; "
                      "before fit on Keras's inputs call sr.training.start_item_ids(model, rows)")
            self.check_ready_to_train()
            self._build_variables()
            if _is_table(validation_data):
                validation_data = Batches(validation_data, self.schema, batch_size or 1024,
                                          source="validation_data").dataset()
            # A tf.data.Dataset shuffles itself; Keras warns when asked to.
            shuffle = shuffle and not isinstance(x, tf.data.Dataset)
            epochs = training.DEFAULT_EPOCHS if epochs is None else epochs
            callbacks = list(callbacks or ())
            if not any(isinstance(callback, FiniteLoss) for callback in callbacks):  # sr.training.fit gives its own
                # first: a user's checkpoint after it never saves the diverged epoch
                weighed = " or the sample weights" if kwargs.get("sample_weight") is not None else ""
                callbacks.insert(0, FiniteLoss(epochs, lambda: weighed))
            with whole_calls(self, "fit", steps_per_epoch=kwargs.get("steps_per_epoch"),
                             validation_steps=kwargs.get("validation_steps")):
                return super().fit(x, y, batch_size=batch_size, epochs=epochs,
                                   validation_data=validation_data, shuffle=shuffle, callbacks=callbacks,
                                   verbose=verbose, **kwargs)
        if y is not None:
            raise ValueError("fit: a table carries its own columns; y= is for Keras's inputs")
        unknown = set(kwargs) - {"ks", "checkpoint_dir", "checkpoint_every", "log_dir", "csv_path",
                                 "early_stopping", "streaming", "sample_weight"}
        keras_only = unknown & {"steps_per_epoch", "validation_steps", "initial_epoch", "validation_freq",
                                "validation_batch_size", "validation_split", "class_weight"}
        if keras_only:
            raise TypeError(f"fit on a table or merlin.io.Dataset: {sorted(keras_only)} are Keras's fit arguments, "
                            "and a table trains through the library's path (sr.training.fit: whole epochs, "
                            "validation ranked over the catalog); give Keras's input for them: "
                            "model.fit(sr.Loader(dataset, batch_size=...), ...)")
        if unknown:
            raise TypeError(f"fit on a table: unexpected argument(s) {sorted(unknown)}; see sr.training.fit")
        history = training.fit(self, x, epochs=epochs, batch_size=batch_size,
                               seed=0 if seed is None else seed, shuffle=shuffle, validation_data=validation_data,
                               catalog=catalog, callbacks=callbacks or (), verbose=verbose, **kwargs)
        result = keras.callbacks.History()
        result.set_model(self)
        result.history = history
        return result

    def check_ready_to_train(self):
        """Raises, saying what to give, when a sampler or the query tower lacks what it reads."""
        if getattr(self.output_layer, "needs_catalog", lambda: False)():
            raise ValueError(
                "fit: a sampler draws from the catalog and has none; give it: "
                "model.fit(train, catalog=sr.data.Catalog.from_interactions(train, schema)) or model.set_catalog(...)")
        history = getattr(self.query_tower, "history", None)
        if history is not None and not history.has_interactions():
            raise ValueError(
                "fit: the query tower reads each user's training history and has none; give it first: "
                "model.set_history(train) (a table or path with the user-id and item-id columns)")

    def set_history(self, interactions):
        """Gives a query tower's `UserHistory` the training interactions: a table (or
        path) with the user-id and item-id columns; read two columns at a time."""
        history = getattr(self.query_tower, "history", None)
        if history is None:
            raise ValueError("set_history: the query tower has no UserHistory")
        users, items = history.user_id_column, history.item_id_column
        if isinstance(interactions, (str,)) or hasattr(interactions, "__fspath__"):
            from schemaretrieval.data import parquet

            if parquet.row_groups(interactions):
                columns = parquet.read_columns(interactions, [users, items])
                history.set_interactions(columns[users], columns[items])
                return
        frame, source = read_frame(interactions, "set_history")
        require_columns(frame, [users, items], source, "set_history (interactions: user id, item id)")
        history.set_interactions(np.asarray(frame[users]), np.asarray(frame[items]))

    def _build_variables(self):
        # Variables first created inside a traced training step cannot be
        # lifted out of an XLA-compiled function (jit_compile=True fails).
        if not self.built:
            self.build()
        if getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def set_catalog(self, catalog: Catalog):
        """Gives the samplers that draw from the catalog ("uniform", "popularity") or take
        its item counts (logQ of "in-batch" without counts, "cross-batch") a `sr.data.Catalog`.

        Build one with ``sr.data.Catalog.from_interactions(train, schema)`` (its
        counts are those rows'), or ``Catalog(table, schema, counts=...)``.
        """
        if not isinstance(catalog, Catalog):
            raise TypeError(f"set_catalog: expected a sr.data.Catalog, got {type(catalog).__name__}")
        # Checked against this model's schema, not the catalog's own: a catalog built from another
        # schema would feed the candidate tower ids outside its tables (a gather error in the graph).
        to_arrays(catalog.frame, self.schema.select_by_name(self.candidate_tower.column_names),
                  source="set_catalog: the catalog")
        self.output_layer.set_catalog(catalog, replace=True)
        # A traced training step holds the old catalog as constants.
        self.train_function = self.test_function = None

    def default_catalog(self, why: str) -> Catalog:
        """The catalog when none is given: every id of the item-id domain, which only a
        candidate tower that reads nothing but the id can rank; else an error saying ``why``."""
        try:
            return Catalog.of_domain(self.schema.select_by_name(self.candidate_tower.column_names))
        except ValueError as err:
            raise ValueError(f"{why}: give catalog= ({err})") from None

    def _has_default_catalog(self) -> bool:
        try:
            self.default_catalog("")
        except ValueError:
            return False
        return True

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """Keras's `evaluate`: the loss and the compiled metrics on held-out batches, each
        batch's positives against its sampled negatives (see `evaluate_topk` and
        `to_top_k_encoder` for the whole catalog). Takes a table, a ``merlin.io.Dataset``
        or a `Loader` too; on a table ``sample_weight=`` names a column, as for `fit`."""
        table = _is_table(x) or is_merlin_dataset(x)
        x, batch_size = keras_input(x, self.schema, batch_size, "evaluate", training.DEFAULT_BATCH_SIZE)
        if isinstance(sample_weight, str):
            if not table:
                raise TypeError(f"evaluate: sample_weight={sample_weight!r} names a column of a table; with Keras's "
                                "inputs give the weights as Keras takes them")
            column = training.weights.check_weight_column(self.schema, sample_weight, "evaluate")
            x, sample_weight = training.weights.weighted(x, column), None
        with whole_calls(self, "evaluate", steps=kwargs.get("steps")):
            return super().evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras's, as Merlin's: each row's score, the dot product of its query and candidate
        towers' outputs, [N, 1], in the rows' order; ``x`` may be a table, a ``merlin.io.Dataset``
        or a `Loader` too, as for `evaluate`. The towers' outputs themselves are
        `query_embeddings` and `candidate_embeddings`."""
        x, batch_size = keras_input(x, self.schema, batch_size, "predict", training.DEFAULT_BATCH_SIZE)
        with whole_calls(self, "predict", steps=kwargs.get("steps")):
            return super().predict(x, batch_size=batch_size, **kwargs)


    def get_config(self):
        config = {
            **super().get_config(),
            "query_tower": keras.saving.serialize_keras_object(self.query_tower),
            "candidate_tower": keras.saving.serialize_keras_object(self.candidate_tower),
            "outputs": keras.saving.serialize_keras_object(self.output_layer),
            "candidate_id_tag": self.candidate_id_tag.value,
        }
        if self.item_id_start is not None:
            config["item_id_start"] = self.item_id_start
        if self._schema_given:
            config["schema"] = schema_lib.schema_to_dict(self.schema)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("query_tower", "candidate_tower", "outputs"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        if "schema" in config:
            config["schema"] = schema_lib.schema_from_dict(config["schema"])
        return cls(**config)

    def build(self, input_shape=None):
        # The towers' weights take their shapes from a batch: one row of
        # in-domain values from the schema creates them (before fit, and
        # before a saved model's weights are loaded).
        outputs = self.call(example_batch(self.schema))
        if hasattr(self.output_layer, "build_samplers"):
            # Sampler state sized by the candidate embeddings (a memory bank).
            self.output_layer.build_samplers(outputs["candidate"].shape[-1])
        self.built = True

    def get_build_config(self):
        # Keras skips build_from_config when this is None: a model saved before
        # it was built has no weights to load either.
        return {"from": "schema"} if self.built else None

    def build_from_config(self, config):
        self.build()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's hook at the start of fit / evaluate / predict. Under a
        # tf.distribute strategy Keras builds what is unbuilt from the first
        # batch reduced over the replicas: a MEAN, which fails on a dict
        # under MultiWorkerMirroredStrategy and turns ids into floats under
        # MirroredStrategy. This model builds from its schema, in the
        # strategy's scope; Keras builds the rest (compiled metrics) from
        # one in-domain example row.
        if not self._in_strategy():  # Keras's own
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        with self.distribute_strategy.scope():
            if not self.built:
                self.build()
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
        return super()._maybe_symbolic_build(data_batch=example_batch(self.schema))

    # Embeddings and retrieval ---------------------------------------------

    def embed(self, tower: Encoder, data, batch_size: int = 4096) -> np.ndarray:
        """Runs one tower over a table (DataFrame, path, dict of arrays, ``merlin.io.Dataset``) or a `Catalog`."""
        if isinstance(data, Catalog):
            data = data.frame
        if is_merlin_dataset(data):
            data = merlin_table(data)
        schema = self.schema.select_by_name(tower.column_names)
        run = self._inference_function(tower)
        batches = Batches(data, schema, batch_size)
        what = "query tower" if tower is self.query_tower else "candidate tower"
        outputs = []
        with Progress(f"{what} over {batches.num_rows} rows", batches.steps, unit="batches") as progress:
            for batch in batches.dataset():
                outputs.append(np.asarray(run(batch), dtype="float32"))
                progress.update()
        return np.concatenate(outputs, axis=0)

    def _inference_function(self, tower):
        # One traced function per tower for the model's life: a new one per
        # call retraced (and warned) at every per-epoch evaluation. Kept out
        # of Keras's attribute tracking, which would wrap the dict.
        functions = self.__dict__.setdefault("_inference_functions", {})
        if id(tower) not in functions:
            functions[id(tower)] = tf.function(lambda batch: tower(batch, training=False), reduce_retracing=True)
        return functions[id(tower)]

    def _embeddings(self, tower, data, batch_size, index):
        """Merlin's return (a ``merlin.io.Dataset``, indexed by ``index``'s column when given) for a
        ``merlin.io.Dataset`` or an ``index``; the array [rows, dim] for a table, as before."""
        if index is None and not is_merlin_dataset(data):
            return self.embed(tower, data, batch_size)
        from merlin.io import Dataset

        if isinstance(data, Catalog):
            data = data.frame
        frame, _ = read_frame(data, "embeddings") if not isinstance(data, dict) else (pd.DataFrame(data), None)
        embeddings = self.embed(tower, frame, batch_size)
        if index is None:
            return Dataset(pd.concat([frame.reset_index(drop=True), embeddings_frame(embeddings)], axis=1))
        name = index_column(self.schema, index)
        require_columns(frame, [name], "embeddings", f"index={index!r}")
        return Dataset(embeddings_frame(embeddings, name, frame[name].to_numpy()))

    def query_embeddings(self, dataset=None, batch_size: int = 4096, index=None):
        """Query-tower outputs, one row per row of ``dataset``.

        As Merlin's: for a ``merlin.io.Dataset``, or with ``index`` (a column name, Tags
        such as ``Tags.USER_ID``, or a ColumnSchema), a ``merlin.io.Dataset`` whose columns
        "0", "1", ... hold the embeddings, indexed by that column (without ``index``: beside
        the input's columns). For a DataFrame, path, dict of arrays or `Catalog` and no
        ``index``, the array [rows, dim]. Without ``dataset``, as Merlin's, a tower that
        reads only its id embeds every id of the id's domain, indexed by the id."""
        if dataset is None:
            dataset, index = self._every_id(self.query_tower, "query_embeddings", index)
        return self._embeddings(self.query_tower, dataset, batch_size, index)

    def candidate_embeddings(self, dataset=None, batch_size: int = 4096, index=None):
        """Candidate-tower outputs, one row per row of ``dataset`` (a table, a `Catalog` or a
        ``merlin.io.Dataset``); ``index`` (e.g. ``Tags.ITEM_ID``) and no ``dataset`` as in
        `query_embeddings`."""
        if dataset is None:
            dataset, index = self._every_id(self.candidate_tower, "candidate_embeddings", index)
        return self._embeddings(self.candidate_tower, dataset, batch_size, index)

    def _every_id(self, tower, what, index):
        """(every id of the domain of a tower that reads only its id, the index): Merlin's data set of
        its embedding table when no data set is given."""
        names = tower.column_names
        if len(names) != 1:
            raise ValueError(f"{what}: without a data set only a tower that reads nothing but its id has one (every "
                             f"id of the domain); this one reads {names}: give the data set")
        low, high = schema_lib.columns.domain(self.schema[names[0]]) or (None, None)
        if high is None:
            schema_lib.cardinality(self.schema[names[0]])  # raises, naming the column
        return pd.DataFrame({names[0]: np.arange(int(low), int(high) + 1)}), names[0] if index is None else index

    def to_top_k_encoder(self, candidates=None, candidate_id=Tags.ITEM_ID, strategy="brute-force-topk",
                         k: int = 10, batch_size: int = 4096, **kwargs):
        """Merlin's top-k encoder: the query tower and an index of ``candidates``' embeddings
        (a ``merlin.io.Dataset`` or table of unique items, e.g. `sr.unique_rows_by_features`),
        identified by the ``candidate_id`` column. See `sr.models.topk_encoder.TopKEncoder`.

        Only Merlin's ``strategy="brute-force-topk"`` (exact, the library's one top-k engine)."""
        from schemaretrieval.models.topk_encoder import TopKEncoder

        if strategy != "brute-force-topk":
            raise NotImplementedError(f"to_top_k_encoder: strategy={strategy!r} is not supported (only "
                                      "'brute-force-topk'); for approximate search see sr.serving.indexes.Faiss")
        if kwargs:
            raise TypeError(f"to_top_k_encoder: unexpected argument(s) {sorted(kwargs)}")
        if candidates is None:
            candidates = self.default_catalog("to_top_k_encoder").frame
        if isinstance(candidates, Catalog):
            candidates = candidates.frame
        frame, _ = read_frame(candidates, "to_top_k_encoder")
        name = index_column(self.schema, candidate_id)
        require_columns(frame, [name], "to_top_k_encoder: candidates", f"candidate_id={candidate_id!r}")
        return TopKEncoder.from_candidate_dataset(self.query_tower, self.candidate_tower, frame, top_k=k,
                                                  index_column=name, batch_size=batch_size)

    def evaluate_topk(
        self,
        data,
        catalog=None,
        ks: Sequence[int] = DEFAULT_KS,
        exclude=None,
        batch_size: int = 4096,
    ) -> dict[str, float]:
        """Ranks the whole catalog for every row of `data` (one query per
        interaction; its item is the one relevant answer).

        Args:
            data: held-out interactions (DataFrame or path).
            catalog: a `sr.data.Catalog` (or a table with one row per item);
                None: every id of the item-id domain, when the candidate
                tower reads nothing but the id.
            ks: the cut-offs.
            exclude: an `sr.data.Exclusions`, or interactions (e.g. the
                training set), whose items are removed from the ranking of
                the same user, as TFRS's `query_with_exclusions`.

        Returns:
            {"recall@10": ..., "ndcg@10": ..., "mrr@10": ..., "precision@10": ...,
            "map@10": ..., ...} averaged over the queries.
        """
        data, _ = read_frame(data, "evaluate_topk")
        catalog = as_catalog(catalog, self.schema) if catalog is not None else self.default_catalog("evaluate_topk")
        scorer = embedding_scorer(self.query_embeddings(data, batch_size), self.candidate_embeddings(catalog, batch_size))
        exclude = as_exclusions(exclude, self.query_id_column, self.candidate_id_column, "evaluate_topk: exclude=")
        if exclude is not None:
            exclude = exclude.for_queries(data[self.query_id_column].to_numpy(), catalog.ids)
        return evaluate_ranking(
            scorer, catalog_positions(catalog.ids, data[self.candidate_id_column].to_numpy()), ks=ks, exclude=exclude
        )


def _ranked_with_training_counts(train, validation, schema) -> Catalog:
    """The items of both tables (validation ranks them all), counted in ``train`` alone: the samplers
    take their counts from the catalog, and validation rows must not change training."""
    trained = Catalog.from_interactions(train, schema)
    # train's item rows first, so that their features win, as the first occurrence does; train read once
    both = Catalog.from_interactions([trained.frame, validation], schema)
    return Catalog(both.frame, schema, counts=trained.counts_by_id(int(both.ids.max()) + 1)[both.ids.astype("int64")])


def _multi_worker_logs(logs):
    """A step's logs as Keras reduces them under MultiWorkerMirroredStrategy:
    Keras takes their MEAN along axis 0 there, which a scalar lacks ("Invalid
    reduction dimension 0 for input with 0 dimensions"); shape [1], their
    mean over the replicas is a scalar again. Elsewhere the logs unchanged."""
    if not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {key: ops.reshape(value, (1,)) if len(ops.shape(value)) == 0 else value for key, value in logs.items()}


def _is_table(data) -> bool:
    """A DataFrame or a path (what the model batches from the schema itself),
    rather than Keras's own inputs."""
    return isinstance(data, (pd.DataFrame, str)) or hasattr(data, "__fspath__")
