"""The built-in samplers: what they draw, with which probability, what they
remember, how names reach them, and that each trains well on skewed data."""

import keras
import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.data import Catalog
from schemaretrieval.retrieval.samplers import CrossBatchSampler, PopularitySampler, UniformSampler, inclusion_probability

SCHEMA_PATH = "schemas/synthetic.yaml"


@pytest.fixture(scope="module")
def schema():
    return sr.load_schema(SCHEMA_PATH)


@pytest.fixture(scope="module")
def skewed(schema):
    # 12,000 rows: each trained output still clears 1.2x popularity by a margin
    # of about a quarter, and logQ lifts in-batch recall by ~0.38 (0.15 asked).
    interactions = sr.data.synthetic(schema, 12_000, seed=1, popularity_skew=1.5)
    train, test = sr.data.random_split(interactions, 0.2, seed=1)
    return interactions, train, test, sr.data.Catalog.from_interactions(interactions, schema)


# Probabilities -----------------------------------------------------------------


def test_popularity_sampler_draws_distinct_items_with_the_reported_probabilities(schema):
    frame = pd.DataFrame(
        {
            "item_id": np.arange(12),
            "item_category": np.zeros(12, dtype="int64"),
            "item_tags": [[1]] * 12,
            "item_price": np.zeros(12, dtype="float32"),
        }
    )
    counts = np.array([40, 20, 10, 8, 6, 5, 4, 3, 2, 1, 1, 0], dtype="float64")
    sampler = PopularitySampler(num_samples=4, catalog=Catalog(frame, schema, counts=counts), seed=0)
    seen = np.zeros(12)
    draws = 1500
    for _ in range(draws):
        rows = np.asarray(sampler.draw_rows())
        assert len(set(rows.tolist())) == 4  # without replacement
        seen[rows] += 1
    expected = inclusion_probability(counts, 4)
    assert expected[-1] == 0 and seen[-1] == 0  # a count of 0 is never drawn
    np.testing.assert_allclose(expected.sum(), 4.0, rtol=1e-6)
    # within ~4 standard errors of the empirical inclusion frequencies
    np.testing.assert_allclose(seen / draws, expected, atol=0.05)
    # the item shares themselves are exact, not a Zipf guess
    np.testing.assert_allclose(sampler.share, counts / counts.sum())


def test_uniform_sampler_probability_is_samples_over_catalog(schema, skewed):
    catalog = skewed[3]
    tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([8]))
    negatives = UniformSampler(num_samples=16, catalog=catalog, seed=0)(
        np.array([0]), np.zeros((1, 8)), candidate_encoder=tower
    )
    assert tuple(negatives.embeddings.shape) == (16, 8)
    assert len(np.unique(np.asarray(negatives.ids))) == 16
    assert set(np.asarray(negatives.ids)) <= set(catalog.ids)
    np.testing.assert_allclose(np.asarray(negatives.probability), 16 / len(catalog), rtol=1e-6)


def test_catalog_sampler_draws_outside_training_leave_the_training_draws_alone(schema, skewed):
    frame = skewed[3]
    tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([8]))

    def draws(evaluate_between):
        sampler = UniformSampler(num_samples=16, catalog=frame, seed=3)
        out = []
        for _ in range(2):
            out.append(np.asarray(sampler(np.array([0]), np.zeros((1, 8)), candidate_encoder=tower, training=True).ids))
            if evaluate_between:
                held_out = [np.asarray(sampler(np.array([0]), np.zeros((1, 8)), candidate_encoder=tower).ids)
                            for _ in range(2)]
                # the same negatives at every evaluation call: val_loss compares across epochs
                np.testing.assert_array_equal(held_out[0], held_out[1])
        return out

    plain, evaluated = draws(False), draws(True)
    assert not np.array_equal(plain[0], plain[1])
    for a, b in zip(plain, evaluated):
        np.testing.assert_array_equal(a, b)


