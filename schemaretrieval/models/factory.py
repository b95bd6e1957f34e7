"""`TwoTowerModel(schema)`: a `TwoTowerModelV2` built from the schema's tags alone, with the measured defaults."""

from __future__ import annotations

import numbers
from typing import Sequence

import keras
from merlin.schema import Schema

from schemaretrieval import schema as schema_lib
from schemaretrieval.arguments import flag, integer, number
from schemaretrieval.layers import history as history_lib
from schemaretrieval.layers.encoder import Encoder
from schemaretrieval.layers.input_block import check_table_fits
from schemaretrieval.layers.mlp import MLPBlock
from schemaretrieval.models.defaults import (
    DEFAULT_HISTORY_QUERY_INPUT_DROPOUT,
    DEFAULT_HISTORY_TEMPERATURE,
    DEFAULT_LOGQ_CORRECTION,
    DEFAULT_QUERY_INPUT_DROPOUT,
    DEFAULT_TEMPERATURE,
    DEFAULT_UNTRAINED_USER_IDS,
    FEW_USERS_CANDIDATE_INPUT_DROPOUT,
    FEW_USERS_LOGQ_CORRECTION,
    default_id_embedding_dim,
    few_users_per_item,
)
from schemaretrieval.models.two_tower import TwoTowerModelV2
from schemaretrieval.retrieval.outputs import ContrastiveOutput
from schemaretrieval.retrieval.samplers import InBatchSampler
from schemaretrieval.training.svd_start import ITEM_ID_STARTS

__all__ = ["TwoTowerModel"]


