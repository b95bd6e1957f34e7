"""TwoTowerModelV2 with Merlin Models' calls: the positional order, compiled ranking
metrics and losses, merlin.io.Dataset and Loader inputs, the encoders, the
embeddings tables and the top-k encoder, checked against the library's own
computations."""

import inspect

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from merlin.io import Dataset
from merlin.schema import Tags

import schemaretrieval as mm


@pytest.fixture(scope="module")
def schema():
    return mm.load_schema("schemas/synthetic.yaml")


@pytest.fixture(scope="module")
def data(schema):
    return mm.data.synthetic(schema, 3000, seed=0)


def towers(schema):
    query = mm.Encoder(mm.InputBlockV2(mm.schema.query_schema(schema)), mm.MLPBlock([16], no_activation_last_layer=True))
    candidate = mm.Encoder(mm.schema.candidate_schema(schema), mm.MLPBlock([16], no_activation_last_layer=True))
    return query, candidate


@pytest.fixture(scope="module")
def trained(schema, data):
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModelV2(*towers(schema))
    model.compile(optimizer="adam", metrics=[mm.RecallAt(10), mm.NDCGAt(10)])
    model.fit(Dataset(data, schema=schema), batch_size=256, epochs=2, verbose=0)
    return model


def test_merlins_positional_order_and_defaults(schema):
    params = inspect.signature(mm.TwoTowerModelV2).parameters
    assert list(params)[:7] == ["query_tower", "candidate_tower", "candidate_id_tag", "outputs", "logits_temperature",
                                "negative_samplers", "schema"]
    assert (params["candidate_id_tag"].default, params["outputs"].default, params["logits_temperature"].default,
            params["negative_samplers"].default, params["schema"].default) == (Tags.ITEM_ID, None, 1.0, None, None)
    model = mm.TwoTowerModelV2(*towers(schema), Tags.ITEM_ID)
    assert model.candidate_id_column == "item_id"
    output = model.output_layer
    assert (type(output).__name__, output.logits_temperature, [type(s).__name__ for s in output.negative_samplers]) \
        == ("ContrastiveOutput", 1.0, ["InBatchSampler"])
    with pytest.raises(ValueError, match=r"candidate_id_tag must be a merlin Tags \(e.g. Tags.ITEM_ID\), got 'nope'"):
        mm.TwoTowerModelV2(*towers(schema), "nope")
    with pytest.raises(NotImplementedError, match=r"a list of outputs"):
        mm.TwoTowerModelV2(*towers(schema), outputs=[mm.ContrastiveOutput()])
    with pytest.raises(TypeError, match=r"query_tower must be an Encoder"):
        mm.TwoTowerModelV2(mm.MLPBlock([4]), towers(schema)[1])


def test_negative_samplers_and_temperature_build_the_default_output(schema):
    model = mm.TwoTowerModelV2(*towers(schema), logits_temperature=0.5, negative_samplers="popularity")
    assert model.output_layer.logits_temperature == 0.5
    assert type(model.output_layer.negative_samplers[0]).__name__ == "PopularitySampler"


def test_compiled_ranking_metrics_are_computed_on_the_outputs_logits(trained, schema, data):
    history = trained.history.history
    assert sorted(history) == ["loss", "ndcg_at_10", "recall_at_10"]
    # evaluate on one batch equals the metrics on the output's own logits for that batch
    batch = mm.data.to_arrays(data.head(64), schema)
    y_pred = trained(batch)
    logits, labels = trained.output_layer.logits_and_labels(y_pred["query"], y_pred["candidate"], batch["item_id"])
    recall = mm.RecallAt(10)
    recall.update_state(tf.one_hot(labels, tf.shape(logits)[1]), logits)
    result = trained.evaluate(data.head(64), batch_size=64, return_dict=True, verbose=0)
    assert result["recall_at_10"] == pytest.approx(float(recall.result()), abs=1e-6)


