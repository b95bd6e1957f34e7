"""Merlin's PopularityBasedSamplerV2 and CachedCrossBatchSampler, argument by argument, against
hand computations: they are the library's catalog and cross-batch samplers under Merlin's names."""

import keras
import numpy as np
import pytest

import schemaretrieval as mm
from schemaretrieval.data import Catalog
from schemaretrieval.schema import schema_from_dict

ITEMS = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
                                                  "domain": {"min": 0, "max": 5}}}})


def tower():
    return mm.Encoder(ITEMS, keras.layers.Dense(2))


def test_max_id_and_min_id_give_the_log_uniform_share_by_hand():
    sampler = mm.PopularityBasedSamplerV2(max_id=4, min_id=1, max_num_samples=1, catalog=Catalog.of_domain(ITEMS))
    # ids 1, 2, 3 are ranks 0, 1, 2 of log-uniform over 3: (log(r + 2) - log(r + 1)) / log(4)
    by_hand = [0.0, np.log(2) / np.log(4), np.log(3 / 2) / np.log(4), np.log(4 / 3) / np.log(4), 0.0, 0.0]
    np.testing.assert_allclose(sampler.share, by_hand, rtol=1e-12)
    # one sample a step: each id drawn at its share (1000 draws, 4 standard deviations)
    drawn = np.array([int(sampler.draw_rows(training=True)[0]) for _ in range(1000)])
    counts = np.bincount(sampler.table.ids[drawn], minlength=6) / 1000
    assert counts[[0, 4, 5]].sum() == 0
    np.testing.assert_allclose(counts, by_hand, atol=4 * np.sqrt(0.25 / 1000))


def test_max_num_samples_distinct_negatives_with_their_inclusion_probability():
    sampler = mm.PopularityBasedSamplerV2(5, max_num_samples=3, seed=0, catalog=Catalog.of_domain(ITEMS))
    negatives = sampler(np.array([0]), np.ones((1, 2)), candidate_encoder=tower(), training=True)
    ids = negatives.ids.numpy()
    assert len(ids) == 3 == len(set(ids.tolist())) and set(ids.tolist()) <= {0, 1, 2, 3, 4}
    assert sampler.max_num_samples == 3 and sampler.probability_array.sum() == pytest.approx(3.0)
    # the probability of id 0 (share log 2 / log 6) solved as 1 - (1 - q)^T with sum 3 (Rosén)
    np.testing.assert_allclose(sampler.probability_array,
                               mm.samplers.inclusion_probability(sampler.share, 3), rtol=1e-12)
    with pytest.raises(ValueError, match=r"max_num_samples \(6\) must be at most max_id \(5\)"):
        mm.PopularityBasedSamplerV2(5, max_num_samples=6)


def test_unique_false_and_a_catalog_lacking_ids_raise():
    with pytest.raises(NotImplementedError, match=r"unique=False"):
        mm.PopularityBasedSamplerV2(5, unique=False)
    with pytest.raises(ValueError, match=r"lacks 1 id\(s\) of \[min_id, max_id\) = \[0, 5\) \(first \[3\]\)"):
        mm.PopularityBasedSamplerV2(5, max_num_samples=2, catalog=Catalog({"item_id": [0, 1, 2, 4, 5]}, ITEMS))
    with pytest.raises(ValueError, match=r"expected 0 <= min_id < max_id"):
        mm.PopularityBasedSamplerV2(3, min_id=3)


def test_seed_fixes_the_draws_and_the_config_round_trips():
    def draws(seed):
        sampler = mm.PopularityBasedSamplerV2(6, 1, 2, seed=seed, catalog=Catalog.of_domain(ITEMS))
        return [sampler.draw_rows(training=True).numpy().tolist() for _ in range(5)]

    assert draws(3) == draws(3)
    sampler = mm.PopularityBasedSamplerV2(6, 1, 2, seed=3)
    config = sampler.get_config()
    assert {k: config[k] for k in ("max_id", "min_id", "max_num_samples", "unique", "seed")} == \
        {"max_id": 6, "min_id": 1, "max_num_samples": 2, "unique": True, "seed": 3}
    again = mm.PopularityBasedSamplerV2.from_config(config)
    assert (again.max_id, again.min_id, again.num_samples, again.seed) == (6, 1, 2, 3)
    # no catalog of its own: the model's is taken (set_catalog), as for every catalog sampler
    assert again.wants_catalog()
    again.set_catalog(Catalog.of_domain(ITEMS))
    assert again.has_catalog()


def test_cached_cross_batch_capacity_is_a_fifo_of_the_last_positives():
    sampler = mm.CachedCrossBatchSampler(capacity=3, embedding_dim=2)
    for ids in ([1, 2], [3, 4]):
        sampler(np.array(ids), np.ones((len(ids), 2)) * ids[0], training=True)
    # 4 written into 3 rows: 1 was overwritten by 4
    negatives = sampler(np.array([9]), np.zeros((1, 2)), training=False)
    assert sorted(negatives.ids.numpy().tolist()) == [2, 3, 4]


def test_cached_cross_batch_ignore_last_batch_on_sample():
    sampler = mm.CachedCrossBatchSampler(2, ignore_last_batch_on_sample=True, embedding_dim=2)
    first = sampler(np.array([5]), np.ones((1, 2)), training=True)
    assert first.ids.numpy().tolist() == [-1, -1]  # the batch's own positive is not among its negatives
    with pytest.raises(NotImplementedError, match=r"ignore_last_batch_on_sample=False"):
        mm.CachedCrossBatchSampler(2, ignore_last_batch_on_sample=False)
    config = sampler.get_config()
    assert (config["capacity"], config["ignore_last_batch_on_sample"]) == (2, True)
    assert mm.CachedCrossBatchSampler.from_config(config).capacity == 2


def test_both_train_a_two_tower_model_under_merlins_calls():
    import pandas as pd

    schema = schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 19}}}})
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"user_id": rng.integers(0, 10, 200), "item_id": rng.integers(0, 20, 200)})
    for samplers in ([mm.PopularityBasedSamplerV2(max_id=20, min_id=1, max_num_samples=5, seed=0)],
                     ["in-batch", mm.CachedCrossBatchSampler(capacity=64)]):
        query = mm.Encoder(mm.schema.query_schema(schema), mm.MLPBlock([4]))
        candidate = mm.Encoder(mm.schema.candidate_schema(schema), mm.MLPBlock([4]))
        model = mm.TwoTowerModelV2(query, candidate, negative_samplers=samplers)
        model.compile(optimizer="adam")
        history = model.fit(data, batch_size=50, epochs=1, verbose=0, catalog=Catalog.of_domain(schema))
        assert np.isfinite(history.history["loss"]).all()
