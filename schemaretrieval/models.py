"""The two-tower model: a query tower, a candidate tower and an output."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops
from merlin.schema import Schema, Tags

from schemaretrieval import distributed, evaluation
from schemaretrieval import history as history_lib
from schemaretrieval import schema as schema_lib
from schemaretrieval.data import checks, tables
from schemaretrieval.encoders import Encoder, MLPBlock
from schemaretrieval.inputs import DEFAULT_UNTRAINED_USER_IDS
from schemaretrieval.optimizers import default_optimizer
from schemaretrieval.outputs import ContrastiveOutput
from schemaretrieval.samplers import InBatchSampler

DEFAULT_KS = (1, 5, 10, 50, 100)
# With unit-length towers the logits are cosines in [-1, 1]; a softmax over
# them needs sharpening to learn (TwoTowerModel's default). The defaults here
# were chosen by the measured searches in docs/quality.md, on real
# MovieLens-100K and the MovieLens-100K-shaped preset: 0.2 beat 0.05 and 0.1
# at every epoch count; batches of 128 (more steps) beat 1024.
DEFAULT_TEMPERATURE = 0.2
#: fit's batch size for a DataFrame or path when none is given.
DEFAULT_BATCH_SIZE = 128
#: fit's number of epochs when none is given (Keras's own is 1), and the CLI's.
DEFAULT_EPOCHS = 12
# Round 2 of the search (real MovieLens-100K, docs/quality.md): ids 64 wide
# rather than Merlin's 16, with half of the query tower's input dropped in
# training, lifted every recall figure at once (@10 0.049 -> 0.051, @100
# 0.388 -> 0.397, and with seen items excluded @10 0.161 -> 0.164); either
# alone moved the figures with and without exclusion in opposite directions
# (wider ids memorise each user's training items, dropout forgets them).
DEFAULT_ID_EMBEDDING_DIM = 64
DEFAULT_QUERY_INPUT_DROPOUT = 0.5
# Round 3 (docs/quality.md): a query tower that reads the user's training
# history instead of the user-id embedding (user_history=True) did best
# with sharper logits and less input dropout.
DEFAULT_HISTORY_TEMPERATURE = 0.1
DEFAULT_HISTORY_QUERY_INPUT_DROPOUT = 0.25
# Round 5 (docs/quality.md, section 8): log(probability) weighed 1.1 rather
# than 1 raised every figure on real MovieLens-100K over three splits but
# recall@100 with seen items excluded (x@10 +0.002, x@100 -0.002), with
# either tower; on the preset it traded 0.001-0.002 of x@10 for the
# unexcluded figures.
DEFAULT_LOGQ_CORRECTION = 1.1


@keras.saving.register_keras_serializable(package="schemaretrieval")
class TwoTowerModelV2(keras.Model):
    """A query tower and a candidate tower trained so that a query scores its
    positive item above the negatives, by the dot product of their outputs.

    `fit`, `evaluate` and `predict` are Keras's. They take what Keras takes
    (a `tf.data.Dataset` of feature dicts, dicts of arrays) and, besides, a
    pandas DataFrame or a parquet/csv path, batched from the schema with
    `batch_size`. `evaluate` reports the training loss on held-out data;
    `evaluate_topk` ranks the whole catalog.

    Args:
        query_tower: an `Encoder` of the query (user) side.
        candidate_tower: an `Encoder` of the candidate (item) side.
        outputs: the loss layer; default `ContrastiveOutput` built from
            `negative_samplers` and `logits_temperature`. Giving both
            `outputs` and either of those is an error: they belong to the
            output.
        logits_temperature: for the default output (1.0 when None).
        negative_samplers: for the default output ("in-batch" when None).
        candidate_id_tag: the tag of the column that identifies a candidate.
        schema: the whole schema, needed when the candidate tower does not
            read the id column itself; default both towers' schemas.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> query = sr.Encoder(sr.schema.query_schema(schema), sr.MLPBlock([16]))
    >>> candidate = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([16]))
    >>> model = sr.TwoTowerModelV2(query, candidate, logits_temperature=0.1)
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(sr.data.synthetic(schema, 2000, seed=0), batch_size=256, verbose=0)
    """

    def __init__(
        self,
        query_tower: Encoder,
        candidate_tower: Encoder,
        outputs: ContrastiveOutput | None = None,
        logits_temperature: float | None = None,
        negative_samplers=None,
        candidate_id_tag=Tags.ITEM_ID,
        schema: Schema | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if outputs is not None and (logits_temperature is not None or negative_samplers is not None):
            raise ValueError(
                "TwoTowerModelV2: logits_temperature and negative_samplers configure the default output; "
                "with outputs= given, pass them to the output instead"
            )
        if outputs is None:
            outputs = ContrastiveOutput(
                negative_samplers=negative_samplers or "in-batch",
                logits_temperature=1.0 if logits_temperature is None else logits_temperature,
            )
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.output_layer = outputs
        self.candidate_id_tag = Tags(candidate_id_tag)
        self.schema = schema if schema is not None else query_tower.schema + candidate_tower.schema
        self._schema_given = schema is not None
        id_columns = self.schema.select_by_tag(self.candidate_id_tag).column_names
        if len(id_columns) != 1:
            raise ValueError(
                f"TwoTowerModelV2: expected one column tagged {self.candidate_id_tag.value!r} in the schema "
                f"(pass schema= when the candidate tower does not read it), found {id_columns}"
            )
        self.candidate_id_column = id_columns[0]
        user_ids = self.schema.select_by_tag(Tags.USER_ID).column_names
        self.query_id_column = user_ids[0] if user_ids else None

    # Keras plumbing ------------------------------------------------------

    def compile(self, optimizer=None, **kwargs):
        """Keras's `compile`; without an optimizer, the measured
        `default_optimizer()` (Adam 1e-3, fit ending on the moving average
        of the weights) rather than Keras's RMSprop."""
        super().compile(optimizer=default_optimizer() if optimizer is None else optimizer, **kwargs)

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
        batch that did not come through `tables.to_arrays` (a user's
        tf.data) with ids beyond the embedding tables, NaN/inf or no rows
        fails naming the column and step, before any weight, sampler state
        or optimizer count moves. (Under `jit_compile=True` XLA drops the
        assertions; tables are checked by `to_arrays` either way.)"""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        assertions = checks.batch_assertions(x, self.schema, self.optimizer.iterations + 1)
        with tf.control_dependencies(assertions):
            return super().train_step(data)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.output_layer(
            y_pred["query"],
            y_pred["candidate"],
            x[self.candidate_id_column],
            sample_weight=sample_weight,
            candidate_encoder=self.candidate_tower,
            training=training,
        )
        if self.losses:
            # Each replica adds them; Keras sums the replicas' gradients.
            extra = ops.sum(ops.stack([ops.cast(l, loss.dtype) for l in self.losses]))
            loss = loss + extra / distributed.num_replicas()
        return loss

    def _batches(self, data, batch_size, shuffle, seed=None, source=None):
        """Keras's own inputs pass through; tables become batched datasets
        (`source` names a DataFrame read from a file in errors)."""
        if _is_table(data):
            return tables.to_tf_dataset(data, self.schema, batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle,
                                        seed=seed, source=source), None
        return data, batch_size

    def fit(self, x=None, y=None, batch_size=None, epochs=DEFAULT_EPOCHS, validation_data=None, shuffle=True,
            seed=None, **kwargs):
        """Keras's `fit`; a DataFrame or path `x` is batched and shuffled from the schema.
        Samplers that draw from the catalog and have none get it from `x`
        (see `set_catalog`). Unless given, `epochs` is the measured
        `DEFAULT_EPOCHS` (12), not Keras's 1, and a table's `batch_size`
        is `DEFAULT_BATCH_SIZE` (128): docs/quality.md."""
        self._remember_seen(x)
        table, source = _read_once(x)
        # The rows are checked before the catalog is taken from them, so that
        # bad input is named by its file and row, not as the catalog's.
        x, batch_size = self._batches(table, batch_size, shuffle, seed, source)
        self._hand_over_catalog(table)
        self._fill_history(table)
        self._build_variables()
        if validation_data is not None:
            validation_data, _ = self._batches(validation_data, batch_size or 1024, False)
        # A tf.data.Dataset shuffles itself; Keras warns when asked to.
        shuffle = shuffle and not isinstance(x, tf.data.Dataset)
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data,
                           shuffle=shuffle, **kwargs)

    def _fill_history(self, x):
        """A query tower with a `UserHistory` reads the users' items from the
        table trained on (after `_batches` has checked its ids)."""
        history = getattr(self.query_tower, "history", None)
        if history is None:
            return
        users, items = history.user_id_column, history.item_id_column
        if isinstance(x, pd.DataFrame):
            columns = x
        elif _is_table(x):  # fit has read every other path (_read_once)
            from schemaretrieval.data import streaming

            columns = streaming.read_columns(x, [users, items])
        else:
            if not history.has_interactions():
                raise ValueError(
                    "fit: the query tower reads each user's training history and has none; fit on a DataFrame "
                    "or path (the history is taken from it), or call model.set_history(interactions) first"
                )
            return
        history.set_interactions(np.asarray(columns[users]), np.asarray(columns[items]))

    def set_history(self, interactions):
        """Gives a query tower's `UserHistory` the training interactions
        (a table with the user-id and item-id columns, or a path), for
        `fit` on a `tf.data.Dataset`; `fit` on a table does it itself."""
        history = getattr(self.query_tower, "history", None)
        if history is None:
            raise ValueError("set_history: the query tower has no UserHistory")
        frame = tables.as_frame(interactions, "set_history")
        tables._require_columns(frame, [history.user_id_column, history.item_id_column], "set_history",
                                "interactions (user id, item id)")
        self._fill_history(frame)

    def _build_variables(self):
        # Variables first created inside a traced training step cannot be
        # lifted out of an XLA-compiled function (jit_compile=True fails).
        if not self.built:
            self.build()
        if getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def set_catalog(self, candidates, item_counts=None):
        """Gives the samplers that draw from the catalog ("uniform",
        "popularity") every item with its features and the item counts.

        Args:
            candidates: a table with one row per item (e.g.
                `sr.data.candidate_table(interactions, schema)`), a path, or
                a `sr.CandidateTable`.
            item_counts: counts indexed by item id, or an interactions table
                to count them in (needed by "popularity").
        """
        from schemaretrieval.samplers import CandidateTable

        if not isinstance(candidates, CandidateTable):
            candidates = CandidateTable(self.catalog(candidates), self.schema)
        if isinstance(item_counts, pd.DataFrame):
            item_counts = CandidateTable.item_counts(item_counts, self.candidate_id_column)
        self.output_layer.set_catalog(candidates, item_counts, replace=True)
        # A traced training step holds the old catalog as constants.
        self.train_function = self.test_function = None

    def _hand_over_catalog(self, x):
        """Samplers that want the catalog or item counts take them from the
        table `x` (a DataFrame, or a path too large to read whole)."""
        wants = getattr(self.output_layer, "wants_catalog", None)
        if wants is None or not wants():
            return
        if not _is_table(x):
            if not self.output_layer.needs_catalog():
                return  # only item counts (logQ) were wanted
            raise ValueError(
                "fit: a sampler draws from the catalog and has none; fit on a DataFrame or path (the catalog "
                "and item counts are taken from it), or call model.set_catalog(candidates, item_counts) first"
            )
        from schemaretrieval.data import streaming

        if not isinstance(x, pd.DataFrame) and streaming.use_streaming(x):
            # too large to load: the catalog and counts are gathered row group by row group
            from schemaretrieval.samplers import CandidateTable

            self.output_layer.set_catalog(
                CandidateTable(streaming.candidate_table(x, self.schema), self.schema),
                streaming.item_counts(x, self.candidate_id_column,
                                      schema_lib.cardinality(self.schema[self.candidate_id_column])),
            )
            self.train_function = self.test_function = None
            return
        x = tables.as_frame(x, "fit")
        self.output_layer.set_catalog(
            _candidate_table(x, self.schema),
            np.bincount(
                x[self.candidate_id_column].to_numpy().astype("int64"),
                minlength=schema_lib.cardinality(self.schema[self.candidate_id_column]),
            ),
        )
        self.train_function = self.test_function = None

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Keras's `evaluate`: the loss on held-out batches (see `evaluate_topk`)."""
        x, batch_size = self._batches(x, batch_size, False)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def get_config(self):
        config = {
            **super().get_config(),
            "query_tower": keras.saving.serialize_keras_object(self.query_tower),
            "candidate_tower": keras.saving.serialize_keras_object(self.candidate_tower),
            "outputs": keras.saving.serialize_keras_object(self.output_layer),
            "candidate_id_tag": self.candidate_id_tag.value,
        }
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
        outputs = self.call(tables.example_batch(self.schema))
        if hasattr(self.output_layer, "build_samplers"):
            # Sampler state sized by the candidate embeddings (a memory bank).
            self.output_layer.build_samplers(outputs["candidate"].shape[-1])
        self.built = True

    def get_build_config(self):
        # Keras skips build_from_config when this is empty.
        return {"from": "schema"}

    def build_from_config(self, config):
        self.build()

    # Embeddings and retrieval ---------------------------------------------

    def embed(self, tower: Encoder, data, batch_size: int = 4096) -> np.ndarray:
        """Runs one tower over a table (DataFrame, path or dict of arrays)."""
        schema = self.schema.select_by_name(tower.column_names)
        dataset = tables.to_tf_dataset(data, schema, batch_size, shuffle=False)
        run = self._inference_function(tower)
        return np.concatenate([np.asarray(run(batch), dtype="float32") for batch in dataset], axis=0)

    def _inference_function(self, tower):
        # One traced function per tower for the model's life: a new one per
        # call retraced (and warned) at every per-epoch evaluation. Kept out
        # of Keras's attribute tracking, which would wrap the dict.
        functions = self.__dict__.setdefault("_inference_functions", {})
        if id(tower) not in functions:
            functions[id(tower)] = tf.function(lambda batch: tower(batch, training=False), reduce_retracing=True)
        return functions[id(tower)]

    def query_embeddings(self, data, batch_size: int = 4096) -> np.ndarray:
        """Query-tower outputs, one row per row of `data`."""
        return self.embed(self.query_tower, data, batch_size)

    def candidate_embeddings(self, candidates, batch_size: int = 4096) -> np.ndarray:
        """Candidate-tower outputs, one row per row of `candidates`."""
        return self.embed(self.candidate_tower, candidates, batch_size)

    def catalog(self, candidates=None) -> pd.DataFrame:
        """The candidate table: the given one, or every id of the item-id
        domain when the candidate tower reads nothing but the id."""
        if candidates is not None:
            return tables.as_frame(candidates, "candidates")
        if self.candidate_tower.column_names != [self.candidate_id_column]:
            raise ValueError(
                "candidates=None: the catalog can be every id of the item-id domain only when the candidate "
                f"tower reads nothing else, and it reads {self.candidate_tower.column_names}; pass candidates= "
                "a table of every item with its features, e.g. sr.data.candidate_table(all_interactions, schema)"
            )
        domain = self.schema[self.candidate_id_column].int_domain
        return pd.DataFrame({self.candidate_id_column: np.arange(domain.min, domain.max + 1)})

    def evaluate_topk(
        self,
        data,
        candidates=None,
        ks: Sequence[int] = DEFAULT_KS,
        exclude: pd.DataFrame | None = None,
        batch_size: int = 4096,
        exclude_seen: bool = False,
    ) -> dict[str, float]:
        """Ranks the whole catalog for every row of `data` (one query per
        interaction; its item is the one relevant answer).

        Args:
            data: held-out interactions (DataFrame or path).
            candidates: the catalog, a table with one row per item and its
                features (see `catalog`).
            ks: the cut-offs.
            exclude: interactions (e.g. the training set) whose items are
                removed from the ranking of the same user, as TFRS's
                `query_with_exclusions`: k results are still ranked.
            exclude_seen: exclude the interactions of the last `fit` on a
                table (DataFrame or path), which the model keeps a
                reference to; the same as `exclude=train`. Not kept by
                `save`: after `load_model`, pass `exclude=` instead.

        Returns:
            {"recall@10": ..., "ndcg@10": ..., "mrr@10": ..., "precision@10": ...,
            "map@10": ..., ...} averaged over the queries.
        """
        data = tables.as_frame(data, "evaluate_topk")
        if exclude_seen:
            exclude = self._seen(exclude)
        catalog = self.catalog(candidates)
        candidate_ids = catalog[self.candidate_id_column].to_numpy()
        scorer = evaluation.embedding_scorer(
            self.query_embeddings(data, batch_size), self.candidate_embeddings(catalog, batch_size)
        )
        return evaluation.evaluate_ranking(
            scorer,
            evaluation.item_positions(candidate_ids, data[self.candidate_id_column].to_numpy()),
            ks=ks,
            exclude=self._exclusions(data, exclude, candidate_ids),
        )

    def recommend(self, user_features, k: int = 10, candidates=None, exclude=None, exclude_seen: bool = False):
        """Top-k (scores, item ids) per user row; see `schemaretrieval.serving.recommend`."""
        from schemaretrieval import serving  # serving sits above models

        return serving.recommend(self, user_features, k, candidates=candidates, exclude=exclude,
                                 exclude_seen=exclude_seen)

    def _remember_seen(self, x):
        # A reference, not a copy: what exclude_seen=True excludes.
        self._seen_interactions = x if _is_table(x) else None

    def _seen(self, exclude, caller="evaluate_topk", instead="exclude=train_interactions"):
        """The interactions of the last `fit` on a table, what `exclude_seen=True`
        means for `caller` (whose other way to say it is `instead`)."""
        if exclude is not None:
            raise ValueError(f"{caller}: give exclude= or exclude_seen=True, not both")
        seen = getattr(self, "_seen_interactions", None)
        if seen is None:
            raise ValueError(
                f"{caller}: exclude_seen=True needs the training interactions; this model was not fit on "
                f"a table (DataFrame or path) in this process, so pass {instead}"
            )
        return tables.as_frame(seen, "exclude_seen")

    def _exclusion_table(self, exclude, caller):
        """`exclude` as a DataFrame of interactions with the user and item id columns."""
        if self.query_id_column is None:
            raise ValueError(f"{caller}: exclude= needs a column tagged user_id to match queries to users")
        exclude = tables.as_frame(exclude, f"{caller}: exclude")
        # An empty table is a valid "exclude nothing".
        tables._require_columns(exclude, [self.query_id_column, self.candidate_id_column], caller,
                                "exclude= (interactions: user id, item id)", allow_empty=True)
        return exclude

    def _exclusions(self, data, exclude, candidate_ids, caller="evaluate_topk"):
        """CSR catalog positions of the items each row's user has in `exclude`
        (see `evaluation.exclusion_positions`); None without `exclude`."""
        if exclude is None:
            return None
        exclude = self._exclusion_table(exclude, caller)
        return evaluation.exclusion_positions(
            data[self.query_id_column].to_numpy(),
            exclude[self.query_id_column].to_numpy(),
            exclude[self.candidate_id_column].to_numpy(),
            candidate_ids,
        )