def test_compile_loss_is_merlins_pairwise_loss_on_the_logits(schema, data):
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModelV2(*towers(schema), outputs=mm.ContrastiveOutput(None, "in-batch"))
    model.compile(optimizer="adam", loss="bpr")
    batch = mm.data.to_arrays(data.head(32), schema)
    y_pred = model(batch)
    loss = float(model.compute_loss(batch, None, y_pred, training=False))
    prediction = model.output_layer.predictions(y_pred["query"], y_pred["candidate"], batch["item_id"])
    assert loss == pytest.approx(float(mm.losses.BPRLoss()(prediction.targets, prediction.outputs)), rel=1e-6)
    with pytest.raises(ValueError, match=r"loss 'no-such-loss' is neither a pairwise loss nor a Keras loss: unknown loss"):
        model.compile(optimizer="adam", loss="no-such-loss")


def test_compile_loss_bpr_max_trains_beside_downscored_false_negatives(schema, data):
    # the synthetic rows repeat items within a batch: their columns are downscored to MASK_VALUE,
    # whose square in bpr-max's regulariser made the loss NaN in the first epoch
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModel(schema)
    model.compile(loss="bpr-max")
    history = model.fit(data, epochs=1, batch_size=128, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("loss", ["bpr", mm.losses.BPRmaxLoss(reg_lambda=0.5),
                                  keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.4)],
                         ids=["name", "pairwise", "keras"])
def test_a_saved_model_keeps_its_compiled_loss(tmp_path, schema, data, loss):
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModel(schema)
    model.compile(loss=loss)
    batch = mm.data.to_arrays(data.head(64), schema)
    compiled = float(model.compute_loss(batch, None, model(batch), training=False))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert float(loaded.compute_loss(batch, None, loaded(batch), training=False)) == pytest.approx(compiled, rel=1e-6)
    model.compile()  # the output's own loss, which the load fell back to before: another value
    assert float(model.compute_loss(batch, None, model(batch), training=False)) != pytest.approx(compiled, rel=1e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_compile_loss_categorical_crossentropy_is_kerass_on_the_logits(schema, data, weighted):
    batch = mm.data.to_arrays(data.head(32), schema)
    weight = tf.constant(np.linspace(0.0, 2.0, 32), tf.float32) if weighted else None

    def loss_and_gradients(loss):
        keras.utils.set_random_seed(0)
        model = mm.TwoTowerModelV2(*towers(schema), outputs=mm.ContrastiveOutput(None, "in-batch",
                                                                                 logits_temperature=0.5))
        model.compile(optimizer="adam", loss=loss)
        with tf.GradientTape() as tape:
            value = model.compute_loss(batch, None, model(batch), sample_weight=weight, training=False)
        gradients = tape.gradient(value, model.trainable_variables)
        return [float(value)] + [tf.convert_to_tensor(g).numpy() for g in gradients if g is not None]

    ours = loss_and_gradients("categorical_crossentropy")
    theirs = loss_and_gradients(keras.losses.CategoricalCrossentropy(from_logits=True))
    assert len(ours) == len(theirs) > 1
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6)
    for a, b in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_fit_and_evaluate_take_a_merlin_dataset_and_a_loader(schema, data):
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModelV2(*towers(schema))
    model.compile(optimizer="adam", metrics=[mm.RecallAt(5)])
    train, valid = Dataset(data.iloc[:2500], schema=schema), Dataset(data.iloc[2500:], schema=schema)
    history = model.fit(train, validation_data=valid, batch_size=500, epochs=2, verbose=0)
    # Keras's validation (in-batch) and the full-catalog recall of the one training path
    assert {"loss", "recall_at_5", "val_loss", "val_recall_at_5", "val_recall@10"} <= set(history.history)
    assert len(history.history["loss"]) == 2
    loader = mm.Loader(valid, batch_size=100, shuffle=False)
    by_loader = model.evaluate(loader, return_dict=True, verbose=0)
    by_dataset = model.evaluate(valid, batch_size=100, return_dict=True, verbose=0)
    assert by_loader["loss"] == pytest.approx(by_dataset["loss"], rel=1e-5)
    again = model.fit(mm.Loader(train, batch_size=500), epochs=1, verbose=0)
    assert len(again.history["loss"]) == 1
    # predict takes them too (Keras's "Unrecognized data type" before), and gives Merlin's form: each row's
    # score of its own query and candidate, [N, 1], in order (was the towers' outputs, a dict)
    rows = data.iloc[2500:2700]
    expected = (model.query_embeddings(rows) * model.candidate_embeddings(rows)).sum(axis=1, keepdims=True)
    loader = mm.Loader(Dataset(rows, schema=schema), batch_size=64, shuffle=False)
    for x in (rows, Dataset(rows, schema=schema), loader):
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)


