"""Merlin Models' matrix factorization, `MatrixFactorizationModelV2`: a `TwoTowerModelV2`
whose towers are the query id's and the candidate id's embeddings alone.

The score of a user and an item is the dot product of their id embeddings, as
in Merlin (its ``EmbeddingEncoder`` towers and ``DotProduct``). The towers are
`Encoder` s of one id column each, that column's ``embedding_dim`` set to
``dim``; the loss is the `TwoTowerModelV2`'s (in-batch `ContrastiveOutput` by
default), so fit, evaluation, the top-k encoder and saving are the model's.
"""

from __future__ import annotations

from merlin.schema import Schema, Tags

from schemaretrieval.arguments import integer
from schemaretrieval.layers.encoder import Encoder
from schemaretrieval.models.two_tower import TwoTowerModelV2
from schemaretrieval.retrieval.outputs import ContrastiveOutput
from schemaretrieval.schema import require_schema

__all__ = ["MatrixFactorizationModelV2"]


def MatrixFactorizationModelV2(schema: Schema, dim: int, query_id_tag=Tags.USER_ID, candidate_id_tag=Tags.ITEM_ID,
                               embeddings_initializers=None, embeddings_l2_batch_regularization=0.0, post=None,
                               outputs=None, negative_samplers=None, logits_temperature: float = 1.0,
                               **kwargs) -> TwoTowerModelV2:
    """Merlin's ``MatrixFactorizationModelV2``: a `TwoTowerModelV2` of two id embeddings of width ``dim``.

    Args (Merlin's, in its order):
        schema: the schema holding the query-id and candidate-id columns.
        dim: the width of both embedding tables.
        query_id_tag, candidate_id_tag: the tags of the one query-id and one candidate-id column.
        embeddings_initializers: only None (Keras's uniform initializer, as Merlin's default);
            others are a NotImplementedError.
        embeddings_l2_batch_regularization: only 0.0; others are a NotImplementedError.
        post: a layer applied to both towers' outputs (one instance, shared, as Merlin's).
        outputs, negative_samplers, logits_temperature: the `TwoTowerModelV2`'s.
        **kwargs: Merlin gives them to the default `ContrastiveOutput` (e.g.
            ``logq_sampling_correction=True``); with ``outputs=`` given they are a ValueError.

    Example:

    >>> import schemaretrieval as sr
    >>> schema = sr.schema.schema_from_dict({"columns": {
    ...     "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
    ...     "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 19}}}})
    >>> mf = MatrixFactorizationModelV2(schema, dim=8)
    >>> mf.compile(optimizer="adam")
    >>> import numpy as np
    >>> tuple(mf.query_encoder({"user_id": np.array([1, 2])}).shape)
    (2, 8)
    """
    if embeddings_initializers is not None:
        raise NotImplementedError("MatrixFactorizationModelV2: embeddings_initializers is not supported (the "
                                  "tables start from Keras's uniform initializer, Merlin's default)")
    if embeddings_l2_batch_regularization:
        raise NotImplementedError("MatrixFactorizationModelV2: embeddings_l2_batch_regularization is not supported; "
                                  "for weight decay give the optimizer one")
    require_schema(schema, "MatrixFactorizationModelV2")
    dim = integer(dim, "MatrixFactorizationModelV2", "dim")

    def tower(tag, what):
        names = schema.select_by_tag(tag).column_names
        if len(names) != 1:
            raise ValueError(f"MatrixFactorizationModelV2: {what}={tag!r} must select one column of the schema, "
                             f"found {names}")
        col = schema[names[0]]
        return Encoder(Schema([col.with_properties({**col.properties, "embedding_dim": dim})]), post=post)

    query, candidate = tower(query_id_tag, "query_id_tag"), tower(candidate_id_tag, "candidate_id_tag")
    if kwargs:
        if outputs is not None:
            raise ValueError(f"MatrixFactorizationModelV2: {sorted(kwargs)} configure the default output; with "
                             "outputs= given, pass them to the output instead")
        outputs = ContrastiveOutput(negative_samplers="in-batch" if negative_samplers is None else negative_samplers,
                                    logits_temperature=logits_temperature, **kwargs)
        negative_samplers, logits_temperature = None, 1.0
    return TwoTowerModelV2(query, candidate, candidate_id_tag, outputs=outputs, logits_temperature=logits_temperature,
                           negative_samplers=negative_samplers)