def _is_table(data) -> bool:
    """A DataFrame or a path (what the model batches from the schema itself),
    rather than Keras's own inputs."""
    return isinstance(data, (pd.DataFrame, str)) or hasattr(data, "__fspath__")


def _read_once(data):
    """(`data`, how errors name it): a path that is not streamed (csv, or
    parquet that fits in memory) is read here, once, for the batches, the
    catalog and the history alike."""
    if not _is_table(data):
        return data, None
    from schemaretrieval.data import streaming

    if not isinstance(data, pd.DataFrame) and streaming.use_streaming(data):
        return data, None
    return tables._frame_from(data, "fit")


def _candidate_table(interactions, schema):
    from schemaretrieval.samplers import CandidateTable

    return CandidateTable(tables.candidate_table(interactions, schema), schema)


def TwoTowerModel(
    schema: Schema,
    query_units: Sequence[int] = (64,),
    candidate_units: Sequence[int] = (64,),
    dropout: float = 0.0,
    l2_normalize: bool = True,
    logits_temperature: float | None = None,
    negative_samplers=None,
    logq_correction: bool | float = DEFAULT_LOGQ_CORRECTION,
    outputs: ContrastiveOutput | None = None,
    id_embedding_dim: int | None = DEFAULT_ID_EMBEDDING_DIM,
    query_input_dropout: float | None = None,
    user_history: bool = False,
    history_keep_rate: float = history_lib.DEFAULT_KEEP_RATE,
    history_max_length: int = history_lib.DEFAULT_MAX_LENGTH,
    untrained_user_ids: str | None = DEFAULT_UNTRAINED_USER_IDS,
) -> TwoTowerModelV2:
    """A `TwoTowerModelV2` built from the schema's tags alone.

    Columns tagged user form the query tower, columns tagged item the
    candidate tower (targets excluded); each tower is an `MLPBlock` with a
    linear last layer, then, with `l2_normalize`, unit-length outputs so
    that scores are cosines sharpened by `logits_temperature`.

    The negatives, unless given, are in-batch, corrected by a streaming
    estimate of each item's copies per batch (`logq_correction`: the
    weight of the correction, as `ContrastiveOutput` takes it; True is 1).
    docs/quality.md has the measurements behind every default.

    Args:
        dropout: the dropout rate between each tower's dense layers (towers
            of one layer, the default, have none: giving it is an error).
        logits_temperature: None picks the measured one: 0.2, or 0.1 with
            `user_history`.
        query_input_dropout: the dropout rate on the query tower's input
            (its features' embeddings, concatenated) in training: it keeps
            the model from memorising each user's training items through
            the user-id embedding. None picks the measured one: 0.5, or
            0.25 with `user_history`.
        id_embedding_dim: the narrowest embedding of the user-id and item-id
            columns whose schema gives no `embedding_dim` (Merlin's rule
            when it is wider); None keeps the rule.
        user_history: the query tower reads each user's training items (a
            `UserHistory`, filled by `fit` from the table it trains on)
            instead of the user-id embedding. Not the default: see
            docs/quality.md, round 3, for where it helps.
        history_keep_rate, history_max_length: the `UserHistory`'s.
        untrained_user_ids: "mean": a user id that no training batch read
            (a user new since training: the ETL's out-of-vocabulary id)
            reads the mean of the trained user-id rows instead of its
            row's random initial values; None keeps the row. Measured on
            users new in a split by time (docs/quality.md, section 16).

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    """
    schema_lib.validate_for_retrieval(schema)
    schema_lib.require_domains(schema)
    if id_embedding_dim is not None:
        schema = _widen_id_embeddings(schema, int(id_embedding_dim))
    if dropout and min(len(query_units), len(candidate_units)) < 2:
        raise ValueError(
            f"TwoTowerModel: dropout={dropout} applies between a tower's dense layers and a tower has one "
            f"(query_units={tuple(query_units)}, candidate_units={tuple(candidate_units)}); give more layers, "
            "or use query_input_dropout= for the query tower's input"
        )
    user_id = schema_lib.user_id_column(schema)
    if user_history and user_id is None:
        raise ValueError(
            "TwoTowerModel: user_history=True reads each user's training items by the column tagged user_id, "
            "and the schema has none; tag one, or pass user_history=False"
        )
    if query_input_dropout is None:
        query_input_dropout = DEFAULT_HISTORY_QUERY_INPUT_DROPOUT if user_history else DEFAULT_QUERY_INPUT_DROPOUT
    if logits_temperature is None and outputs is None:
        logits_temperature = DEFAULT_HISTORY_TEMPERATURE if user_history else DEFAULT_TEMPERATURE
    if not 0.0 <= query_input_dropout < 1.0:
        raise ValueError(f"TwoTowerModel: query_input_dropout must be in [0, 1), got {query_input_dropout}")

    def tower(columns, units, input_dropout=0.0, history=None):
        blocks = [keras.layers.Dropout(input_dropout)] if input_dropout else []
        blocks.append(MLPBlock(list(units), dropout=dropout, no_activation_last_layer=True))
        if l2_normalize:
            blocks.append(keras.layers.UnitNormalization())
        return Encoder(columns, *blocks, history=history, untrained_user_ids=untrained_user_ids)

    query_columns, history = schema_lib.query_schema(schema), None
    if user_history:
        item_id = schema_lib.item_id_column(schema)
        # The history stands in for the user-id embedding: with both, the
        # id memorises each user's training items (docs/quality.md, round 3).
        query_columns = query_columns.excluding_by_name([user_id])
        history = history_lib.UserHistory(
            num_users=schema_lib.cardinality(schema[user_id]),
            num_items=schema_lib.cardinality(schema[item_id]),
            output_dim=schema_lib.embedding_dim(schema[item_id]),
            user_id_column=user_id,
            item_id_column=item_id,
            max_length=history_max_length,
            keep_rate=history_keep_rate,
            name="user_history",
        )

    if outputs is None:
        # In-batch negatives over-penalise popular items; the streaming
        # frequency estimate corrects them without needing item counts.
        outputs = ContrastiveOutput(
            negative_samplers=negative_samplers
            or InBatchSampler(num_items=schema_lib.cardinality(schema[schema_lib.item_id_column(schema)])),
            logits_temperature=logits_temperature,
            logq_correction=logq_correction,
        )
    elif logits_temperature is not None or negative_samplers is not None:  # left as given when outputs= is
        raise ValueError(
            "TwoTowerModel: logits_temperature and negative_samplers configure the default output; "
            "with outputs= given, pass them to the output instead"
        )
    return TwoTowerModelV2(
        tower(query_columns, query_units, query_input_dropout, history),
        tower(schema_lib.candidate_schema(schema), candidate_units),
        outputs=outputs,
        schema=schema,
    )


def _widen_id_embeddings(schema: Schema, dim: int) -> Schema:
    ids = {schema_lib.item_id_column(schema), schema_lib.user_id_column(schema)}
    columns = []
    for col in schema:
        if col.name in ids and col.properties.get("embedding_dim") is None and schema_lib.embedding_dim(col) < dim:
            col = col.with_properties({**col.properties, "embedding_dim": dim})
        columns.append(col)
    return Schema(columns)
