"""MatrixFactorizationModelV2, argument by argument: a TwoTowerModelV2 of two id embeddings,
its scores the dot products of the tables' rows, computed here by hand."""

import keras
import numpy as np
import pandas as pd
import pytest
from merlin.schema import Tags

import schemaretrieval as mm
from schemaretrieval.schema import schema_from_dict

SCHEMA = schema_from_dict({"columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 19}}}})
BATCH = {"user_id": np.array([1, 4]), "item_id": np.array([3, 7])}


def tables(model):
    def rows(tower):
        (weight,) = [w for w in tower.weights if "embeddings" in w.path]
        return np.asarray(weight)
    return rows(model.query_encoder), rows(model.candidate_encoder)


def test_dim_and_the_ids_give_tables_whose_rows_are_the_towers():
    model = mm.MatrixFactorizationModelV2(SCHEMA, dim=3)
    out = model(BATCH)
    users, items = tables(model)
    assert users.shape == (10, 3) and items.shape == (20, 3)
    np.testing.assert_allclose(np.asarray(out["query"]), users[[1, 4]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out["candidate"]), items[[3, 7]], rtol=1e-6)
    # the in-batch logits are the dot products of the rows
    logits, _ = model.output_layer.logits_and_labels(out["query"], out["candidate"], BATCH["item_id"])
    np.testing.assert_allclose(np.asarray(logits), users[[1, 4]] @ items[[3, 7]].T, rtol=1e-5)
    with pytest.raises(ValueError, match=r"MatrixFactorizationModelV2: dim must be an integer >= 1"):
        mm.MatrixFactorizationModelV2(SCHEMA, dim=0)


def test_embeddings_without_a_data_set_are_the_tables_indexed_by_id():
    # Merlin's candidate_embeddings() / query_embeddings() export the whole table; was a TypeError
    model = mm.MatrixFactorizationModelV2(SCHEMA, dim=3)
    model(BATCH)
    users, items = tables(model)
    for frame, table, name in ((model.query_embeddings(), users, "user_id"),
                               (model.candidate_embeddings(), items, "item_id")):
        frame = frame.compute()
        assert frame.index.name == name and frame.index.tolist() == list(range(len(table)))
        np.testing.assert_allclose(frame[["0", "1", "2"]].to_numpy(), table, rtol=1e-6)
    two_tower = mm.TwoTowerModel(mm.load_schema("schemas/synthetic.yaml"))
    with pytest.raises(ValueError, match=r"query_embeddings: without a data set only a tower that reads nothing but "
                                         r"its id has one .* this one reads \['user_id', 'user_age'"):
        two_tower.query_embeddings()


def test_query_and_candidate_id_tags_select_one_column_each():
    model = mm.MatrixFactorizationModelV2(SCHEMA, 2, query_id_tag=Tags.USER, candidate_id_tag=Tags.ITEM)
    assert (model.query_encoder.schema.column_names, model.candidate_encoder.schema.column_names) == \
        (["user_id"], ["item_id"])
    with pytest.raises(ValueError, match=r"query_id_tag=.* must select one column of the schema, found \[\]"):
        mm.MatrixFactorizationModelV2(SCHEMA, 2, query_id_tag=Tags.SESSION_ID)


def test_unsupported_embedding_options_raise():
    with pytest.raises(NotImplementedError, match=r"embeddings_initializers"):
        mm.MatrixFactorizationModelV2(SCHEMA, 2, embeddings_initializers="zeros")
    with pytest.raises(NotImplementedError, match=r"embeddings_l2_batch_regularization"):
        mm.MatrixFactorizationModelV2(SCHEMA, 2, embeddings_l2_batch_regularization=0.1)


def test_post_is_one_layer_on_both_towers():
    post = keras.layers.UnitNormalization()
    model = mm.MatrixFactorizationModelV2(SCHEMA, 3, post=post)
    out = model(BATCH)
    users, items = tables(model)
    assert model.query_encoder.post is post is model.candidate_encoder.post
    by_hand = users[[1, 4]] / np.linalg.norm(users[[1, 4]], axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out["query"]), by_hand, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out["candidate"]), axis=1), [1.0, 1.0], rtol=1e-5)


def test_outputs_samplers_temperature_and_kwargs_reach_the_output():
    model = mm.MatrixFactorizationModelV2(SCHEMA, 2, negative_samplers="popularity", logits_temperature=0.5)
    assert model.output_layer.logits_temperature == 0.5
    assert type(model.output_layer.negative_samplers[0]).__name__ == "PopularitySampler"
    output = mm.ContrastiveOutput()
    assert mm.MatrixFactorizationModelV2(SCHEMA, 2, outputs=output).output_layer is output
    corrected = mm.MatrixFactorizationModelV2(SCHEMA, 2, logits_temperature=0.5, logq_sampling_correction=True)
    assert corrected.output_layer.logq_sampling_correction is True
    assert corrected.output_layer.logits_temperature == 0.5
    with pytest.raises(ValueError, match=r"\['logq_sampling_correction'\] configure the default output"):
        mm.MatrixFactorizationModelV2(SCHEMA, 2, outputs=output, logq_sampling_correction=True)


def test_it_trains_and_ranks_as_a_two_tower_model():
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"user_id": rng.integers(0, 10, 300), "item_id": rng.integers(0, 20, 300)})
    model = mm.MatrixFactorizationModelV2(SCHEMA, 4)
    model.compile(optimizer="adam", metrics=[mm.RecallAt(5)])
    history = model.fit(data, batch_size=50, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    topk = model.to_top_k_encoder(k=3)
    users, items = tables(model)
    scores, ids = topk({"user_id": np.array([2])})
    by_hand = users[2] @ items.T
    assert np.asarray(ids)[0].tolist() == np.argsort(-by_hand)[:3].tolist()
