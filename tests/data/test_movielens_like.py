"""The MovieLens-100K-shaped preset: shape, ML-100K's statistics, features with signal."""

import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval.data.movielens_like import GENRES, OCCUPATIONS, movielens_like, movielens_like_schema
from schemaretrieval.schema import schema_to_dict


@pytest.fixture(scope="module")
def full():
    return movielens_like(seed=0)


def test_shape_and_ml100k_statistics(full):
    frame, schema = full
    assert len(frame) == 100_000
    assert frame["user_id"].nunique() == 943 and frame["item_id"].nunique() == 1682
    assert not frame.duplicated(["user_id", "item_id"]).any()
    users = frame.groupby("user_id").size()
    assert users.min() >= 20 and users.max() <= 737
    assert 55 <= users.median() <= 75  # ML-100K: 65
    items = frame.groupby("item_id").size().sort_values(ascending=False).to_numpy()
    assert 20 <= np.median(items) <= 40  # ML-100K: 27
    top10 = items[: len(items) // 10].sum() / items.sum()
    assert 0.35 <= top10 <= 0.6, top10
    sparsity = 1 - len(frame) / (943 * 1682)
    assert round(sparsity, 3) == 0.937
    shares = frame["rating"].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(shares, [0.061, 0.114, 0.271, 0.342, 0.212], atol=0.01)


def test_features_are_fixed_per_entity_and_in_domain(full):
    frame, schema = full
    for col in ("user_age_bucket", "user_gender", "user_occupation"):
        assert (frame.groupby("user_id")[col].nunique() == 1).all()
    assert (frame.groupby("item_id")["item_year"].nunique() == 1).all()
    assert frame["user_occupation"].between(0, len(OCCUPATIONS) - 1).all()
    lengths = frame["item_genres"].map(len)
    assert lengths.between(1, 6).all()
    assert all(0 <= g < len(GENRES) for row in frame["item_genres"].head(1000) for g in row)
    assert frame["item_year"].between(1922, 1998).all()
    arrays = sr.data.to_arrays(frame.head(500), schema)  # the schema validates the data
    assert arrays["item_genres"].shape[1] == 6


def test_bundled_yaml_is_the_preset_schema():
    assert schema_to_dict(sr.load_schema("schemas/movielens-like.yaml")) == schema_to_dict(movielens_like_schema())


def test_reproducible_and_scales_down():
    a, _ = movielens_like(300, 500, 20_000, seed=3)
    b, _ = movielens_like(300, 500, 20_000, seed=3)
    assert a.drop(columns="item_genres").equals(b.drop(columns="item_genres"))
    assert len(a) == 20_000 and a["item_id"].nunique() == 500
    with pytest.raises(ValueError, match="per user"):
        movielens_like(10, 20, 1000)


def test_features_carry_signal(full):
    # Users of one occupation share tastes: the genre mix of their ratings
    # differs between occupations more than between random halves of users.
    frame, _ = full
    exploded = frame[["user_id", "user_occupation", "item_genres"]].explode("item_genres")
    mix = exploded.groupby(["user_occupation", "item_genres"]).size().unstack(fill_value=0)
    mix = mix.div(mix.sum(axis=1), axis=0)
    overall = exploded["item_genres"].value_counts(normalize=True).reindex(mix.columns)
    big = frame.groupby("user_occupation")["user_id"].nunique() >= 40
    spread = np.abs(mix[big.reindex(mix.index).to_numpy()] - overall).sum(axis=1).mean()
    rng = np.random.default_rng(0)
    half = rng.permutation(943)[:470]
    one = exploded[exploded["user_id"].isin(half)]["item_genres"].value_counts(normalize=True)
    two = exploded[~exploded["user_id"].isin(half)]["item_genres"].value_counts(normalize=True)
    noise = np.abs(one - two.reindex(one.index)).sum()
    assert spread > 1.5 * noise, (spread, noise)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_item_is_rated_and_every_user_has_twenty(seed):
    frame, _ = movielens_like(seed=seed)
    assert frame["item_id"].nunique() == 1682
    assert frame.groupby("user_id").size().min() >= 20
    assert not frame.duplicated(["user_id", "item_id"]).any()
