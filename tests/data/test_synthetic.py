"""Tests of schemaretrieval.data.synthetic: the planted structure and its contract."""

import doctest
import sys
import time

import numpy as np
import pandas as pd
import pytest
from merlin.schema import ColumnSchema, Schema, Tags

from schemaretrieval.data import synthetic, to_arrays
from helpers import column, synthetic_schema


@pytest.fixture(scope="module")
def generated(schema):
    return synthetic(schema, 100_000, seed=7, return_truth=True)


def _frames_equal(a, b):
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for name in a.columns:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        if x.dtype == object:
            if not all(np.array_equal(p, q) for p, q in zip(x, y)):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def _consistent_per_id(values, ids):
    """True when every row holds the same value(s) as the first row of its id."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    reference = values[first][inverse]
    return bool(np.all(values == reference))


def test_columns_and_dtypes_follow_the_schema(schema, generated):
    frame, _ = generated
    assert list(frame.columns) == schema.column_names
    assert len(frame) == 100_000
    for name in ["user_id", "user_country", "item_id", "item_category"]:
        assert frame[name].dtype == np.int64, name
    for name in ["user_age", "item_price", "rating"]:
        assert frame[name].dtype == np.float32, name
    tags = frame["item_tags"]
    assert tags.dtype == object
    assert all(isinstance(v, np.ndarray) and v.dtype == np.int64 for v in tags.iloc[:1000])


def test_reproducible_from_seed_and_seeds_differ(schema):
    a = synthetic(schema, 5_000, seed=3)
    b = synthetic(schema, 5_000, seed=3)
    c = synthetic(schema, 5_000, seed=4)
    assert _frames_equal(a, b)
    assert not _frames_equal(a, c)
    assert not np.array_equal(a["item_id"].to_numpy(), c["item_id"].to_numpy())
    assert not np.array_equal(a["item_price"].to_numpy(), c["item_price"].to_numpy())


def test_ids_and_values_inside_their_domains(schema, generated):
    frame, _ = generated
    for col in schema:
        lo, hi = col.properties["domain"]["min"], col.properties["domain"]["max"]
        if col.name == "item_tags":
            values = np.concatenate(frame[col.name].to_numpy())
        else:
            values = frame[col.name].to_numpy()
        assert values.min() >= lo and values.max() <= hi, col.name
    # to_arrays validates the same (domains, dtypes, list lengths)
    to_arrays(frame, schema)


def test_list_lengths_within_value_count(generated):
    frame, _ = generated
    lengths = frame["item_tags"].map(len).to_numpy()
    assert lengths.min() >= 1 and lengths.max() <= 4
    assert set(np.unique(lengths)) == {1, 2, 3, 4}
    # ids within one item's list are distinct (the cluster subsets are large enough)
    assert all(len(set(v.tolist())) == len(v) for v in frame["item_tags"].iloc[:2000])


def test_item_features_identical_for_every_row_of_an_item(schema, generated):
    frame, _ = generated
    arrays = to_arrays(frame, schema)
    ids = arrays["item_id"]
    for name in ["item_category", "item_price"]:
        assert _consistent_per_id(arrays[name], ids), name
    assert _consistent_per_id(arrays["item_tags"], ids)


def test_user_features_identical_for_every_row_of_a_user(generated):
    frame, _ = generated
    ids = frame["user_id"].to_numpy()
    for name in ["user_age", "user_country"]:
        assert _consistent_per_id(frame[name].to_numpy(), ids), name


def _purity(feature, cluster):
    """Share of rows whose feature value's most common cluster is their own."""
    table = pd.crosstab(feature, cluster)
    return table.max(axis=1).sum() / table.to_numpy().sum()


def test_features_are_tied_to_clusters(generated):
    frame, truth = generated
    item_cluster = truth.item_cluster[frame["item_id"].to_numpy()]
    user_cluster = truth.user_cluster[frame["user_id"].to_numpy()]
    assert _purity(frame["item_category"].to_numpy(), item_cluster) > 0.8
    assert _purity(frame["user_country"].to_numpy(), user_cluster) > 0.8
    tags = frame["item_tags"].map(lambda v: int(v[0])).to_numpy()
    assert _purity(tags, item_cluster) > 0.95
    # continuous features: per-cluster means differ
    price_means = pd.Series(frame["item_price"].to_numpy()).groupby(item_cluster).mean()
    assert price_means.max() - price_means.min() > 0.2


