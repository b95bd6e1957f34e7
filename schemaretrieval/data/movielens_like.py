"""A MovieLens-100K-shaped generated data set: ``movielens_like()``.

Same shape as MovieLens-100K (943 users, 1682 items, 100,000 interactions,
every user with at least 20, no user-item pair twice), the same side
features (age bucket, gender, occupation; genres list, release year) with
MovieLens-100K's marginal distributions, a long-tailed item popularity and
user activity tuned to ML-100K's summary statistics, and a rating target
with ML-100K's rating histogram. docs/experiments/movielens-100k-search.md compares the generated
statistics with the published ones.

The generating process (``d = 16`` latent dimensions):

* users: a latent taste ``0.6 * (a[age] + g[gender] + o[occupation]) +
  individual noise``, so demographics carry some signal and the id more;
* items: ``genres`` (1-6 of the 19 ML-100K genres, drawn with their ML-100K
  frequencies) and a release ``year`` (skewed to the 1990s as in ML-100K);
  latent ``mean of genre vectors + era vector + individual noise``, so the
  genres and the year carry signal;
* item base popularity: log-normal, raised for recent releases (in ML-100K
  the mid-1990s films collect most ratings);
* user activity: ``n_u = 20 + log-normal``, rescaled so that the counts sum
  to ``num_interactions`` exactly (ML-100K: minimum 20, median 65, mean 106,
  maximum 737);
* each user's ``n_u`` items: a Plackett-Luce draw without replacement
  (Gumbel top-k) from ``affinity * <user, item> + log popularity``;
* rating: a quantile map of ``<user, item> + noise`` onto ML-100K's rating
  histogram (6% 1, 11% 2, 27% 3, 34% 4, 21% 5).

``affinity`` and the popularity spread are fixed constants, set so that both
the item-popularity statistics and the two baselines' figures (most-popular
and EASE, with and without seen items excluded) land near what they are on
real ML-100K (docs/experiments/movielens-100k-search.md, section 1): neither baseline is favoured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemaretrieval.schema import schema_from_dict

__all__ = ["movielens_like", "movielens_like_schema", "movielens_like_catalog", "AGE_BUCKETS", "OCCUPATIONS", "GENRES"]

# MovieLens-1M's age buckets (ML-100K gives ages 7-73; this buckets them the same
# way), with the approximate share of ML-100K's 943 users in each.
AGE_BUCKETS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_AGE_SHARE = np.array([0.05, 0.23, 0.35, 0.19, 0.08, 0.06, 0.04])
_MALE_SHARE = 670 / 943  # ML-100K: 670 men, 273 women
# ML-100K's 21 occupations and their user counts (sum 943).
OCCUPATIONS = (
    "student", "other", "educator", "administrator", "engineer", "programmer", "librarian",
    "writer", "executive", "scientist", "artist", "technician", "marketing", "entertainment",
    "healthcare", "retired", "lawyer", "salesman", "none", "homemaker", "doctor",
)
_OCCUPATION_COUNTS = np.array(
    [196, 105, 95, 79, 67, 66, 51, 45, 32, 31, 28, 27, 26, 18, 16, 14, 12, 12, 9, 7, 7], float
)
# ML-100K's 19 genres and how many of the 1682 films carry each (1.72 per film).
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_GENRE_COUNTS = np.array(
    [2, 251, 135, 42, 122, 505, 109, 50, 725, 22, 24, 92, 56, 61, 247, 101, 251, 71, 27], float
)
# Number of genres per film: ~ 48% one, 33% two, 14% three, then rarer (mean ~1.72).
_NUM_GENRES_SHARE = np.array([0.48, 0.33, 0.14, 0.04, 0.008, 0.002])
YEAR_MIN, YEAR_MAX = 1922, 1998
# ML-100K's rating histogram (1..5).
_RATING_SHARE = np.array([0.061, 0.114, 0.271, 0.342, 0.212])

_DIM = 16
_DEMOGRAPHIC_WEIGHT = 0.6  # user taste = weight * demographics + individual noise
_USER_NOISE = 1.0
_ITEM_NOISE = 0.8
_AFFINITY = 1.5  # weight of <user, item> in the choice of items
_POPULARITY_SIGMA = 2.0  # spread of log base popularity
_RECENCY = 0.9  # log-popularity bonus of a 1990s release
# User activity: n_u = min_count + exp(N(mu, sigma)); ML-100K median 65, mean 106.
_ACTIVITY_MU = np.log(45.0)  # only the shape matters: counts are rescaled
_ACTIVITY_SIGMA = 1.14  # (median - 20) / (mean - 20) = exp(-sigma^2 / 2) = 45 / 86
_MAX_USER_SHARE = 737 / 1682  # ML-100K: the most active user rated 737 of 1682 films


def movielens_like_schema(num_users: int = 943, num_items: int = 1682):
    """The preset's schema (a merlin Schema) for the given id ranges.

    ``schemas/movielens-like.yaml`` holds the same schema for the defaults.

    >>> schema = movielens_like_schema()
    >>> schema.column_names
    ['user_id', 'user_age_bucket', 'user_gender', 'user_occupation', 'item_id', 'item_genres', 'item_year', 'rating']
    """
    return schema_from_dict(
        {
            "name": "movielens-like",
            "columns": {
                "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                            "domain": {"min": 0, "max": num_users - 1}},
                "user_age_bucket": {"tags": ["user", "categorical"], "dtype": "int64",
                                    "domain": {"min": 0, "max": len(AGE_BUCKETS) - 1}},
                "user_gender": {"tags": ["user", "categorical"], "dtype": "int64",
                                "domain": {"min": 0, "max": 1}},
                "user_occupation": {"tags": ["user", "categorical"], "dtype": "int64",
                                    "domain": {"min": 0, "max": len(OCCUPATIONS) - 1}},
                "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
                            "domain": {"min": 0, "max": num_items - 1}},
                "item_genres": {"tags": ["item", "categorical", "list"], "dtype": "int64",
                                "domain": {"min": 0, "max": len(GENRES) - 1},
                                "value_count": {"min": 1, "max": len(_NUM_GENRES_SHARE)}},
                "item_year": {"tags": ["item", "categorical"], "dtype": "int64",
                              "domain": {"min": 0, "max": YEAR_MAX}},
                "rating": {"tags": ["target", "continuous"], "dtype": "float32",
                           "domain": {"min": 1.0, "max": 5.0}},
            },
        }
    )


def _release_years(rng, n):
    # ML-100K: about two thirds of the films are from 1990-1998, most of them
    # 1993-1997; the rest spread back to the 1920s, thinning out.
    recent = rng.random(n) < 0.66
    recent_years = YEAR_MAX - np.minimum(rng.geometric(0.28, n) - 1, 8)
    older = 1989 - np.minimum(rng.exponential(14.0, n).astype(np.int64), 1989 - YEAR_MIN)
    return np.where(recent, recent_years, older).astype(np.int64)


def _genres(rng, n):
    p = _GENRE_COUNTS / _GENRE_COUNTS.sum()
    lengths = rng.choice(len(_NUM_GENRES_SHARE), size=n, p=_NUM_GENRES_SHARE) + 1
    # Distinct genres in proportion to their frequency: Gumbel top-k per film.
    keys = np.log(p)[None, :] + rng.gumbel(size=(n, len(p)))
    order = np.argsort(-keys, axis=1)
    out = np.empty(n, dtype=object)
    for i, length in enumerate(lengths.tolist()):
        row = np.sort(order[i, :length]).astype(np.int64)
        row.flags.writeable = False
        out[i] = row
    return out


def _user_counts(rng, num_users, num_items, num_interactions):
    mean = num_interactions / num_users
    if mean > num_items * _MAX_USER_SHARE:
        raise ValueError(
            f"movielens_like: {num_interactions} interactions over {num_users} users is "
            f"{mean:.0f} per user, more than {_MAX_USER_SHARE:.0%} of {num_items} items"
        )
    floor = int(min(20, np.floor(mean * 0.19)))  # ML-100K: minimum 20 at mean 106
    cap = max(floor + 1, int(num_items * _MAX_USER_SHARE))
    extra = np.exp(rng.normal(_ACTIVITY_MU, _ACTIVITY_SIGMA, num_users))
    # Scale the part above the floor (bisection on the factor, as the cap
    # makes the sum non-linear in it) so the counts sum to num_interactions.
    target = num_interactions - floor * num_users
    lo, hi = 0.0, 2.0 * target / extra.sum() * num_users
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.minimum(extra * mid, cap - floor).sum() < target:
            lo = mid
        else:
            hi = mid
    scaled = np.minimum(extra * hi, cap - floor)
    counts = floor + np.floor(scaled).astype(np.int64)
    # Hand out the rounding remainder to the users with the largest fractions.
    short = int(num_interactions - counts.sum())
    frac = np.where(counts < cap, scaled - np.floor(scaled), -1.0)
    counts[np.argsort(-frac, kind="stable")[:short]] += 1
    return counts


def movielens_like(
    num_users: int = 943,
    num_items: int = 1682,
    num_interactions: int = 100_000,
    seed: int = 0,
):
    """Generate a MovieLens-100K-shaped interactions table and its schema.

    Returns ``(interactions, schema)``: one row per (user, item) pair, no pair
    twice, every user with at least ``min(20, 0.19 * mean)`` interactions (20
    at the defaults), columns ``user_id, user_age_bucket, user_gender,
    user_occupation, item_id, item_genres, item_year, rating`` (see
    `movielens_like_schema`), in random order. As in ML-100K every item has
    at least one interaction, so ``sr.data.candidate_table(frame, schema)``
    is the whole catalog. Split it with ``sr.data.random_split(frame, 0.2,
    seed)`` as ML-100K's random 80/20 split.

    >>> frame, schema = movielens_like(100, 200, 3000, seed=0)
    >>> len(frame), frame.groupby("user_id").size().min() >= 5
    (3000, True)
    >>> bool(frame.duplicated(["user_id", "item_id"]).any())
    False
    """
    num_users, num_items, num_interactions = int(num_users), int(num_items), int(num_interactions)
    if num_users < 1 or num_items < 2 or num_interactions < num_users:
        raise ValueError(
            "movielens_like: need num_users >= 1, num_items >= 2 and at least one "
            f"interaction per user, got {num_users}, {num_items}, {num_interactions}"
        )
    rng = np.random.default_rng(seed)
    d = _DIM

    # users
    age = rng.choice(len(AGE_BUCKETS), size=num_users, p=_AGE_SHARE)
    gender = (rng.random(num_users) >= _MALE_SHARE).astype(np.int64)  # 0 male, 1 female
    occupation = rng.choice(len(OCCUPATIONS), size=num_users, p=_OCCUPATION_COUNTS / _OCCUPATION_COUNTS.sum())
    age_vec = rng.normal(0, 1 / np.sqrt(d), (len(AGE_BUCKETS), d))
    gender_vec = rng.normal(0, 1 / np.sqrt(d), (2, d))
    occ_vec = rng.normal(0, 1 / np.sqrt(d), (len(OCCUPATIONS), d))
    user_latent = _DEMOGRAPHIC_WEIGHT * (age_vec[age] + gender_vec[gender] + occ_vec[occupation])
    user_latent += rng.normal(0, _USER_NOISE / np.sqrt(d), (num_users, d))

    # items
    genres = _genres(rng, num_items)
    year = _release_years(rng, num_items)
    genre_vec = rng.normal(0, 1 / np.sqrt(d), (len(GENRES), d))
    era_vec = rng.normal(0, 1 / np.sqrt(d), (8, d))  # one per decade, 1920s..1990s
    era = np.clip((year - 1920) // 10, 0, 7)
    genre_mean = np.stack([genre_vec[g].mean(axis=0) for g in genres])
    item_latent = genre_mean + 0.5 * era_vec[era] + rng.normal(0, _ITEM_NOISE / np.sqrt(d), (num_items, d))
    log_pop = rng.normal(0, _POPULARITY_SIGMA, num_items) + _RECENCY * (year >= 1990)

    # interactions: each user's items without replacement (Gumbel top-k)
    counts = _user_counts(rng, num_users, num_items, num_interactions)
    affinity = user_latent @ item_latent.T  # [users, items]
    keys = _AFFINITY * np.sqrt(d) * affinity + log_pop[None, :]
    keys += rng.gumbel(size=keys.shape)
    order = np.argsort(-keys, axis=1)
    del keys
    rows = np.repeat(np.arange(num_users), counts)
    starts = np.cumsum(counts) - counts
    cols = order[rows, np.arange(len(rows)) - np.repeat(starts, counts)]
    del order
    # As in ML-100K, every film of the catalog has at least one rating: an
    # item nobody drew replaces the latest draw of a distinct user (chosen by
    # activity) whose item has other ratings, so no item is left unrated.
    item_counts = np.bincount(cols, minlength=num_items)
    unrated = np.flatnonzero(item_counts == 0)
    if len(unrated):
        p = counts * (counts > counts.min())
        if (p > 0).sum() >= len(unrated):
            users = rng.choice(num_users, size=len(unrated), replace=False, p=p / p.sum())
            for item, user in zip(unrated.tolist(), users.tolist()):
                for pos in range(starts[user] + counts[user] - 1, starts[user] - 1, -1):
                    if item_counts[cols[pos]] > 1:
                        item_counts[cols[pos]] -= 1
                        cols[pos] = item
                        item_counts[item] = 1
                        break

    # rating: quantiles of affinity + noise mapped onto ML-100K's histogram
    score = affinity[rows, cols] * np.sqrt(d) + rng.normal(0, 0.7, len(rows))
    cuts = np.quantile(score, np.cumsum(_RATING_SHARE)[:-1])
    rating = (np.searchsorted(cuts, score) + 1).astype(np.float32)

    perm = rng.permutation(len(rows))
    rows, cols, rating = rows[perm], cols[perm], rating[perm]
    frame = pd.DataFrame(
        {
            "user_id": rows.astype(np.int64),
            "user_age_bucket": age[rows].astype(np.int64),
            "user_gender": gender[rows],
            "user_occupation": occupation[rows].astype(np.int64),
            "item_id": cols.astype(np.int64),
            "item_genres": genres[cols],
            "item_year": year[cols],
            "rating": rating,
        }
    )
    return frame, movielens_like_schema(num_users, num_items)


def movielens_like_catalog(interactions: pd.DataFrame, num_items: int, seed: int = 0) -> pd.DataFrame:
    """The preset's items scaled to ``num_items``: one row per item of ``interactions``
    (``item_id``, ``item_genres``, ``item_year``), then new items with the next ids and
    genres and years drawn as the preset draws them. A model that embeds them reads
    the schema ``movielens_like_schema(num_users, num_items)``: the new ids' rows of
    its item embedding are the ones training never moved, as a catalog's cold items.

    >>> frame, _ = movielens_like(50, 80, 1000, seed=0)
    >>> catalog = movielens_like_catalog(frame, 200, seed=0)
    >>> len(catalog), catalog["item_id"].tolist()[-1], catalog["item_id"].is_unique
    (200, 199, True)
    """
    items = interactions.drop_duplicates("item_id")[["item_id", "item_genres", "item_year"]]
    items = items.sort_values("item_id").reset_index(drop=True)
    extra = int(num_items) - len(items)
    if extra < 0:
        raise ValueError(f"movielens_like_catalog: num_items={num_items} is below the {len(items)} items given")
    rng = np.random.default_rng([seed, 7])
    start = int(items["item_id"].max()) + 1 if len(items) else 0
    new = pd.DataFrame({"item_id": np.arange(start, start + extra, dtype=np.int64),
                        "item_genres": _genres(rng, extra), "item_year": _release_years(rng, extra)})
    return pd.concat([items, new], ignore_index=True)
