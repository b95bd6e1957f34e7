"""TwoTowerModel(schema) with its defaults clearly beats a popularity ranking
on a small MovieLens-shaped preset (the full-size figures: docs/experiments/movielens-100k-search.md)."""

import keras
import pytest

import schemaretrieval as sr
from schemaretrieval.models.defaults import DEFAULT_BATCH_SIZE

EPOCHS = 4  # of the default 12: enough for the margin, in a few seconds


@pytest.fixture(scope="module")
def results():
    frame, schema = sr.data.movielens_like(num_users=400, num_items=700, num_interactions=30_000, seed=1)
    train, test = sr.data.random_split(frame, 0.2, seed=1)
    catalog = sr.data.Catalog.from_interactions(frame, schema)
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile()  # the measured optimizer
    model.fit(train, epochs=EPOCHS, verbose=0)  # the default batch size
    popularity = sr.baselines.Popularity().fit(train, "user_id", "item_id")
    out = {}
    for excl in (None, train):
        key = "excl" if excl is not None else "all"
        out["model", key] = model.evaluate_topk(test, catalog, ks=[10, 50, 100], exclude=excl)
        out["popularity", key] = popularity.evaluate_topk(
            test, candidate_ids=catalog.ids, ks=[10, 50, 100], exclude=excl)
    return out


@pytest.mark.parametrize("key", ["all", "excl"])
def test_defaults_beat_popularity_by_a_clear_margin(results, key):
    model, popularity = results["model", key], results["popularity", key]
    # Without exclusion, recall@10 is about even on this small preset (users'
    # training items fill the model's top 10); docs/experiments/movielens-100k-search.md has the figures.
    for k in (10, 50, 100) if key == "excl" else (50, 100):
        assert model[f"recall@{k}"] > popularity[f"recall@{k}"] + 0.02, (k, model, popularity)
    # with seen items excluded, popularity wastes its top slots
    if key == "excl":
        assert model["recall@10"] > 1.4 * popularity["recall@10"], (model, popularity)


def test_the_default_batch_size_is_the_measured_one():
    assert DEFAULT_BATCH_SIZE == 128