def test_fit_with_validation_data_trains_the_same_weights_as_without(schema, skewed):
    _, train, test, catalog = skewed

    def weights(**fit_kwargs):
        keras.utils.set_random_seed(0)
        model = sr.TwoTowerModel(schema, negative_samplers=UniformSampler(num_samples=32, seed=0))
        model.compile(optimizer="adam")
        model.fit(train.iloc[:2000], batch_size=256, epochs=2, seed=0, verbose=0, catalog=catalog, **fit_kwargs)
        return [np.asarray(v) for v in model.trainable_variables]

    for a, b in zip(weights(), weights(validation_data=test.iloc[:500])):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_catalog_samplers_without_a_catalog_say_how_to_give_one():
    output = sr.ContrastiveOutput(negative_samplers="uniform")
    with pytest.raises(ValueError, match=r"has no catalog to draw from.*catalog=sr.data.Catalog.from_interactions.*set_catalog"):
        output(np.ones((2, 4)), np.ones((2, 4)), np.array([0, 1]))


def test_a_catalog_of_another_schema_is_checked_against_the_models(schema):
    # was: accepted, then InvalidArgumentError from a gather inside the uniform sampler's graph
    columns = sr.schema.schema_to_dict(schema)["columns"]
    wider = sr.schema.schema_from_dict({"columns": {**columns, "item_id": {**columns["item_id"],
                                                                           "domain": {"min": 0, "max": 9999}}}})
    rows = sr.data.synthetic(schema, 300, seed=0)
    rows.loc[0, "item_id"] = 5036
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), negative_samplers="uniform")
    with pytest.raises(ValueError, match=r"set_catalog: the catalog: column 'item_id': value 5036 at row \d+ is outside "
                                         r"the schema's domain \[0, 2999\]"):
        model.set_catalog(Catalog.from_interactions(rows, wider))
    with pytest.raises(ValueError, match=r"set_catalog: the catalog: .*item_price"):
        model.set_catalog(Catalog(rows.drop_duplicates("item_id")[["item_id"]], sr.schema.schema_from_dict(
            {"columns": {"item_id": columns["item_id"]}})))


# In-batch frequencies ------------------------------------------------------------


def test_in_batch_probability_is_the_expected_copies_per_batch():
    # q = 0.25, 0.75; a batch of 4 holds 4q copies of each on average, and
    # each copy is a column of the logits (1 - (1 - q)^4 would undercount).
    sampler = sr.InBatchSampler(item_counts=np.array([1.0, 3.0]))
    negatives = sampler(np.array([0, 1, 1, 1]), np.ones((4, 2)))
    np.testing.assert_allclose(np.asarray(negatives.probability), [1.0, 3.0, 3.0, 3.0], rtol=1e-6)


def test_in_batch_streaming_estimate_by_hand():
    sampler = sr.InBatchSampler(num_items=4, estimate_rate=0.5)

    def step(ids, training=True):
        return np.asarray(sampler(np.array(ids), np.ones((len(ids), 2)), training=training).probability)

    # step 1: first sightings wait 1 step; item 0 comes twice
    np.testing.assert_allclose(step([0, 0, 1]), [2.0, 2.0, 1.0])
    # step 2: item 0 after 1 step, copies 0.5 * 2 + 0.5 * 1; item 2 first seen after 2 steps, twice
    np.testing.assert_allclose(step([0, 2, 2]), [1.5, 1.0, 1.0])
    # outside training the estimate is read, not updated
    np.testing.assert_allclose(step([1, 3], training=False), [1.0, 1.0])
    # step 3: item 1 after 2 steps, interval 0.5 * 1 + 0.5 * 2; item 3 first seen after 3 steps
    np.testing.assert_allclose(step([1, 3]), [1 / 1.5, 1 / 3], rtol=1e-6)


# The cross-batch memory ----------------------------------------------------------


def test_cross_batch_probability_is_the_chance_the_bank_holds_the_item():
    sampler = CrossBatchSampler(capacity=4, embedding_dim=2, refresh=False, item_counts=np.array([1.0, 3.0]))
    sampler(np.array([1, 0]), np.ones((2, 2)), training=True)
    negatives = sampler(np.array([0]), np.ones((1, 2)), training=False)
    np.testing.assert_array_equal(np.asarray(negatives.ids), [1, 0, -1, -1])
    # 4 draws of q = 0.75 and 0.25: 1 - (1 - q)^4; empty slots carry 1 (they are removed anyway)
    np.testing.assert_allclose(np.asarray(negatives.probability), [1 - 0.25**4, 1 - 0.75**4, 1.0, 1.0], rtol=1e-6)