def test_target_higher_for_high_affinity_pairs(generated):
    frame, truth = generated
    same = (truth.user_cluster[frame["user_id"].to_numpy()]
            == truth.item_cluster[frame["item_id"].to_numpy()])
    rating = frame["rating"].to_numpy()
    assert 0.5 < same.mean() < 1.0  # mostly within the cluster, not only
    assert rating[same].mean() > rating[~same].mean() + 0.4


def _recall_at_10(top10, items):
    return float((top10 == items[:, None]).any(axis=1).mean())


def test_knowing_the_users_cluster_beats_popularity(schema, generated):
    frame, truth = generated
    split = int(0.8 * len(frame))
    train, test = frame.iloc[:split], frame.iloc[split:]
    items = test["item_id"].to_numpy()
    users = test["user_id"].to_numpy()
    num_items = len(truth.item_cluster)

    counts = np.bincount(train["item_id"].to_numpy(), minlength=num_items)
    popular = np.argsort(-counts, kind="stable")[:10]
    popularity = _recall_at_10(np.broadcast_to(popular, (len(items), 10)), items)

    by_cluster = np.argsort(-truth.cluster_item_probabilities(), axis=1)[:, :10]
    oracle = _recall_at_10(by_cluster[truth.user_cluster[users]], items)
    shuffled_clusters = np.random.default_rng(0).permutation(truth.user_cluster)
    shuffled = _recall_at_10(by_cluster[shuffled_clusters[users]], items)

    print(f"recall@10 popularity {popularity:.3f} cluster oracle {oracle:.3f} "
          f"shuffled oracle {shuffled:.3f}")
    assert oracle > 2.0 * popularity
    assert shuffled < popularity
    assert oracle > 3.0 * shuffled


def test_without_affinity_the_clusters_carry_no_signal(schema):
    frame, truth = synthetic(schema, 50_000, seed=1, affinity=0.0, return_truth=True)
    probs = truth.cluster_item_probabilities()
    np.testing.assert_allclose(probs, np.broadcast_to(truth.item_popularity, probs.shape),
                               rtol=1e-9)


def test_truth_matches_the_empirical_distribution(schema):
    frame, truth = synthetic(schema, 200_000, seed=2, return_truth=True)
    # the most active user's empirical item distribution vs the generating one
    users = frame["user_id"].to_numpy()
    top_user = np.bincount(users).argmax()
    seen = frame["item_id"].to_numpy()[users == top_user]
    empirical = np.bincount(seen, minlength=3000) / len(seen)
    expected = truth.item_probabilities([top_user])[0]
    assert 0.5 * np.abs(empirical - expected).sum() < 0.15  # total variation


def test_user_activity_and_item_popularity_are_skewed(generated):
    frame, _ = generated
    item_counts = np.sort(np.bincount(frame["item_id"].to_numpy(), minlength=3000))[::-1]
    user_counts = np.sort(np.bincount(frame["user_id"].to_numpy(), minlength=2000))[::-1]
    assert item_counts[:30].sum() > 10 * item_counts[-300:].sum()
    assert user_counts[:20].sum() > 5 * user_counts[-200:].sum()


def test_categorical_without_domain_names_the_column(schema):
    cols = [c for c in schema if c.name != "item_category"]
    cols.append(ColumnSchema("item_category", tags=[Tags.ITEM, Tags.CATEGORICAL], dtype=np.int64))
    with pytest.raises(ValueError, match="item_category"):
        synthetic(Schema(cols), 10)
    no_user_domain = Schema([
        ColumnSchema("uid", tags=[Tags.USER_ID, Tags.CATEGORICAL], dtype=np.int64),
        column("iid", [Tags.ITEM_ID, Tags.CATEGORICAL], np.int64, domain={"min": 0, "max": 9}),
    ])
    with pytest.raises(ValueError, match="uid"):
        synthetic(no_user_domain, 10)


