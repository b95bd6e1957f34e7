"""benchmarks/quality.py and benchmarks/generalisation_search.py end to end on
the Last.fm fixture: the real-set paths (reader, schema, ETL, validation
split, EASE's grid, sample weights) run; the figures are docs/defaults.md's.

Each script's ``main`` runs in this process: what is checked is its output
and what it writes, not the process, and each process of its own would pay
TensorFlow's import again."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import synthetic_schema

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = str(ROOT / "tests" / "fixtures" / "lastfm-2k")


@pytest.fixture(autouse=True)
def script_environment(monkeypatch):
    """The scripts set TF_CPP_MIN_LOG_LEVEL on import, for their own process: undone
    after each test, so that later tests' subprocesses log as a user's do."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def script(name):
    """benchmarks/<name>.py as a module of its own."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name, *args, capsys):
    """The script's main on ``args``; what it printed."""
    capsys.readouterr()
    script(name).main([str(a) for a in args])
    return capsys.readouterr().out


def test_quality_reads_lastfm_into_the_one_table(tmp_path, capsys):
    out = run("quality", "--sets", "lastfm", "--lastfm", FIXTURE, "--epochs", "1",
              "--ease-l2", "10,100", "--json", tmp_path / "q.json", capsys=capsys)
    assert "Last.fm 2k  TwoTowerModel(schema) defaults" in out
    rows = json.loads((tmp_path / "q.json").read_text())["results"]["Last.fm 2k"]
    ease = next(m for name, m in rows.items() if name.startswith("EASE"))
    assert set(ease["validation"]) == {"10", "100"} and set(ease["l2"].values()) <= {10.0, 100.0}


def test_the_friend_graph_is_one_row_per_friendship_the_friend_as_the_item():
    train, test, schema, source = script("quality").lastfm_friends(FIXTURE, 0)
    assert sorted(schema.column_names) == ["item_id", "user_id"] and "friends" in source
    # the fixture's user_friends.dat: 16 (user, friend) rows, split 80/20 at random
    assert (len(train), len(test)) == (13, 3)
    # 8 users, each with 2 friends; encoded by the ETL from id 3 (0-2 reserved)
    assert train.groupby("user_id").size().max() <= 2 and train["user_id"].min() >= 3
    assert len(pd.concat([train, test]).drop_duplicates()) == 16


def test_the_shop_log_reaches_the_few_users_rule_through_the_etl():
    import schemaretrieval as sr

    quality = script("quality")
    for users, few in ((40, True), (400, False)):
        train, test, schema, source = quality.ecommerce(0, users, 400, 1600)
        assert (len(train), len(test)) == (1280, 320) and f"{users} users, 400 items" in source
        assert {"item_brand", "item_category", "item_price", "item_tags"} <= set(schema.column_names)
        model = sr.TwoTowerModel(schema)  # the domains the ETL wrote: user ids per item id below 0.25 or not
        assert (model.item_id_start, model.output_layer.logq_sampling_correction) == (
            ("svd", 1.35) if few else (None, 1.1)), users


def test_the_search_reads_validation_rows_and_weighs_by_play_count(tmp_path, capsys):
    out = run("generalisation_search", "--data", "lastfm", "--lastfm", FIXTURE,
              "--configs", "defaults,weight-log1p,smooth0.1,id_embedding_dim=96/logits_temperature=0.15",
              "--epochs", "1,2", "--ease-l2", "10", "--out", tmp_path / "s.jsonl", capsys=capsys)
    assert "stage valid: 26 train / 6 read rows" in out
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(r["config"], r.get("epochs")) for r in rows] == [
        ("popularity", None), ("EASE (l2 10)", None), ("defaults", 1), ("defaults", 2),
        ("weight-log1p", 1), ("weight-log1p", 2), ("smooth0.1", 1), ("smooth0.1", 2),
        ("id_embedding_dim=96/logits_temperature=0.15", 1), ("id_embedding_dim=96/logits_temperature=0.15", 2)]


def test_the_search_refuses_an_unknown_config():
    # SystemExit with a message: the process prints it on stderr and exits 1
    with pytest.raises(SystemExit, match="unknown config 'temp9'") as refused:
        search_module().main(["--data", "lastfm", "--lastfm", FIXTURE, "--configs", "temp9"])
    assert isinstance(refused.value.code, str)


def search_module():
    return script("generalisation_search")


def test_derive_thins_rows_or_users_and_keeps_the_items_with_enough_rows():
    search = search_module()
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3], "item_id": [10, 10, 10, 20, 20, 30]})
    dense = search.derive(train, min_item_rows=2)
    assert dense["item_id"].tolist() == [10, 10, 10, 20, 20]  # item 30 has one row
    thin = search.derive(train, thin=0.5, seed=3)
    assert len(thin) == 3 and set(map(tuple, thin.to_numpy())) <= set(map(tuple, train.to_numpy()))
    half = search.derive(train, users=0.34, seed=1)  # one user of three, with every row of theirs
    assert half["user_id"].nunique() == 1 and len(half) == (train["user_id"] == half["user_id"][0]).sum()
    assert search.derive(train).equals(train)
    with pytest.raises(SystemExit, match="--thin must be in"):
        search.derive(train, thin=0)
    with pytest.raises(SystemExit, match="--users must be in"):
        search.derive(train, users=1.5)
    with pytest.raises(SystemExit, match="leave no training rows"):
        search.derive(train, min_item_rows=4)