def test_steps_per_epoch_and_steps_are_run_exactly_under_the_16_step_calls(schema, data):
    # Merlin's tests fit with steps_per_epoch=1 and evaluate with steps=1; Keras runs whole calls of
    # steps_per_execution (16 by default here) steps, so 2 steps an epoch trained 16 before.
    keras.utils.set_random_seed(0)
    model = mm.TwoTowerModelV2(*towers(schema))
    model.compile(optimizer="adam")
    assert model.steps_per_execution == 16
    model.fit(mm.Loader(Dataset(data, schema=schema), batch_size=100), epochs=2, steps_per_epoch=2,
              validation_data=mm.Loader(Dataset(data.iloc[:500], schema=schema), batch_size=100),
              validation_steps=3, verbose=0)
    assert int(model.optimizer.iterations) == 4 and model.steps_per_execution == 16
    loader = mm.Loader(Dataset(data.iloc[:800], schema=schema), batch_size=100, shuffle=False)
    first = model.evaluate(mm.Loader(Dataset(data.iloc[:100], schema=schema), batch_size=100, shuffle=False),
                           return_dict=True, verbose=0)
    assert model.evaluate(loader, steps=1, return_dict=True, verbose=0)["loss"] == pytest.approx(first["loss"])
    assert model.predict(loader, steps=3, verbose=0).shape == (300, 1)
    # on a merlin.io.Dataset the library's path runs whole epochs: Keras's step arguments name the way to them
    with pytest.raises(TypeError, match=r"fit on a table or merlin.io.Dataset: \['initial_epoch', 'steps_per_epoch'\] "
                                        r"are Keras's fit arguments, .* model.fit\(sr.Loader\(dataset"):
        model.fit(Dataset(data, schema=schema), steps_per_epoch=2, initial_epoch=1, verbose=0)
    with pytest.raises(TypeError, match="train_metrics_steps"):
        model.fit(mm.Loader(Dataset(data, schema=schema), batch_size=100), train_metrics_steps=2, verbose=0)
    with pytest.raises(ValueError, match="fit: steps_per_epoch must be an integer >= 1, got 0"):
        model.fit(mm.Loader(Dataset(data, schema=schema), batch_size=100), steps_per_epoch=0, verbose=0)