def test_schema_without_id_columns_is_an_error():
    schema = Schema([column("iid", [Tags.ITEM_ID, Tags.CATEGORICAL], np.int64,
                          domain={"min": 0, "max": 9})])
    with pytest.raises(ValueError, match="user_id"):
        synthetic(schema, 10)


def test_other_column_kinds_and_domain_offsets():
    schema = Schema([
        column("uid", [Tags.USER_ID, Tags.CATEGORICAL], np.int32, domain={"min": 100, "max": 149}),
        column("iid", [Tags.ITEM_ID, Tags.CATEGORICAL], np.int64, domain={"min": 1, "max": 40}),
        column("user_history", [Tags.USER, Tags.CATEGORICAL, Tags.LIST], np.int64,
             domain={"min": 5, "max": 7}, value_count={"min": 2, "max": 5}),
        column("item_score", [Tags.ITEM, Tags.CONTINUOUS], np.float64),  # no domain: [0, 1]
        column("hour", [Tags.CONTEXT, Tags.CATEGORICAL], np.int64, domain={"min": 0, "max": 23}),
        column("clicked", [Tags.TARGET, Tags.CATEGORICAL], np.int64, domain={"min": 0, "max": 1}),
    ])
    frame, truth = synthetic(schema, 20_000, seed=5, num_clusters=3, return_truth=True)
    assert frame["uid"].dtype == np.int32
    assert frame["uid"].between(100, 149).all() and frame["iid"].between(1, 40).all()
    assert frame["item_score"].dtype == np.float64 and frame["item_score"].between(0, 1).all()
    assert frame["hour"].between(0, 23).all() and frame["hour"].nunique() == 24
    lengths = frame["user_history"].map(len)
    assert lengths.between(2, 5).all()
    flat = np.concatenate(frame["user_history"].to_numpy())
    assert flat.min() >= 5 and flat.max() <= 7  # a domain smaller than a list: repeats allowed
    assert set(np.unique(frame["clicked"])) == {0, 1}
    same = (truth.user_cluster[frame["uid"].to_numpy() - 100]
            == truth.item_cluster[frame["iid"].to_numpy() - 1])
    clicked = frame["clicked"].to_numpy()
    assert clicked[same].mean() > clicked[~same].mean() + 0.3
    probs = truth.item_probabilities([100, 149])
    assert probs.shape == (2, 40)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_large_catalog_shares_latent_profiles():
    schema = Schema([
        column("user_id", [Tags.USER_ID, Tags.CATEGORICAL], np.int64,
             domain={"min": 0, "max": 19_999}),
        column("item_id", [Tags.ITEM_ID, Tags.CATEGORICAL], np.int64,
             domain={"min": 0, "max": 49_999}),
    ])
    frame, truth = synthetic(schema, 50_000, seed=0, return_truth=True)
    assert frame["user_id"].between(0, 19_999).all()
    assert frame["item_id"].between(0, 49_999).all()
    assert len(np.unique(truth.user_latent, axis=0)) < 20_000  # shared profiles
    same = (truth.user_cluster[frame["user_id"].to_numpy()]
            == truth.item_cluster[frame["item_id"].to_numpy()])
    assert same.mean() > 0.5


def test_zero_rows_and_bad_arguments(schema):
    empty = synthetic(schema, 0)
    assert list(empty.columns) == schema.column_names and len(empty) == 0
    with pytest.raises(ValueError, match="num_rows"):
        synthetic(schema, -1)
    with pytest.raises(ValueError, match="num_clusters"):
        synthetic(schema, 10, num_clusters=0)


def test_one_million_rows_is_fast(schema):
    start = time.perf_counter()
    frame = synthetic(schema, 1_000_000, seed=0)
    elapsed = time.perf_counter() - start
    print(f"synthetic: 1,000,000 rows in {elapsed:.2f} s")
    assert len(frame) == 1_000_000


def test_docstring_examples_run():
    module = sys.modules["schemaretrieval.data.synthetic"]
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
