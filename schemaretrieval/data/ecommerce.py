"""An e-commerce-shaped raw log at any size: ``ecommerce()``, and its catalog alone: ``ecommerce_catalog()``.

What a shop's event log looks like before the ETL: string ids ("u<n>" users,
"p<n>" products), each product's brand, category, price and a list of tags,
and a Unix timestamp. ``schemas/ecommerce.yaml`` is its schema;
``sr.etl.fit_transform`` encodes it.

The generating process (``d = 16`` latent dimensions):

* 40 categories of Zipf-like size; 400 brands, each selling in one category;
  200 tags, ten typical of each category (a product's 1-5 tags are typical of
  its category 80% of the time);
* a product's latent is its category's vector plus its brand's plus noise,
  its price log-normal around its category's and brand's level;
* a product's base popularity is log-normal (sigma 1.5): a long head;
* a user's latent is one or two favourite categories' vectors plus noise,
  their activity log-normal;
* each user's products: a draw without replacement (Gumbel top-k) from
  ``affinity * <user, product> + log popularity``.

Each product attribute comes from a random stream of its own, so
``ecommerce_catalog(n, seed)`` begins with the products of
``ecommerce(..., num_items=m, seed)`` for any ``m <= n``: a catalog scaled to
1M products holds the trained ones first.

>>> log = ecommerce(2000, num_users=100, num_items=300, seed=0)
>>> list(log.columns)
['user_id', 'item_id', 'item_brand', 'item_category', 'item_price', 'item_tags', 'timestamp']
>>> catalog = ecommerce_catalog(1000, seed=0)
>>> bool((catalog.set_index("item_id").loc[log["item_id"], "item_brand"].to_numpy() == log["item_brand"]).all())
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ecommerce", "ecommerce_catalog"]

_DIM = 16
_CATEGORIES, _BRANDS, _TAGS, _TYPICAL = 40, 400, 200, 10
_AFFINITY = 3.0
_POPULARITY_SIGMA = 1.5
_START, _END = 1_672_531_200, 1_704_067_200  # the year 2023


def _world(seed):
    """The parameters every size shares: category, brand and tag structure."""
    rng = np.random.default_rng([seed, 0])
    d = _DIM
    size = 1.0 / np.arange(1, _CATEGORIES + 1) ** 0.8
    return {
        "category_share": size / size.sum(),
        "category_vec": rng.normal(0, 1 / np.sqrt(d), (_CATEGORIES, d)),
        "brand_category": rng.integers(0, _CATEGORIES, _BRANDS),
        "brand_vec": rng.normal(0, 0.6 / np.sqrt(d), (_BRANDS, d)),
        "brand_premium": rng.normal(0, 0.4, _BRANDS),
        "category_price": rng.normal(3.0, 1.0, _CATEGORIES),
        "typical_tags": np.stack([rng.choice(_TAGS, _TYPICAL, replace=False) for _ in range(_CATEGORIES)]),
    }


def _items(num_items, seed, world):
    """Product features, latents and popularity; each from its own stream (prefix-stable)."""
    stream = lambda k: np.random.default_rng([seed, 1, k])  # noqa: E731
    n, d = int(num_items), _DIM
    category = stream(0).choice(_CATEGORIES, n, p=world["category_share"])
    # a brand among those selling in the category (a category without one: any brand)
    pick = stream(1).random(n)
    brands_of = [np.flatnonzero(world["brand_category"] == c) for c in range(_CATEGORIES)]
    brands_of = [b if len(b) else np.arange(_BRANDS) for b in brands_of]
    brand = np.array([brands_of[c][int(p * len(brands_of[c]))] for c, p in zip(category, pick)])
    price = np.exp(world["category_price"][category] + world["brand_premium"][brand] + stream(2).normal(0, 0.5, n))
    counts = stream(3).integers(1, 6, n)
    typical = stream(4).random((n, 5)) < 0.8
    slots = world["typical_tags"][category[:, None], stream(5).integers(0, _TYPICAL, (n, 5))]
    tags = np.where(typical, slots, stream(6).integers(0, _TAGS, (n, 5)))
    latent = (world["category_vec"][category] + world["brand_vec"][brand]
              + stream(7).normal(0, 0.5 / np.sqrt(d), (n, d)))
    log_pop = stream(8).normal(0, _POPULARITY_SIGMA, n)
    frame = pd.DataFrame({
        "item_id": np.array([f"p{i}" for i in range(n)], dtype=object),
        "item_brand": np.array([f"b{b}" for b in brand], dtype=object),
        "item_category": np.array([f"c{c}" for c in category], dtype=object),
        "item_price": np.round(price, 2),
        "item_tags": pd.Series([[f"t{t}" for t in dict.fromkeys(row[:c].tolist())] for row, c in zip(tags, counts)],
                               dtype=object),
    })
    return frame, latent, log_pop


def ecommerce_catalog(num_items: int, seed: int = 0) -> pd.DataFrame:
    """``num_items`` products (``item_id``, ``item_brand``, ``item_category``,
    ``item_price``, ``item_tags``), the first of them those of `ecommerce` with the
    same seed.

    >>> ecommerce_catalog(3, seed=0)["item_id"].tolist()
    ['p0', 'p1', 'p2']
    """
    if int(num_items) < 1:
        raise ValueError(f"ecommerce_catalog: num_items must be >= 1, got {num_items}")
    return _items(num_items, seed, _world(seed))[0]


def ecommerce(num_rows: int = 100_000, num_users: int = 20_000, num_items: int = 20_000,
              seed: int = 0) -> pd.DataFrame:
    """``num_rows`` interactions (see the module docstring), in time order, no
    (user, product) pair twice.

    >>> log = ecommerce(1000, num_users=50, num_items=200, seed=1)
    >>> len(log), bool(log.duplicated(["user_id", "item_id"]).any()), log["item_tags"].map(len).min() >= 1
    (1000, False, True)
    """
    num_rows, num_users, num_items = int(num_rows), int(num_users), int(num_items)
    if num_rows < num_users or num_users < 1 or num_items < 2:
        raise ValueError(f"ecommerce: need num_rows >= num_users >= 1 and num_items >= 2, got {num_rows}, "
                         f"{num_users}, {num_items}")
    world = _world(seed)
    items, item_latent, log_pop = _items(num_items, seed, world)
    rng = np.random.default_rng([seed, 2])
    d = _DIM
    favourite = rng.choice(_CATEGORIES, (num_users, 2), p=world["category_share"])
    second = rng.random(num_users) < 0.5
    user_latent = world["category_vec"][favourite[:, 0]] + second[:, None] * world["category_vec"][favourite[:, 1]]
    user_latent += rng.normal(0, 0.5 / np.sqrt(d), (num_users, d))
    # activity: one row each, the rest log-normal, capped at half the catalog
    weight = rng.lognormal(0, 1.0, num_users)
    extra = rng.multinomial(num_rows - num_users, weight / weight.sum())
    cap = max(1, num_items // 2)
    counts = np.minimum(1 + extra, cap)
    while counts.sum() < num_rows:  # what the cap cut, to users below it
        room = np.flatnonzero(counts < cap)
        if not len(room):
            raise ValueError(f"ecommerce: {num_rows} rows do not fit {num_users} users of at most {cap} products")
        counts[rng.choice(room, min(len(room), num_rows - counts.sum()), replace=False)] += 1
    users, chosen = [], []
    # float32: the [users, products] keys are the generator's whole cost
    user_latent = (_AFFINITY * np.sqrt(d) * user_latent).astype(np.float32)
    item_latent, log_pop = item_latent.astype(np.float32).T.copy(), log_pop.astype(np.float32)
    for start in range(0, num_users, 512):
        stop = min(start + 512, num_users)
        keys = user_latent[start:stop] @ item_latent
        keys += log_pop[None, :]
        keys -= np.log(-np.log(rng.random(keys.shape, dtype=np.float32) + np.float32(1e-12)))  # Gumbel noise
        most = int(counts[start:stop].max())
        top = np.argpartition(-keys, most - 1, axis=1)[:, :most] if most < num_items else np.argsort(-keys, axis=1)
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
        for row, user in enumerate(range(start, stop)):
            users.append(np.full(counts[user], user))
            chosen.append(order[row, :counts[user]])
    users, chosen = np.concatenate(users), np.concatenate(chosen)
    perm = rng.permutation(len(users))
    users, chosen = users[perm], chosen[perm]
    frame = items.iloc[chosen].reset_index(drop=True)
    frame.insert(0, "user_id", np.array([f"u{u}" for u in users], dtype=object))
    frame["timestamp"] = np.sort(rng.integers(_START, _END, len(frame)))
    return frame