def test_probability_of_any_id_is_what_the_sampler_reports_when_it_draws_it(schema, skewed):
    # The output corrects each row's positive by it (without in-batch negatives).
    catalog = skewed[3]
    tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([8]))
    for sampler in (PopularitySampler(8, catalog=catalog, seed=0), UniformSampler(8, catalog=catalog, seed=0)):
        negatives = sampler(np.array([0]), np.zeros((1, 8)), candidate_encoder=tower, training=True)
        np.testing.assert_allclose(np.asarray(sampler.probability_of(negatives.ids)),
                                   np.asarray(negatives.probability), rtol=1e-6)
        # An id the catalog lacks is never drawn: it is left uncorrected.
        missing = int(catalog.ids.max()) + 5
        assert float(sampler.probability_of(np.array([missing]))[0]) == 1.0
    bank = CrossBatchSampler(capacity=4, embedding_dim=2, item_counts=np.array([1.0, 3.0]))
    np.testing.assert_allclose(np.asarray(bank.probability_of(np.array([1, 0, -1, 7]))),
                               [1 - 0.25**4, 1 - 0.75**4, 1.0, 1.0], rtol=1e-6)
    assert CrossBatchSampler(capacity=4, embedding_dim=2).probability_of(np.array([0])) is None
    assert sr.InBatchSampler().probability_of(np.array([0])) is None


def test_cross_batch_memory_is_a_fifo_of_past_batches():
    sampler = CrossBatchSampler(capacity=4, embedding_dim=2, refresh=False)
    first = sampler(np.array([1, 2, 3]), np.ones((3, 2)), training=True)
    np.testing.assert_array_equal(np.asarray(first.ids), [-1, -1, -1, -1])  # empty at the start
    second = sampler(np.array([4, 5]), 2 * np.ones((2, 2)), training=True)
    np.testing.assert_array_equal(np.asarray(second.ids), [1, 2, 3, -1])
    third = sampler(np.array([6]), np.ones((1, 2)), training=False)  # evaluation does not write
    np.testing.assert_array_equal(np.asarray(third.ids), [5, 2, 3, 4])  # 5 wrapped onto the oldest slot
    np.testing.assert_allclose(np.asarray(third.embeddings)[:, 0], [2, 1, 1, 2])
    np.testing.assert_array_equal(np.asarray(sampler(np.array([6]), np.ones((1, 2))).ids), [5, 2, 3, 4])


def test_cross_batch_memory_has_no_gradient_and_empty_slots_are_removed():
    import tensorflow as tf

    sampler = CrossBatchSampler(capacity=3, embedding_dim=2, refresh=False)
    sampler(np.array([7]), np.ones((1, 2)), training=True)  # bank: [7, -1, -1]
    output = sr.ContrastiveOutput(negative_samplers=sampler, downscore_false_negatives=True)
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    positive = tf.Variable([[1.0, 1.0], [0.5, 0.5]])
    with tf.GradientTape() as tape:
        logits, _ = output.logits_and_labels(query, positive, np.array([7, 8]), training=False)
    logits = np.asarray(logits)
    assert (logits[:, 2:] < -1e30).all()  # empty slots
    assert logits[0, 1] < -1e30 and logits[1, 1] == 1.0  # item 7 is row 0's own item
    grad = tape.gradient(tf.reduce_sum(tf.constant(0.0) + logits[1, 1]), positive)
    assert grad is None


def test_cross_batch_memory_is_saved_with_the_model(tmp_path, schema, skewed):
    train = skewed[1].iloc[:2048]
    model = sr.TwoTowerModel(schema, negative_samplers=sr.CrossBatchSampler(capacity=256))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="CrossBatchSampler gives no probabilities"):  # logQ is on by default
        model.fit(train, batch_size=256, epochs=1, verbose=0)
    model.fit(train, batch_size=256, epochs=1, verbose=0, catalog=Catalog.from_interactions(train, schema))
    bank = model.output_layer.negative_samplers[0]
    assert (np.asarray(bank.bank_ids) >= 0).all()
    model.save(tmp_path / "model.keras")
    loaded = sr.load_model(tmp_path / "model.keras").output_layer.negative_samplers[0]
    np.testing.assert_array_equal(np.asarray(loaded.bank_ids), np.asarray(bank.bank_ids))
    np.testing.assert_allclose(np.asarray(loaded.bank), np.asarray(bank.bank))