def TwoTowerModel(
    schema: Schema,
    query_units: Sequence[int] = (64,),
    candidate_units: Sequence[int] = (64,),
    dropout: float = 0.0,
    l2_normalize: bool = True,
    logits_temperature: float | None = None,
    negative_samplers=None,
    logq_sampling_correction: bool | float | None = None,
    outputs: ContrastiveOutput | None = None,
    id_embedding_dim: int | str | None = "auto",
    query_input_dropout: float | None = None,
    candidate_input_dropout: float | None = None,
    user_history: bool = False,
    history_keep_rate: float = history_lib.DEFAULT_KEEP_RATE,
    history_max_length: int = history_lib.DEFAULT_MAX_LENGTH,
    untrained_user_ids: str | None = DEFAULT_UNTRAINED_USER_IDS,
    item_id_start: str | None = "auto",
) -> TwoTowerModelV2:
    """A `TwoTowerModelV2` built from the schema's tags alone.

    Columns tagged user, context or session form the query tower, columns
    tagged item the candidate tower (targets excluded; every other column is
    read or refused by `schema.check_towers`); each tower is an `MLPBlock`
    with a linear last layer, then, with `l2_normalize`, unit-length outputs
    so that scores are cosines sharpened by `logits_temperature`.

    The negatives, unless given, are in-batch, corrected by a streaming
    estimate of each item's copies per batch (`logq_sampling_correction`:
    the weight of the correction after the temperature, as
    `ContrastiveOutput` takes a number; True is Merlin's, before it).
    docs/defaults.md has the evidence behind every default.

    The few-users rule: where the schema's domains give fewer than 0.25 user
    ids per item id (`few_users_per_item`), the candidate tower reads item
    features besides the id, and the query tower reads the user id (not
    ``user_history``), the three options left to the model default to the
    few-users point: ``candidate_input_dropout`` 0.3,
    ``logq_sampling_correction`` 1.35 and ``item_id_start`` "svd"; elsewhere
    to 0, 1.1 and None. An option given is kept as given.

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
        logq_sampling_correction: None picks the measured weight: 1.1, or
            1.35 under the few-users rule.
        candidate_input_dropout: the same on the candidate tower's input
            (its features' embeddings): with item features, the item id
            then shares what they say. None picks the measured rate: 0, or
            0.3 under the few-users rule.
        id_embedding_dim: the width of the user-id and item-id embeddings
            whose schema gives no `embedding_dim`. "auto" is the measured
            rule of the catalog's size, `default_id_embedding_dim` of the
            item-id count (64 up to 2,000 items, wider with the catalog, at
            most 128); an int is the narrowest width (Merlin's rule when it
            is wider); None keeps Merlin's rule.
        user_history: the query tower reads each user's training items (a
            `UserHistory`, filled by `fit` from the table it trains on)
            instead of the user-id embedding; give its interactions with
            ``model.set_history(train)`` before `fit`. Not the default
            (docs/defaults.md).
        history_keep_rate, history_max_length: the `UserHistory`'s; given without
            `user_history=True`, an error (nothing would read them).
        untrained_user_ids: "mean": a user id that no training batch read
            (a user new since training: the ETL's out-of-vocabulary id)
            reads the mean of the trained user-id rows instead of its
            row's random initial values; None keeps the row (docs/defaults.md).
        item_id_start: "svd": the first `fit` on a table starts the
            item-id table from the SVD of the rows it trains on
            (`sr.training.start_item_ids`); None: Keras's initialiser;
            "auto" (the default): "svd" under the few-users rule, else None.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> model.item_id_start, model.output_layer.logq_sampling_correction  # 2,000 users, 3,000 items: not few
    (None, 1.1)
    """
    schema_lib.require_schema(schema, "TwoTowerModel")
    l2_normalize = flag(l2_normalize, "TwoTowerModel", "l2_normalize")
    user_history = flag(user_history, "TwoTowerModel", "user_history")
    for name, units in (("query_units", query_units), ("candidate_units", candidate_units)):
        if not isinstance(units, (list, tuple)) or not units:
            raise ValueError(f"TwoTowerModel: {name} must be a non-empty list of layer widths, got {units!r}")
        for i, width in enumerate(units):
            integer(width, "TwoTowerModel", f"{name}[{i}]")
    if query_units[-1] != candidate_units[-1]:  # the score is their dot product
        raise ValueError(f"TwoTowerModel: the towers' last widths must be equal (the score is the dot product of "
                         f"their outputs), got query_units {tuple(query_units)} and candidate_units "
                         f"{tuple(candidate_units)}")
    dropout = number(dropout, "TwoTowerModel", "dropout", at_least=0, below=1)
    history_keep_rate = number(history_keep_rate, "TwoTowerModel", "history_keep_rate", above=0, at_most=1)
    history_max_length = integer(history_max_length, "TwoTowerModel", "history_max_length")
    unread = [name for name, value, default in (
        ("history_keep_rate", history_keep_rate, history_lib.DEFAULT_KEEP_RATE),
        ("history_max_length", history_max_length, history_lib.DEFAULT_MAX_LENGTH)) if value != default]
    if unread and not user_history:
        raise ValueError(f"TwoTowerModel: {', '.join(unread)} set the user-history tower, which user_history=False "
                         "does not build; pass user_history=True, or leave them out")
    schema_lib.validate_for_retrieval(schema)
    schema_lib.require_domains(schema)
    schema_lib.check_towers(schema)
    if id_embedding_dim == "auto":
        items = schema_lib.cardinality(schema[schema_lib.item_id_column(schema)])
        schema = _widen_id_embeddings(schema, default_id_embedding_dim(items))
    elif isinstance(id_embedding_dim, numbers.Integral) and not isinstance(id_embedding_dim, bool) \
            and id_embedding_dim >= 1:
        schema = _widen_id_embeddings(schema, int(id_embedding_dim))
    elif id_embedding_dim is not None:
        raise ValueError(f'TwoTowerModel: id_embedding_dim must be "auto", an integer >= 1 or None, '
                         f"got {id_embedding_dim!r}")
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
    item_id = schema_lib.item_id_column(schema)
    few_users = (not user_history and user_id is not None
                 and len(schema_lib.candidate_schema(schema).excluding_by_name([item_id]).column_names) > 0
                 and few_users_per_item(schema_lib.cardinality(schema[user_id]),
                                        schema_lib.cardinality(schema[item_id])))
    if candidate_input_dropout is None:
        candidate_input_dropout = FEW_USERS_CANDIDATE_INPUT_DROPOUT if few_users else 0.0
    if logq_sampling_correction is None:
        logq_sampling_correction = FEW_USERS_LOGQ_CORRECTION if few_users else DEFAULT_LOGQ_CORRECTION
    if item_id_start == "auto":
        item_id_start = "svd" if few_users else None
    elif item_id_start not in ITEM_ID_STARTS:
        raise ValueError(f"TwoTowerModel: item_id_start must be 'auto' or one of {ITEM_ID_STARTS}, "
                         f"got {item_id_start!r}")
    if logits_temperature is None and outputs is None:
        logits_temperature = DEFAULT_HISTORY_TEMPERATURE if user_history else DEFAULT_TEMPERATURE
    for name, rate in (("query_input_dropout", query_input_dropout),
                       ("candidate_input_dropout", candidate_input_dropout)):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
            raise ValueError(f"TwoTowerModel: {name} must be in [0, 1), got {rate!r}")

    def tower(columns, units, input_dropout=0.0, history=None):
        blocks = [keras.layers.Dropout(input_dropout)] if input_dropout else []
        blocks.append(MLPBlock(list(units), dropout=dropout, no_activation_last_layer=True))
        if l2_normalize:
            blocks.append(keras.layers.UnitNormalization())
        return Encoder(columns, *blocks, history=history, untrained_user_ids=untrained_user_ids)

    query_columns, history = schema_lib.query_schema(schema), None
    if user_history:
        # The history stands in for the user-id embedding: with both, the
        # id memorises each user's training items.
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
        # The sampler sizes its counts by the item-id domain: a domain past this machine's memory is
        # named as the candidate tower's table would name it, not as TensorFlow's allocation fails.
        check_table_fits(schema_lib.cardinality(schema[item_id]), schema_lib.embedding_dim(schema[item_id]), item_id)
        # In-batch negatives over-penalise popular items; the streaming
        # frequency estimate corrects them without needing item counts.
        outputs = ContrastiveOutput(
            negative_samplers=InBatchSampler(num_items=schema_lib.cardinality(schema[item_id]))
            if negative_samplers is None else negative_samplers,
            logits_temperature=logits_temperature,
            logq_sampling_correction=logq_sampling_correction,
        )
    elif logits_temperature is not None or negative_samplers is not None:  # left as given when outputs= is
        raise ValueError(
            "TwoTowerModel: logits_temperature and negative_samplers configure the default output; "
            "with outputs= given, pass them to the output instead"
        )
    return TwoTowerModelV2(
        tower(query_columns, query_units, query_input_dropout, history),
        tower(schema_lib.candidate_schema(schema), candidate_units, candidate_input_dropout),
        outputs=outputs,
        schema=schema,
        item_id_start=item_id_start,
    )


def _widen_id_embeddings(schema: Schema, dim: int) -> Schema:
    ids = {schema_lib.item_id_column(schema), schema_lib.user_id_column(schema)}
    columns = []
    for col in schema:
        if col.name in ids and col.properties.get("embedding_dim") is None and schema_lib.embedding_dim(col) < dim:
            col = col.with_properties({**col.properties, "embedding_dim": dim})
        columns.append(col)
    result = Schema(columns)
    result.name = getattr(schema, "name", None)
    return result
