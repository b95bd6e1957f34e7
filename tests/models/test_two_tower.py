"""The two-tower model end to end: training beats popularity, a broken tower
does not, options are checked, save/load round-trips in a fresh process."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest

from merlin.schema import Schema

import schemaretrieval as sr
from schemaretrieval.schema import SchemaError, candidate_schema, query_schema, schema_from_dict, schema_to_dict

SCHEMA_PATH = "schemas/synthetic.yaml"


@pytest.fixture(scope="module")
def schema():
    return sr.load_schema(SCHEMA_PATH)


@pytest.fixture(scope="module")
def split(schema):
    # 20,000 rows: the default model's recall@10 is 2.2x popularity (1.3x asked), the
    # blind tower's 0.92x (under 1.1x asked), on 4,000 test rows.
    interactions = sr.data.synthetic(schema, 20_000, seed=1)
    train, test = sr.data.random_split(interactions, 0.2, seed=1)
    return interactions, train, test


def train_default(schema, train, epochs=4, seed=0):
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(train, batch_size=512, epochs=epochs, seed=seed, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained(schema, split):
    return train_default(schema, split[1])


def popularity_recall(split, schema, k=10):
    interactions, train, test = split
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    return sr.baselines.Popularity().fit(train, None, "item_id").evaluate_topk(
        test, candidate_ids=catalog.ids, ks=[k]
    )[f"recall@{k}"]


def test_default_model_clearly_beats_popularity(schema, split, trained):
    interactions, _, test = split
    metrics = trained.evaluate_topk(test, sr.data.Catalog.from_interactions(interactions, schema), ks=[10, 100])
    popularity = popularity_recall(split, schema)
    assert metrics["recall@10"] > 1.3 * popularity, (metrics, popularity)
    assert set(metrics) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "precision", "map") for k in (10, 100)}


def test_a_query_tower_blind_to_the_user_does_not_beat_popularity(schema, split):
    interactions, train, test = split
    # Shuffling the user columns of the training rows cuts every link between
    # a user and their items: what is left to learn is popularity.
    broken = train.copy()
    order = np.random.default_rng(0).permutation(len(train))
    for column in query_schema(schema).column_names:
        broken[column] = train[column].to_numpy()[order]
    model = train_default(schema, broken)
    metrics = model.evaluate_topk(test, sr.data.Catalog.from_interactions(interactions, schema), ks=[10])
    assert metrics["recall@10"] < 1.1 * popularity_recall(split, schema)


def test_excluding_seen_items_ranks_the_rest(schema, split, trained):
    interactions, train, test = split
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    plain = trained.evaluate_topk(test, catalog, ks=[10])
    excluded = trained.evaluate_topk(test, catalog, ks=[10], exclude=train)
    assert excluded["recall@10"] != plain["recall@10"]
    # Excluding nothing (an empty interactions table) changes nothing.
    none = trained.evaluate_topk(test, catalog, ks=[10], exclude=train.iloc[:0])
    assert none == plain


def test_a_catalog_is_required_when_the_item_tower_reads_features(trained, split):
    with pytest.raises(ValueError, match=r"evaluate_topk: give catalog= \(a catalog of every id of the item-id domain "
                                         r"has no features, and the candidate side also reads"):
        trained.evaluate_topk(split[2], ks=[10])


def test_id_only_towers_rank_the_whole_id_domain(schema, split):
    ids = schema_from_dict(
        {"columns": {k: v for k, v in schema_to_dict(schema)["columns"].items() if k in ("user_id", "item_id")}}
    )
    model = sr.TwoTowerModelV2(
        sr.Encoder(query_schema(ids)), sr.Encoder(candidate_schema(ids)), logits_temperature=0.5
    )
    model.compile(optimizer="adam")
    model.fit(split[1], batch_size=1024, epochs=1, verbose=0)
    assert len(model.default_catalog("test")) == 3000  # item_id domain 0..2999
    metrics = model.evaluate_topk(split[2], ks=[3000])
    assert metrics["recall@3000"] == pytest.approx(1.0)


def test_fit_takes_a_tf_dataset_too(schema, split):
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer="adam")
    history = model.fit(sr.data.to_tf_dataset(split[1], schema, 1024, shuffle=True, seed=0), epochs=2, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_fit_on_a_tf_dataset_ends_with_an_error_when_the_loss_diverges(schema, split):
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    seen = []
    saver = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    # was: Keras's fit returned a model of NaN weights, and the user's checkpoint saved them
    with pytest.raises(ValueError, match=r"fit: the loss is nan after epoch 1 of 2: training diverged and the "
                                         r"model's weights are no longer usable; lower the learning rate \(1e\+30\)$"):
        model.fit(sr.data.to_tf_dataset(split[1][:2048], schema, 512), epochs=2, callbacks=[saver], verbose=0)
    assert seen == []  # the check runs before a user's callbacks


def test_output_options_belong_to_the_output(schema):
    query = sr.Encoder(query_schema(schema))
    candidate = sr.Encoder(candidate_schema(schema))
    with pytest.raises(ValueError, match="pass them to the output instead"):
        sr.TwoTowerModelV2(query, candidate, outputs=sr.ContrastiveOutput(), logits_temperature=0.1)
    with pytest.raises(ValueError, match="pass them to the output instead"):
        sr.TwoTowerModel(schema, outputs=sr.ContrastiveOutput(), negative_samplers="in-batch")


def test_model_from_a_schema_without_domains_says_to_run_the_etl(schema):
    columns = schema_to_dict(schema)["columns"]
    del columns["item_id"]["domain"]
    with pytest.raises(SchemaError, match="item_id.*run the ETL first"):
        sr.TwoTowerModel(schema_from_dict({"columns": columns}))


def test_model_needs_an_item_id_column(schema):
    columns = {k: v for k, v in schema_to_dict(schema)["columns"].items() if k != "item_id"}
    with pytest.raises(SchemaError, match="item_id"):
        sr.TwoTowerModel(schema_from_dict({"columns": columns}))


def test_save_and_load_in_a_fresh_process_scores_the_same(tmp_path, schema, split, trained):
    interactions, _, test = split
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    rows = test.iloc[:50]
    scores = trained.query_embeddings(rows) @ trained.candidate_embeddings(catalog).T
    trained.save(tmp_path / "model.keras")
    rows.to_pickle(tmp_path / "rows.pkl")
    catalog.frame.to_pickle(tmp_path / "catalog.pkl")
    script = textwrap.dedent(
        f"""
        import json, pandas as pd, schemaretrieval as sr
        model = sr.load_model({str(tmp_path / "model.keras")!r})
        rows = pd.read_pickle({str(tmp_path / "rows.pkl")!r})
        catalog = pd.read_pickle({str(tmp_path / "catalog.pkl")!r})
        scores = model.query_embeddings(rows) @ model.candidate_embeddings(catalog).T
        print(json.dumps(scores.tolist()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(loaded, scores, rtol=1e-5, atol=1e-6)


def test_loaded_model_keeps_training_with_its_frequency_estimate(tmp_path, schema, split, trained):
    trained.save(tmp_path / "model.keras")
    loaded = sr.load_model(tmp_path / "model.keras")
    before = loaded.output_layer.negative_samplers[0].interval.numpy()
    np.testing.assert_array_equal(before, trained.output_layer.negative_samplers[0].interval.numpy())
    loaded.fit(split[1].iloc[:2048], batch_size=512, epochs=1, verbose=0)
    assert not np.array_equal(before, loaded.output_layer.negative_samplers[0].interval.numpy())


def test_id_embedding_dim_widens_only_the_id_tables_the_schema_leaves_to_the_rule(schema):
    def widths(model):
        return {name: table.table.output_dim
                for tower in (model.query_tower, model.candidate_tower)
                for name, table in tower.inputs_block.tables.items()}

    rule = widths(sr.TwoTowerModel(schema, id_embedding_dim=None))
    assert (rule["user_id"], rule["item_id"], rule["user_country"]) == (16, 16, 8)  # Merlin's rule
    # the default: the catalog's width, 3,000 items: 64 * (3000 / 2000) ** 0.25 = 70.8 -> 72
    assert (widths(sr.TwoTowerModel(schema))["user_id"], widths(sr.TwoTowerModel(schema))["item_id"]) == (72, 72)
    wide = widths(sr.TwoTowerModel(schema, id_embedding_dim=64))
    assert (wide["user_id"], wide["item_id"]) == (64, 64)
    assert {k: v for k, v in wide.items() if k not in ("user_id", "item_id")} == \
           {k: v for k, v in rule.items() if k not in ("user_id", "item_id")}
    # an embedding_dim the schema gives is the user's choice and stays
    given = schema.excluding_by_name(["item_id"]) + Schema(
        [schema["item_id"].with_properties({**schema["item_id"].properties, "embedding_dim": 24})])
    assert widths(sr.TwoTowerModel(given, id_embedding_dim=64))["item_id"] == 24
    # narrower than the rule: the rule wins (it is a floor)
    assert widths(sr.TwoTowerModel(schema, id_embedding_dim=8))["user_id"] == 16


def test_the_default_id_width_grows_with_the_catalog(schema):
    def with_ids(col, n):
        return col.with_properties({**col.properties, "domain": {**col.properties["domain"], "min": 0, "max": n - 1}})

    # Last.fm 2k's catalog after the ETL: 15,435 item ids; 64 * (15435 / 2000) ** 0.25 = 106.7 -> 112
    big = Schema([with_ids(col, 15435) if col.name == "item_id" else col for col in schema])
    model = sr.TwoTowerModel(big)
    assert model.candidate_tower.inputs_block.tables["item_id"].table.output_dim == 112
    assert model.query_tower.inputs_block.tables["user_id"].table.output_dim == 112  # the catalog's width
    huge = Schema([with_ids(col, 10**6) if col.name == "item_id" else col for col in schema])
    assert sr.TwoTowerModel(huge).candidate_tower.inputs_block.tables["item_id"].table.output_dim == 128
    for bad in ("wide", 0, True, 1.5):
        with pytest.raises(ValueError, match=r'id_embedding_dim must be "auto", an integer >= 1 or None, got'):
            sr.TwoTowerModel(schema, id_embedding_dim=bad)


def test_query_input_dropout_drops_in_training_only_and_bad_dropouts_are_named(schema, split):
    _, train, _ = split
    batch = {k: v[:64] for k, v in sr.data.to_arrays(train, schema).items()}
    model = sr.TwoTowerModel(schema)  # the default: half the query input dropped in training
    assert [type(b).__name__ for b in model.query_tower.blocks][:2] == ["Dropout", "MLPBlock"]
    assert model.query_tower.blocks[0].rate == 0.5
    assert "Dropout" not in [type(b).__name__ for b in model.candidate_tower.blocks]
    served = [np.asarray(model.query_tower(batch, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(*served)
    trained = [np.asarray(model.query_tower(batch, training=True)) for _ in range(2)]
    assert not np.allclose(*trained)
    assert "Dropout" not in [type(b).__name__ for b in sr.TwoTowerModel(schema, query_input_dropout=0.0).query_tower.blocks]
    with pytest.raises(ValueError, match=r"query_input_dropout must be in \[0, 1\), got 1.0"):
        sr.TwoTowerModel(schema, query_input_dropout=1.0)
    # between-layer dropout with one-layer towers would do nothing: an error, not a silent no-op
    with pytest.raises(ValueError, match=r"dropout=0.2 applies between a tower's dense layers.*query_units=\(64,\)"):
        sr.TwoTowerModel(schema, dropout=0.2)
    deep = sr.TwoTowerModel(schema, dropout=0.2, query_units=(32, 16), candidate_units=(32, 16))
    assert any(type(layer).__name__ == "Dropout" for layer in deep.candidate_tower.blocks[0].layers)


def blocks(tower):
    return [(type(b).__name__, getattr(b, "rate", None)) for b in tower.blocks][:2]


def test_candidate_input_dropout_drops_the_candidate_towers_input_in_training_only(schema, split):
    _, train, _ = split
    batch = {k: v[:64] for k, v in sr.data.to_arrays(train, schema).items()}
    model = sr.TwoTowerModel(schema, candidate_input_dropout=0.3)
    assert blocks(model.candidate_tower) == [("Dropout", 0.3), ("MLPBlock", None)]
    assert blocks(model.query_tower) == [("Dropout", 0.5), ("MLPBlock", None)]  # the query tower's own
    served = [np.asarray(model.candidate_tower(batch, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(*served)
    trained = [np.asarray(model.candidate_tower(batch, training=True)) for _ in range(2)]
    assert not np.allclose(*trained)
    for bad in (1.0, -0.1, "0.3", True):
        with pytest.raises(ValueError, match=r"candidate_input_dropout must be in \[0, 1\), got"):
            sr.TwoTowerModel(schema, candidate_input_dropout=bad)


def test_item_id_start_is_an_option_kept_when_saved_and_needs_a_user_id(tmp_path, schema):
    assert sr.TwoTowerModel(schema).item_id_start is None  # the default: Keras's initialiser
    no_user = schema.excluding_by_name(["user_id"])
    with pytest.raises(ValueError, match=r'item_id_start="svd" starts the item ids from the user x item matrix '
                                         r"and the schema tags no user_id column"):
        sr.TwoTowerModel(no_user, item_id_start="svd")
    with pytest.raises(ValueError, match=r"TwoTowerModel: item_id_start must be 'auto' or one of \(None, 'svd'\), "
                                         r"got 'pca'"):
        sr.TwoTowerModel(schema, item_id_start="pca")
    with pytest.raises(ValueError, match=r"TwoTowerModelV2: item_id_start must be one of \(None, 'svd'\), got 'auto'"):
        sr.TwoTowerModelV2(sr.Encoder(query_schema(schema), sr.MLPBlock([8])),
                           sr.Encoder(candidate_schema(schema), sr.MLPBlock([8])), item_id_start="auto")
    model = sr.TwoTowerModel(schema, item_id_start="svd")
    model.compile()
    model.fit(sr.data.synthetic(schema, 500, seed=0), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    assert sr.load_model(tmp_path / "m.keras").item_id_start == "svd"


def with_users(schema, count):
    """``schema`` with ``count`` user ids in the user-id domain."""
    from merlin.schema import Schema

    columns = [c.with_properties({**c.properties, "domain": {"min": 0, "max": count - 1}}) if c.name == "user_id"
               else c for c in schema]
    return Schema(columns)


def few_users_options(model):
    return (blocks(model.candidate_tower)[0], model.output_layer.logq_sampling_correction, model.item_id_start)


def test_the_few_users_rule_follows_the_schemas_user_ids_per_item_id(schema, capsys):
    # the synthetic schema: 2,000 user ids over 3,000 item ids, 0.67 a item: the defaults
    assert few_users_options(sr.TwoTowerModel(schema)) == (("MLPBlock", None), 1.1, None)
    few = with_users(schema, 749)  # 0.2497 a item: below 0.25
    assert few_users_options(sr.TwoTowerModel(few)) == (("Dropout", 0.3), 1.35, "svd")
    assert few_users_options(sr.TwoTowerModel(with_users(schema, 750))) == (("MLPBlock", None), 1.1, None)
    # an option given is kept as given; the others still follow the rule
    given = sr.TwoTowerModel(few, candidate_input_dropout=0.0, item_id_start=None)
    assert few_users_options(given) == (("MLPBlock", None), 1.35, None)
    assert sr.TwoTowerModel(few, logq_sampling_correction=1.0).output_layer.logq_sampling_correction == 1.0
    # not where the candidate tower reads the id alone, nor with the history tower
    ids_only = few.excluding_by_name(["item_category", "item_tags", "item_price"])
    assert few_users_options(sr.TwoTowerModel(ids_only)) == (("MLPBlock", None), 1.1, None)
    history = sr.TwoTowerModel(few, user_history=True)
    assert (history.output_layer.logq_sampling_correction, history.item_id_start) == (1.1, None)
    # Keras's own fit cannot read the rows ahead: it says the start is not made
    model = sr.TwoTowerModel(few)
    model.compile()
    rows = sr.data.synthetic(few, 300, seed=0)
    model.fit(sr.data.to_tf_dataset(rows, few, 100), epochs=1, verbose=1)
    assert "fit: the item-id table keeps its initialiser: item_id_start='svd' reads the rows of a table" \
        in capsys.readouterr().out


def test_compile_without_an_optimizer_takes_the_measured_one_and_fit_ends_on_its_average(tmp_path, schema, split):
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    model.compile()
    opt = model.optimizer
    assert (type(opt).__name__, round(float(opt.learning_rate), 6), opt.use_ema, opt.ema_momentum) == (
        "AveragedAdam", 1e-3, True, 0.9995)
    model.fit(split[1].iloc[:1024], batch_size=256, epochs=2, verbose=0)
    # Keras's fit ends with the weights set to the optimizer's average.
    for variable, average in zip(model.trainable_variables, opt._model_variables_moving_average):
        np.testing.assert_array_equal(np.asarray(variable), np.asarray(average), err_msg=variable.path)
    model.save(tmp_path / "model.keras")
    loaded = sr.load_model(tmp_path / "model.keras").optimizer
    assert (type(loaded), loaded.ema_momentum, int(loaded.iterations)) == (sr.AveragedAdam, 0.9995, 8)
    # A given optimizer is used as given.
    model.compile(optimizer="sgd")
    assert (type(model.optimizer).__name__, model.optimizer.use_ema) == ("SGD", False)


def test_users_training_never_read_query_as_the_mean_trained_user(tmp_path, schema, split):
    import tensorflow as tf

    train = split[1][split[1]["user_id"] < 1000].iloc[:4096]
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer="adam")
    model.fit(train, batch_size=512, epochs=1, verbose=0)
    table = model.query_tower.inputs_block.tables["user_id"]
    read = np.isin(np.arange(table.input_dim), train["user_id"].unique())
    np.testing.assert_array_equal(np.asarray(table.trained_rows), read.astype("float32"))

    # two users no batch read, a trained one, with the same age and country
    rows = pd.DataFrame({"user_id": [1500, 1999, int(train["user_id"].iloc[0])],
                         "user_age": np.float32([0.3] * 3), "user_country": [4] * 3})
    features = sr.data.to_arrays(rows, query_schema(schema))
    weights = np.asarray(table.table.embeddings)
    id_part = np.asarray(model.query_tower.inputs_block(features))[:, : weights.shape[1]]
    np.testing.assert_allclose(id_part[:2], np.tile(weights[read].mean(axis=0), (2, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(id_part[2], weights[rows["user_id"][2]])
    embeddings = model.query_embeddings(rows)
    np.testing.assert_allclose(embeddings[0], embeddings[1], rtol=1e-6)
    assert not np.allclose(embeddings[0], embeddings[2])

    # the SavedModel reads the rows the model read
    catalog = sr.data.Catalog.from_interactions(split[0], schema)
    from schemaretrieval import serving

    export = serving.export_serving(model, catalog, tmp_path / "export", k=5)
    served = tf.saved_model.load(str(export)).signatures["serving_default"](
        **{name: tf.constant(rows[name].to_numpy()) for name in rows})
    np.testing.assert_array_equal(served["ids"].numpy(), serving.recommend(model, rows, k=5, catalog=catalog)[1])
    assert len(set(map(tuple, served["ids"].numpy()[:2]))) == 1

    # untrained_user_ids=None: each untrained user keeps its own random row
    keras.utils.set_random_seed(0)
    plain = sr.TwoTowerModel(schema, untrained_user_ids=None)
    plain.compile(optimizer="adam")
    plain.fit(train, batch_size=512, epochs=1, verbose=0)
    assert not hasattr(plain.query_tower.inputs_block.tables["user_id"], "trained_rows")
    unfilled = plain.query_embeddings(rows)
    assert not np.allclose(unfilled[0], unfilled[1])
    np.testing.assert_allclose(unfilled[2], embeddings[2], rtol=1e-5, atol=1e-6)  # the same training otherwise


def test_load_model_names_a_file_that_is_not_a_keras_archive(tmp_path):
    # was: Keras's "File not found: filepath=..." of a file that is there
    model = sr.TwoTowerModel(sr.load_schema("schemas/synthetic.yaml"), query_units=(8,), candidate_units=(8,))
    path = tmp_path / "model.keras"
    model.save(path)
    whole = path.read_bytes()
    for name, content in (("truncated.keras", whole[: len(whole) // 2]), ("empty.keras", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"load_model: '.*{name}' is not a readable .keras archive \(empty, "
                                             r"truncated or not a zip\)"):
            sr.load_model(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"load_model: '.*nowhere.keras': no such file"):
        sr.load_model(tmp_path / "nowhere.keras")
    assert type(sr.load_model(path)).__name__ == "TwoTowerModelV2"


def test_an_item_id_domain_past_the_machines_memory_is_named_before_the_sampler_sizes_by_it():
    # was: the in-batch sampler's counts, sized by the domain first: TensorFlow's ResourceExhaustedError at 1e12,
    # "Can't convert Python sequence with out-of-range integer" at 1e23, neither naming the column
    for high in (10**12, 10**23):
        schema = schema_from_dict({"columns": {
            "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
            "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": high}}}})
        with pytest.raises(SchemaError, match=rf"column 'item_id', key 'domain': domain max {high:,} makes an "
                                              r"embedding table of .* more than this machine's"):
            sr.TwoTowerModel(schema)