def test_cross_batch_bank_is_re_embedded_with_gradient_when_it_has_a_catalog(schema, skewed):
    import tensorflow as tf

    catalog = skewed[3]
    tower = sr.Encoder(sr.schema.candidate_schema(schema), sr.MLPBlock([8]))
    known = [int(i) for i in catalog.ids[:2]]
    sampler = CrossBatchSampler(capacity=4, embedding_dim=8)
    sampler.set_catalog(catalog)
    assert sampler.has_catalog() and not sampler.needs_catalog
    sampler(np.array(known), np.zeros((2, 8)), candidate_encoder=tower, training=True)  # bank: known, -1, -1
    with tf.GradientTape() as tape:
        negatives = sampler(np.array(known[:1]), np.zeros((1, 8)), candidate_encoder=tower, training=True)
        total = tf.reduce_sum(negatives.embeddings)
    np.testing.assert_array_equal(np.asarray(negatives.ids), known + [-1, -1])
    fresh = np.asarray(tower(catalog.lookup(np.array(known)), training=False))
    np.testing.assert_allclose(np.asarray(negatives.embeddings)[:2], fresh, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(negatives.embeddings)[2:], 0.0)  # empty slots keep the stored rows
    assert any(g is not None for g in tape.gradient(total, tower.trainable_variables))
    # refresh=False: the stored (stale) rows, whatever it is given
    stale = CrossBatchSampler(capacity=4, embedding_dim=8, refresh=False)
    stale.set_catalog(catalog)
    stale(np.array(known), np.zeros((2, 8)), candidate_encoder=tower, training=True)
    np.testing.assert_array_equal(np.asarray(stale(np.array(known[:1]), np.zeros((1, 8)), candidate_encoder=tower).embeddings), 0.0)
    assert CrossBatchSampler.from_config(stale.get_config()).refresh is False