def test_in_batch_sampler_v2_and_l2_norm_are_merlins(schema, data, tmp_path):
    # Merlin's tests and retrieval code write both; they were missing names here
    values = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    values[2] = 0.0
    np.testing.assert_allclose(mm.L2Norm()(values), tf.linalg.l2_normalize(values, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(mm.L2Norm(axis=0)({"a": values})["a"], tf.linalg.l2_normalize(values, axis=0),
                               rtol=1e-6)

    def fit(sampler):
        keras.utils.set_random_seed(0)
        query = mm.Encoder(mm.schema.query_schema(schema), mm.MLPBlock([16]), post=mm.L2Norm())
        candidate = mm.Encoder(mm.schema.candidate_schema(schema), mm.MLPBlock([16]), post=mm.L2Norm())
        model = mm.TwoTowerModelV2(query, candidate, negative_samplers=[sampler], logits_temperature=0.1)
        model.compile(optimizer="adam")
        return model, model.fit(mm.Loader(Dataset(data, schema=schema), batch_size=500, shuffle=False), epochs=1,
                                verbose=0).history["loss"]

    model, loss = fit(mm.InBatchSamplerV2(batch_size=500))
    assert loss == fit("in-batch")[1]  # what the name builds
    norms = np.linalg.norm(model.query_embeddings(data.iloc[:50]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = mm.load_model(tmp_path / "m.keras")
    sampler = loaded.output_layer.negative_samplers[0]
    assert type(sampler) is mm.InBatchSamplerV2 and sampler.batch_size == 500
    np.testing.assert_allclose(loaded.query_embeddings(data.iloc[:50]), model.query_embeddings(data.iloc[:50]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="InBatchSamplerV2: batch_size must be an integer >= 1, got 0"):
        mm.InBatchSamplerV2(batch_size=0)


def test_validation_data_ranks_its_items_but_leaves_training_counts_alone(schema, data):
    train, valid = data.iloc[:1500], data.iloc[1500:]

    def fit(**kwargs):
        keras.utils.set_random_seed(0)
        model = mm.TwoTowerModelV2(*towers(schema), outputs=mm.ContrastiveOutput(None, "in-batch",
                                                                                 logq_sampling_correction=True))
        model.compile(optimizer="adam")
        history = model.fit(Dataset(train, schema=schema), batch_size=256, epochs=1, verbose=0, **kwargs).history
        return history["loss"][0], model.output_layer.negative_samplers[0].item_counts, history

    alone, counts, _ = fit(catalog=mm.data.Catalog.from_interactions(train, schema))
    validated, counts_validated, history = fit(validation_data=Dataset(valid, schema=schema))
    # the validation rows were counted in the logQ correction's item counts before (2000, not 1500)
    assert float(np.sum(counts_validated)) == float(np.sum(counts)) == len(train)
    assert validated == pytest.approx(alone, rel=1e-6)
    assert history["val_recall@10"][0] > 0  # the validation data still ranks the catalog of both


def test_query_and_candidate_encoders_save_and_serve(trained, schema, data, tmp_path):
    assert trained.query_encoder is trained.query_tower and trained.candidate_encoder is trained.candidate_tower
    batch = mm.data.to_arrays(data.head(5), schema)
    trained.query_encoder.save(tmp_path / "query_tower")
    served = tf.saved_model.load(str(tmp_path / "query_tower"))
    features = {name: batch[name] for name in trained.query_encoder.column_names}
    np.testing.assert_allclose(served.serve(features), trained.query_encoder(batch), rtol=1e-5, atol=1e-6)
    trained.candidate_encoder.save(tmp_path / "candidate.keras")
    loaded = keras.saving.load_model(tmp_path / "candidate.keras")
    np.testing.assert_allclose(loaded(batch), trained.candidate_encoder(batch), rtol=1e-5, atol=1e-6)


def test_embeddings_are_merlins_tables_with_index_and_arrays_without(trained, schema, data):
    users = mm.unique_rows_by_features(Dataset(data, schema=schema), Tags.USER, Tags.USER_ID)
    table = trained.query_embeddings(users, batch_size=1024, index=Tags.USER_ID).compute()
    frame = users.compute()
    assert table.index.name == "user_id" and table.index.tolist() == frame["user_id"].tolist()
    assert list(table.columns) == [str(i) for i in range(16)]
    np.testing.assert_allclose(table.to_numpy(), trained.query_embeddings(frame), rtol=1e-5, atol=1e-6)
    items = mm.unique_rows_by_features(Dataset(data, schema=schema), Tags.ITEM, Tags.ITEM_ID)
    item_table = trained.candidate_embeddings(items, batch_size=1024, index=Tags.ITEM_ID).compute()
    assert item_table.index.name == "item_id" and item_table.shape == (len(items.compute()), 16)
    # a DataFrame without index: the array, as the library's callers read it
    assert isinstance(trained.candidate_embeddings(items.compute()), np.ndarray)
    # a merlin.io.Dataset without index: the input's columns and the embeddings
    both = trained.candidate_embeddings(items, batch_size=1024).compute()
    assert list(both.columns) == items.schema.column_names + [str(i) for i in range(16)]


def test_top_k_encoder_evaluates_the_whole_catalog_as_evaluate_topk(trained, schema, data, tmp_path):
    candidates = mm.unique_rows_by_features(Dataset(data, schema=schema), Tags.ITEM, Tags.ITEM_ID)
    topk_model = trained.to_top_k_encoder(candidates, k=20, batch_size=128)
    topk_model.compile(run_eagerly=False)
    loader = mm.Loader(Dataset(data, schema=schema), batch_size=1024).map(mm.ToTarget(schema, "item_id"))
    metrics = topk_model.evaluate(loader, return_dict=True, verbose=0)
    catalog = mm.data.Catalog.from_interactions(data, schema)
    expected = trained.evaluate_topk(data, catalog, ks=[20])
    for ours, theirs in (("recall_at_20", "recall@20"), ("mrr_at_20", "mrr@20"), ("ndcg_at_20", "ndcg@20"),
                         ("map_at_20", "map@20"), ("precision_at_20", "precision@20")):
        assert metrics[ours] == pytest.approx(expected[theirs], abs=1e-6)
    # called on a batch: the k best candidates' scores and ids, as a brute-force ranking gives them
    batch = next(iter(mm.Loader(Dataset(data, schema=schema), batch_size=8, shuffle=False)))
    prediction = topk_model(batch[0])
    scores = trained.query_embeddings(data.head(8)) @ trained.candidate_embeddings(catalog).T
    best = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    np.testing.assert_allclose(prediction.scores, np.take_along_axis(scores, best, 1), rtol=1e-4, atol=1e-5)
    assert set(np.asarray(prediction.identifiers)[0]) == set(catalog.ids[best[0]])
    # compile(k=) changes k, metrics follow; exports as a SavedModel served by TensorFlow alone
    topk_model.compile(k=5)
    assert sorted(topk_model.evaluate(loader, return_dict=True, verbose=0)) == \
        ["map_at_5", "mrr_at_5", "ndcg_at_5", "precision_at_5", "recall_at_5"]
    topk_model.save(tmp_path / "topk")
    loaded = tf.saved_model.load(str(tmp_path / "topk"))
    served = loaded.serve({name: batch[0][name] for name in trained.query_encoder.column_names})
    np.testing.assert_array_equal(np.asarray(served[1]), np.asarray(topk_model(batch[0]).identifiers))
    # a .keras file keeps the compiled metrics (a loaded encoder evaluated Merlin's five defaults at k before)
    topk_model.compile(metrics=[mm.RecallAt(5), mm.NDCGAt(20)])
    compiled = topk_model.evaluate(loader, return_dict=True, verbose=0)
    topk_model.save(tmp_path / "topk.keras")
    assert keras.saving.load_model(tmp_path / "topk.keras").evaluate(loader, return_dict=True, verbose=0) == \
        pytest.approx(compiled) and sorted(compiled) == ["ndcg_at_20", "recall_at_5"]
    with pytest.raises(NotImplementedError, match=r"strategy='faiss' is not supported"):
        trained.to_top_k_encoder(candidates, strategy="faiss")
    with pytest.raises(NotImplementedError, match=r"does not train"):
        topk_model.fit(loader)


def test_top_k_encoder_takes_merlins_constructor_call_k_and_predict_on_a_loader(trained, schema, data):
    # Merlin's test_topk_encoder writes each of these; they were an "Unrecognized keyword", a TypeError for k=
    # and "Unrecognized data type" for a Loader
    items = mm.unique_rows_by_features(Dataset(data, schema=schema), Tags.ITEM, Tags.ITEM_ID)
    by_id = trained.candidate_embeddings(items, batch_size=64, index=Tags.ITEM_ID)
    reference = trained.to_top_k_encoder(items, k=10)
    batch = next(iter(mm.Loader(Dataset(data, schema=schema), batch_size=16, shuffle=False)))[0]
    for topk in (mm.TopKEncoder(trained.query_encoder, candidates=by_id, k=10),
                 mm.TopKEncoder(trained.query_encoder, topk_layer="brute-force-topk", candidates=items,
                                candidate_encoder=trained.candidate_encoder, k=10)):
        ours, theirs = topk(batch), reference(batch)
        np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-5)
    # a data set of embeddings keeps its ids; raw features with candidate_encoder give row numbers, as Merlin's
    np.testing.assert_array_equal(mm.TopKEncoder(trained.query_encoder, candidates=by_id, k=10)(batch).identifiers,
                                  theirs.identifiers)
    as_tensor = mm.TopKEncoder(trained.query_encoder, candidates=tf.constant(by_id.compute().to_numpy()), k=3)
    assert as_tensor(batch).identifiers.shape == (16, 3)
    assert reference(batch, k=20).scores.shape == (16, 20)
    np.testing.assert_allclose(reference(batch, k=20).scores[:, :10], theirs.scores, rtol=1e-6)
    loader = mm.Loader(Dataset(data.head(100), schema=schema), batch_size=32, shuffle=False)
    predicted = reference.predict(loader, verbose=0)
    assert isinstance(predicted, mm.models.topk_encoder.TopKPrediction) and predicted.scores.shape == (100, 10)
    np.testing.assert_allclose(predicted.scores[:16], theirs.scores, rtol=1e-5)
    np.testing.assert_allclose(trained.query_encoder.predict(loader, verbose=0), trained.query_embeddings(data.head(100)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match=r"topk_layer='faiss' is not supported"):
        mm.TopKEncoder(trained.query_encoder, topk_layer="faiss", candidates=by_id)
    with pytest.raises(ValueError, match=r"candidates= as a table holds embeddings in columns '0', '1', ..."):
        mm.TopKEncoder(trained.query_encoder, candidates=items)
    with pytest.raises(ValueError, match=r"TopKEncoder: k=5000 is more than the"):
        reference(batch, k=5000)


# TopKEncoder.from_candidate_dataset, argument by argument, with towers computed by hand:
# the query [age, 2 age], the candidate [x, x], so a score is 3 age x.
def _continuous(name, kernel):
    from merlin.schema import ColumnSchema, Schema

    side = Tags.USER if name.startswith("user") else Tags.ITEM
    schema = Schema([ColumnSchema(name, tags=[side, Tags.CONTINUOUS], dtype="float32")])
    return mm.Encoder(schema, keras.layers.Dense(2, use_bias=False,
                                                 kernel_initializer=keras.initializers.Constant([kernel])))


ITEMS = pd.DataFrame({"item_id": [10, 11, 12], "item_x": np.array([0.1, 0.3, -0.2], "float32")})


def test_from_candidate_dataset_indexes_the_candidate_towers_outputs():
    query, candidate = _continuous("user_age", [1.0, 2.0]), _continuous("item_x", [1.0, 1.0])
    for dataset in (ITEMS, Dataset(ITEMS)):
        topk = mm.TopKEncoder.from_candidate_dataset(query, candidate, dataset, top_k=2, index_column="item_id")
        scores, ids = topk({"user_age": np.array([1.0, -1.0], "float32")})
        np.testing.assert_allclose(np.asarray(scores), [[0.9, 0.3], [0.6, -0.3]], rtol=1e-5)
        assert np.asarray(ids).tolist() == [[11, 10], [12, 10]]


def test_from_candidate_dataset_top_k_and_index_column_none():
    query, candidate = _continuous("user_age", [1.0, 2.0]), _continuous("item_x", [1.0, 1.0])
    topk = mm.TopKEncoder.from_candidate_dataset(query, candidate, ITEMS, top_k=1)
    scores, ids = topk({"user_age": np.array([1.0], "float32")})
    assert topk.k == 1 and np.asarray(ids).tolist() == [[1]]  # the row number, as Merlin's
    np.testing.assert_allclose(np.asarray(scores), [[0.9]], rtol=1e-5)
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['nope'\]"):
        mm.TopKEncoder.from_candidate_dataset(query, candidate, ITEMS, nope=1)
    with pytest.raises(ValueError, match=r"index: 'item_id' must name exactly one column"):
        mm.TopKEncoder.from_candidate_dataset(query, candidate, ITEMS[["item_x"]], index_column="item_id")
    # was: cut to the 3 candidates without a word, fewer columns than asked (Merlin's top_k fails in the graph)
    with pytest.raises(ValueError, match=r"^TopKEncoder: k=4 is more than the 3 candidates indexed$"):
        mm.TopKEncoder.from_candidate_dataset(query, candidate, ITEMS, top_k=4)
    topk.compile(k=3)
    assert np.asarray(topk({"user_age": np.array([1.0], "float32")}).identifiers).tolist() == [[1, 0, 2]]
    with pytest.raises(ValueError, match=r"^TopKEncoder: k=4 is more than the 3 candidates indexed$"):
        topk.compile(k=4)