def test_a_weight_config_weighs_by_the_schemas_target_scaled_to_mean_one():
    from merlin.schema import ColumnSchema, Schema, Tags

    search = search_module()
    ids = [ColumnSchema(name, tags=[tag, Tags.CATEGORICAL], dtype=np.int64, properties={"domain": {"min": 0, "max": 9}})
           for name, tag in (("user_id", Tags.USER_ID), ("item_id", Tags.ITEM_ID))]
    rows = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [5, 6, 7, 8], "rating": [1.0, 2.0, 3.0, 6.0]})
    rating = ColumnSchema("rating", tags=[Tags.TARGET, Tags.CONTINUOUS], dtype=np.float32)
    linear = search.CONFIGS["weight-linear"]["weight"]
    features, _, weights = next(iter(search.weighted_batches(rows, Schema([*ids, rating]), 4, 0, linear)))
    # the rating as it is, over its mean 3: rows in the order the shuffle gave them
    np.testing.assert_allclose(weights.numpy(), features["rating"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.sort(weights.numpy()), [1 / 3, 2 / 3, 1.0, 2.0], rtol=1e-6)
    with pytest.raises(SystemExit, match=r"one target column in the schema, found \[\]"):
        search.weighted_batches(rows[["user_id", "item_id"]], Schema(ids), 4, 0, np.log1p)


def test_a_written_out_config_adds_uniform_negatives_beside_the_in_batch_ones():
    search = search_module()
    kwargs = search.config("uniform=4/logq_sampling_correction=1.5")["kwargs"](synthetic_schema())
    samplers = kwargs.pop("negative_samplers")
    assert kwargs == {"logq_sampling_correction": 1.5}
    assert [type(s).__name__ for s in samplers] == ["InBatchSampler", "UniformSampler"]
    assert samplers[1].num_samples == 4


def test_popularity_share_against_a_hand_count():
    # rest: item counts 1: 4, 3: 3, 2: 2, 4: 2; item 4 co-occurs only with 3 (user E), 3 with 1 (C, D)
    rest = pd.DataFrame({"user_id": list("AABBCCDDEEF"), "item_id": [1, 2, 1, 2, 1, 3, 1, 3, 3, 4, 4]})
    # F (seen 4) -> 3: Popularity ranks 1 first (miss at k=1), item-item ranks 3 first (hit);
    # E (seen 3, 4) -> 1: both rank 1 first
    cut = pd.DataFrame({"user_id": ["F", "E", "Z"], "item_id": [3, 1, 2]})  # Z: no rows in rest, left out
    assert search_module().popularity_share(rest, cut, k=1) == (0.5, 1.0, 0.5)
    assert np.isnan(search_module().popularity_share(rest, cut.tail(1))).all()  # no user of the cut in rest


def test_a_zero_popularity_term_ranks_as_evaluate_topk(tmp_path):
    search = search_module()
    train, _, schema, _ = search.lastfm(FIXTURE, 0)
    catalog = search.sr.data.Catalog.from_interactions(train, schema)
    model = search.sr.TwoTowerModel(schema)
    model.compile()
    model.fit(train, epochs=1, verbose=0)
    rows = train.head(12)
    assert search.recalls(search.with_popularity_term(model, catalog, train, 0.0), rows, train) == search.recalls(
        lambda r, ex: model.evaluate_topk(r, catalog, ks=(10, 100), exclude=ex), rows, train)
    assert search.config("popularity_term=0.5/logq_sampling_correction=1.5")["popularity_term"] == 0.5


def test_an_ensemble_ranks_by_its_members_summed_scores(capsys):
    search = search_module()
    sr = search.sr
    schema = synthetic_schema()
    train = sr.data.synthetic(schema, 2000, seed=0)
    catalog = sr.data.Catalog.from_interactions(train, schema)
    models = []
    for seed in (0, 1):
        search.keras.utils.set_random_seed(seed)
        models.append(sr.TwoTowerModel(schema))
        models[-1].build()
    rows = train.head(200)
    # one member: the library's own ranking
    assert search.recalls(search.ensemble(models[:1], catalog), rows, None) == search.recalls(
        lambda r, ex: models[0].evaluate_topk(r, catalog, ks=(10, 100), exclude=ex), rows, None)
    # two: by hand, the rank of each row's item under the sum of the two models' scores
    scores = sum(np.asarray(m.query_embeddings(rows)) @ np.asarray(m.candidate_embeddings(catalog)).T for m in models)
    target = pd.Index(catalog.ids).get_indexer(rows["item_id"])
    ahead = (scores > scores[np.arange(len(rows)), target][:, None]).sum(axis=1)
    m = search.ensemble(models, catalog)(rows, None)
    assert m["recall@10"] == pytest.approx(np.mean(ahead < 10))
    assert m["recall@100"] == pytest.approx(np.mean(ahead < 100))
    assert 0 < np.mean(ahead < 10) < np.mean(ahead < 100) < 1  # no bound: the ranks were read
    with pytest.raises(SystemExit):
        search.main(["--data", "lastfm", "--lastfm", FIXTURE, "--members", "2", "--configs", "popularity_term=0.5"])
    assert "a popularity_term config ranks one model's" in capsys.readouterr().err


def test_the_learned_prior_moves_the_correction_by_its_coefficient():
    search = search_module()
    sr = search.sr
    scores, probability = np.array([[1.0, 0.5]], "float32"), np.array([0.2, 0.05], "float32")
    learned = search.CONFIGS["learned-prior"]["kwargs"](synthetic_schema())["outputs"]
    plain = sr.ContrastiveOutput(logits_temperature=0.2, logq_sampling_correction=1.1)
    weight = 1.1 * 0.2  # the defaults' weight after the temperature, as ContrastiveOutput passes it
    # at its start (0) the learned output corrects as the defaults do
    np.testing.assert_allclose(learned._corrected(scores, probability, (1, -1), weight),
                               plain._corrected(scores, probability, (1, -1), weight), rtol=1e-6)
    learned.beta.assign(0.5)  # then by (w - beta) log q: 0.6 x 0.2 here
    np.testing.assert_allclose(learned._corrected(scores, probability, (1, -1), weight),
                               scores - 0.6 * 0.2 * np.log(probability), rtol=1e-6)


def test_the_candidate_point_is_the_librarys_own_options():
    search = search_module()
    schema = synthetic_schema()
    model = search.sr.TwoTowerModel(schema, **search.config("candidate-point")["kwargs"](schema))
    assert type(model.candidate_tower.blocks[0]).__name__ == "Dropout" and model.candidate_tower.blocks[0].rate == 0.3
    assert model.output_layer.logq_sampling_correction == 1.35 and model.item_id_start == "svd"
    written = search.config("candidate_input_dropout=0.3/logq_sampling_correction=1.35/item_id_start='svd'")
    assert written["kwargs"](schema) == search.config("candidate-point")["kwargs"](schema)


def test_the_svd_start_puts_the_training_matrix_rank_k_factors_in_the_id_tables():
    search = search_module()
    schema = synthetic_schema()
    train = search.sr.data.synthetic(schema, 600, seed=0)
    model = search.sr.TwoTowerModel(schema, id_embedding_dim=8)
    model.build()
    users = search.id_table(model.query_tower, model.query_id_column)
    items = search.id_table(model.candidate_tower, model.candidate_id_column)
    before_users = np.array(users)
    singular = search.init_ids_from_svd(model, train, 0.05)
    u, v = np.array(users), np.array(items)
    k = len(singular)
    assert k == min(u.shape[1], v.shape[1]) and np.allclose([u[:, :k].std(), v[:, :k].std()], 0.05)
    np.testing.assert_array_equal(u[:, k:], before_users[:, k:])  # the columns past k keep their start
    # the tables' product is the matrix's best rank-k approximation, up to the two scales, within the
    # precision of the library's randomized solver (`top_singular_vectors`): the item columns span the
    # top-k right singular space (they keep all its energy), and the user columns are the matrix's images
    # of them, so the product is X V V^T
    matrix = np.zeros((u.shape[0], v.shape[0]))
    matrix[train["user_id"], train["item_id"]] = 1.0
    left, values, right = np.linalg.svd(matrix)
    np.testing.assert_allclose(singular, values[:k], rtol=1e-4)  # a flat spectrum: the last converge slowest
    directions = v[:, :k] / np.linalg.norm(v[:, :k], axis=0)  # V's columns: the item rows are V S^0.5
    assert np.linalg.norm(matrix @ directions) ** 2 / (values[:k] ** 2).sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(u[:, :k] / np.linalg.norm(u[:, :k], axis=0),
                               (matrix @ directions) / np.linalg.norm(matrix @ directions, axis=0), atol=1e-6)
    search.init_ids_from_svd(model, train, 0.05)  # the same start again: the factors' signs are fixed
    np.testing.assert_array_equal(np.array(users), u)
    assert search.config("svd_init=0.03/logq_sampling_correction=1.6")["svd_init"] == 0.03
    users.assign(before_users)
    search.init_ids_from_svd(model, train, 0.05, tables=("items",))  # the item table alone
    np.testing.assert_array_equal(np.array(users), before_users)
    np.testing.assert_array_equal(np.array(items), v)
    assert search.config("svd_init=0.01/svd_tables=items")["svd_tables"] == ("items",)
    search.sr.training.start_item_ids(model, train, 0.05)  # the library's start: the same item table
    np.testing.assert_array_equal(np.array(items), v)