def test_cross_batch_warns_on_a_stale_bank_only_when_not_asked_for_and_refresh_true_needs_a_catalog():
    import warnings

    with pytest.warns(UserWarning, match="stale bank"):
        CrossBatchSampler(capacity=4, embedding_dim=2)(np.array([1]), np.ones((1, 2)), training=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrossBatchSampler(capacity=4, embedding_dim=2, refresh=False)(np.array([1]), np.ones((1, 2)), training=True)
    strict = CrossBatchSampler(capacity=4, embedding_dim=2, refresh=True)
    assert strict.needs_catalog and strict.wants_catalog()
    with pytest.raises(ValueError, match="needs a catalog"):
        strict(np.array([1]), np.ones((1, 2)), training=True)
    with pytest.raises(ValueError, match="refresh must be"):
        CrossBatchSampler(refresh="yes")


# Names ------------------------------------------------------------------------------


def test_names_reach_samplers_from_every_entry_point(schema):
    query = sr.Encoder(sr.schema.query_schema(schema))
    candidate = sr.Encoder(sr.schema.candidate_schema(schema))
    v2 = sr.TwoTowerModelV2(query, candidate, negative_samplers=["in-batch", "uniform"])
    assert [type(s).__name__ for s in v2.output_layer.negative_samplers] == ["InBatchSampler", "UniformSampler"]
    out = sr.ContrastiveOutput(negative_samplers="popularity")
    assert type(out.negative_samplers[0]) is PopularitySampler
    model = sr.TwoTowerModel(schema, negative_samplers="cross-batch")
    assert type(model.output_layer.negative_samplers[0]) is CrossBatchSampler
    bpr = sr.TwoTowerModel(schema, outputs=sr.BPROutput(negative_samplers="uniform", loss="top1-max"))
    assert type(bpr.output_layer.loss).__name__ == "TOP1maxLoss"


@pytest.mark.parametrize("data", ["table", "dataset"])
def test_fit_without_a_catalog_says_what_to_do(schema, skewed, data):
    model = sr.TwoTowerModel(schema, negative_samplers="uniform")
    model.compile(optimizer="adam")
    train = skewed[1].iloc[:512]
    x = train if data == "table" else sr.data.to_tf_dataset(train, schema, 256)
    with pytest.raises(ValueError, match=r"model.fit\(train, catalog=sr.data.Catalog.from_interactions"):
        model.fit(x, epochs=1, verbose=0)
    model.fit(x, epochs=1, verbose=0, catalog=Catalog.from_interactions(train, schema))


def test_logq_correction_without_probabilities_is_an_error_not_a_no_op():
    output = sr.ContrastiveOutput(None, "in-batch", logq_sampling_correction=1.0)
    with pytest.raises(ValueError, match=r"logq_sampling_correction.*InBatchSampler gives no probabilities"):
        output(np.eye(2, dtype="float32"), np.eye(2, dtype="float32"), np.array([0, 1]), training=True)


# Correctness on data ----------------------------------------------------------------

# (label, output) on the skewed set; each trains 3 epochs.
CONFIGS = {
    "in-batch": lambda: sr.ContrastiveOutput(None, "in-batch", logits_temperature=0.1, logq_sampling_correction=1.0),
    "uniform": lambda: sr.ContrastiveOutput(None, sr.UniformSampler(256, seed=0), logits_temperature=0.1, logq_sampling_correction=1.0),
    "popularity": lambda: sr.ContrastiveOutput(None, sr.PopularitySampler(256, seed=0), logits_temperature=0.1, logq_sampling_correction=1.0),
    "cross-batch": lambda: sr.ContrastiveOutput(None, "cross-batch", logits_temperature=0.1, logq_sampling_correction=1.0),
    "in-batch+uniform": lambda: sr.ContrastiveOutput(None, ["in-batch", sr.UniformSampler(256, seed=0)], logits_temperature=0.1, logq_sampling_correction=1.0),
    "bpr uniform": lambda: sr.BPROutput(sr.UniformSampler(256, seed=0), loss="bpr", logits_temperature=0.1),
    "in-batch, no logQ": lambda: sr.ContrastiveOutput(None, "in-batch", logits_temperature=0.1, logq_sampling_correction=False),
}


def train_recall(schema, skewed, make_output, epochs=3):
    interactions, train, test, catalog = skewed
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, outputs=make_output())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    # The samplers draw from (and count) the training rows' items.
    model.fit(train, batch_size=512, epochs=epochs, seed=0, verbose=0, catalog=Catalog.from_interactions(train, schema))
    return model.evaluate_topk(test, catalog, ks=[10])["recall@10"]


@pytest.fixture(scope="module")
def recalls(schema, skewed):
    return {name: train_recall(schema, skewed, make) for name, make in CONFIGS.items()}


@pytest.fixture(scope="module")
def popularity(skewed):
    interactions, train, test, catalog = skewed
    return sr.baselines.Popularity().fit(train, None, "item_id").evaluate_topk(
        test, candidate_ids=catalog.ids, ks=[10]
    )["recall@10"]


@pytest.mark.parametrize("name", [n for n in CONFIGS if "no logQ" not in n])
def test_every_sampler_and_output_beats_popularity_on_skewed_data(name, recalls, popularity):
    assert recalls[name] > 1.2 * popularity, (name, recalls, popularity)


def test_logq_correction_improves_in_batch_recall(recalls, popularity):
    print({"popularity baseline": popularity, **recalls})
    assert recalls["in-batch"] > recalls["in-batch, no logQ"] + 0.15, recalls


def test_the_defaults_train_under_mixed_bfloat16_with_a_float32_frequency_estimate(schema):
    # Under a mixed policy Keras reads float variables as bfloat16 inside a
    # layer; the estimate must not be (the step count would stop at 256).
    # (Not under XLA here: an earlier test's op determinism turns it off.)
    # 260 steps: past 256, where a bfloat16 count stops (257 rounds back to 256).
    frame = sr.data.synthetic(schema, 2080, seed=0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
        model.compile()
        model.fit(frame, epochs=1, batch_size=8, verbose=0)  # 260 steps
    finally:
        keras.mixed_precision.set_global_policy("float32")
    sampler = model.output_layer.negative_samplers[0]
    assert (sampler.step.dtype, float(sampler.step)) == ("float32", 260.0)
    interval = np.asarray(sampler.interval)
    assert interval.dtype == np.float32 and np.isfinite(interval).all() and interval.max() > 1.0
