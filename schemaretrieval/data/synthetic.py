"""Generated interaction data with a planted, learnable structure.

``synthetic(schema, num_rows)`` makes one row per interaction with one column
per schema column. Users and items belong to latent clusters; which item a
user picks depends on the user's latent taste and on the item's popularity,
and every feature is tied to its entity's cluster, so a model that recovers
the clusters (from the ids or from the features) beats a popularity ranking,
while a popularity ranking is still a fair baseline.

The generating process, for ``K = num_clusters`` clusters in ``d`` latent
dimensions:

* cluster centres are orthogonal vectors of norm 1.2 (``d = max(16, K)``);
  each user and each item is put in a cluster uniformly at random and gets a
  latent vector ``centre + noise`` (noise of norm about 0.5);
* user activity and item popularity are power laws over a random order of
  the ids (Zipf-like: the r-th most popular item has weight r**-0.8, the r-th
  most active user r**-0.7);
* a row picks a user by activity, then an item from the softmax over the
  whole catalog of ``affinity * <user latent, item latent> +
  popularity_skew * log(item popularity)``;
* user and item features are fixed per id (every row of the same id holds the
  same values): a categorical takes, with probability 0.85, a value from a
  subset of its domain that belongs to the entity's cluster and otherwise a
  uniform value; a list takes 1..value_count.max distinct ids from the
  cluster's subset; a continuous value is drawn around a cluster-specific
  mean inside the column's domain;
* a target column gets ``sigmoid(affinity * (<user, item> - 0.72) + noise)``
  scaled into its domain (rounded for an integer target), so high-affinity
  pairs have higher targets;
* any other column (no user, item or target tag) is uniform per row.

Sampling never builds a rows x catalog matrix: each user latent profile has
one cumulative distribution over the catalog (users get their own profile
while ``num_users * num_items`` is at most 2**23, above that users share one
of a few latent profiles per cluster), and all rows are drawn with a single
``searchsorted``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from merlin.schema import Schema, Tags

from schemaretrieval.arguments import integer
from schemaretrieval.schema import columns, require_schema
from schemaretrieval.schema.columns import CATEGORICAL, CONTINUOUS

__all__ = ["synthetic", "SyntheticTruth"]

# Largest number of (profile, item) logits kept at once: 2**23 float64 = 64 MiB.
_PROFILE_BUDGET = 2**23
# Probability that a categorical feature value comes from its cluster's subset.
_CLUSTER_TIE = 0.85
# Largest subset of a categorical domain that one cluster owns.
_MAX_SUBSET = 64
# Norm of the cluster centres, and of the noise added to the latent vectors.
_CENTRE_NORM = 1.2
_LATENT_NOISE = 0.5
# Power-law exponents of user activity and item popularity (Zipf-like).
_ACTIVITY_EXPONENT = 0.7
_POPULARITY_EXPONENT = 0.8


@dataclass(frozen=True)
class SyntheticTruth:
    """The hidden variables behind a ``synthetic`` data set.

    Arrays are indexed by ``id - domain min`` of the user / item id column.

    Example:
        >>> import schemaretrieval as sr
        >>> schema = sr.load_schema("schemas/synthetic.yaml")  # 2,000 users, 3,000 items
        >>> df, truth = synthetic(schema, 100, seed=1, num_clusters=2, return_truth=True)
        >>> truth.item_probabilities(df["user_id"].to_numpy()[:3]).shape
        (3, 3000)
        >>> truth.cluster_item_probabilities().shape
        (2, 3000)
    """

    user_cluster: np.ndarray  # [num_users] int
    item_cluster: np.ndarray  # [num_items] int
    user_latent: np.ndarray  # [num_users, d] the latent used for sampling
    item_latent: np.ndarray  # [num_items, d]
    user_activity: np.ndarray  # [num_users] probability of a row's user
    item_popularity: np.ndarray  # [num_items] Zipf weights, sum 1
    affinity: float
    popularity_skew: float
    user_id_min: int
    item_id_min: int

    @property
    def num_clusters(self) -> int:
        return int(max(self.user_cluster.max(initial=0), self.item_cluster.max(initial=0)) + 1)

    def item_logits(self, user_ids) -> np.ndarray:
        """Unnormalised log-probabilities [len(user_ids), num_items] of each item."""
        idx = np.asarray(user_ids, dtype=np.int64) - self.user_id_min
        return _logits(
            self.user_latent[idx], self.item_latent, self.item_popularity,
            self.affinity, self.popularity_skew,
        )

    def item_probabilities(self, user_ids) -> np.ndarray:
        """The exact generating distribution over items for each given user id."""
        return _softmax(self.item_logits(user_ids))

    def cluster_item_probabilities(self) -> np.ndarray:
        """[num_clusters, num_items]: p(item | user cluster), activity-weighted."""
        k = int(self.user_cluster.max(initial=0)) + 1
        out = np.zeros((max(k, self.num_clusters), len(self.item_latent)))
        n_users = len(self.user_latent)
        chunk = max(1, _PROFILE_BUDGET // max(1, len(self.item_latent)))
        for start in range(0, n_users, chunk):
            sl = slice(start, start + chunk)
            probs = _softmax(_logits(
                self.user_latent[sl], self.item_latent, self.item_popularity,
                self.affinity, self.popularity_skew,
            ))
            np.add.at(out, self.user_cluster[sl], probs * self.user_activity[sl, None])
        totals = out.sum(axis=1, keepdims=True)
        return np.divide(out, totals, out=np.zeros_like(out), where=totals > 0)


def _logits(user_latent, item_latent, item_popularity, affinity, skew):
    return affinity * (user_latent @ item_latent.T) + skew * np.log(item_popularity)[None, :]


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _power_law(rng, n, exponent):
    """Weights (rank+1)^-exponent over a random order of n ids, summing to 1."""
    ranks = rng.permutation(n)
    w = (ranks + 1.0) ** -exponent
    return w / w.sum()


def _latents(rng, centres, clusters, noise):
    d = centres.shape[1]
    return centres[clusters] + rng.normal(0.0, noise / np.sqrt(d), size=(len(clusters), d))


def _column_rng(seed, name):
    """A generator per column, so that adding a column changes no other column."""
    entropy = [zlib.crc32(name.encode("utf-8"))]
    if seed is not None:
        entropy.append(int(seed))
        return np.random.default_rng(entropy)
    return np.random.default_rng()


def _require_domain(col, kind):
    dom = columns.domain(col)
    if dom is None:
        if kind == CATEGORICAL:
            raise ValueError(
                f"synthetic: categorical column {col.name!r} has no domain; give "
                f"'domain: {{min: 0, max: N}}' in the schema so ids can be generated"
            )
        return 0.0, 1.0
    lo, hi = dom
    if kind == CATEGORICAL:
        lo, hi = int(lo), int(hi)
    else:
        lo, hi = float(lo), float(hi)
    if hi < lo:
        raise ValueError(f"synthetic: column {col.name!r} has domain min {lo} > max {hi}")
    return lo, hi


def _dtype(col, kind):
    dtype = columns.numpy_dtype(col)
    if dtype is None:
        return np.dtype(np.int64 if kind == CATEGORICAL else np.float32)
    return dtype


def _cluster_subsets(rng, size, k):
    """[k, s] table of domain offsets owned by each cluster, and each row's size."""
    pool = rng.choice(size, size=min(size, k * _MAX_SUBSET), replace=False)
    if len(pool) >= k:
        s = -(-len(pool) // k)
        table = np.zeros((k, s), dtype=np.int64)
        sizes = np.zeros(k, dtype=np.int64)
        for c in range(k):
            own = pool[c::k]
            table[c, : len(own)] = own
            sizes[c] = len(own)
    else:  # fewer values than clusters: clusters share single values
        table = pool[np.arange(k) % len(pool)][:, None].astype(np.int64)
        sizes = np.ones(k, dtype=np.int64)
    return table, sizes


def _list_lengths(rng, col, n):
    vmin, vmax = columns.value_count(col)
    vmin = max(1, vmin or 1)
    vmax = max(vmin, vmax or max(vmin, 4))
    return rng.integers(vmin, vmax + 1, size=n), vmax


def _ragged(values_2d, lengths, dtype):
    """Object array of 1-D arrays: row i is values_2d[i, :lengths[i]]."""
    out = np.empty(len(lengths), dtype=object)
    values_2d = values_2d.astype(dtype, copy=False)
    for i, (row, length) in enumerate(zip(values_2d, lengths.tolist())):
        row = row[:length].copy()
        row.flags.writeable = False  # rows of the same id share this array
        out[i] = row
    return out


def _generated(col):
    """``(kind, domain min, domain max, dtype)`` of a column to generate, or a ValueError naming it."""
    kind = columns.kind(col)
    if kind is None:
        raise ValueError(
            f"synthetic: cannot generate column {col.name!r}: it is neither categorical "
            "nor continuous (by tags or numeric dtype)"
        )
    lo, hi = _require_domain(col, kind)
    return kind, lo, hi, _dtype(col, kind)


def _entity_feature(rng, col, clusters, k):
    """Values of one user/item feature per entity (fixed per id), tied to clusters."""
    n = len(clusters)
    kind, lo, hi, dtype = _generated(col)
    if kind == CATEGORICAL:
        table, sizes = _cluster_subsets(rng, hi - lo + 1, k)
        if columns.is_list(col):
            lengths, lmax = _list_lengths(rng, col, n)
            # A random order of each entity's cluster subset: distinct ids when
            # the subset is long enough, otherwise drawn with replacement.
            width = table.shape[1]
            size = sizes[clusters][:, None]
            keys = rng.random((n, width))
            keys[np.arange(width)[None, :] >= size] = 2.0  # outside the subset: last
            order = np.argsort(keys, axis=1)
            if width < lmax:  # pad with an out-of-subset marker
                order = np.pad(order, ((0, 0), (0, lmax - width)), constant_values=width)
            order = order[:, :lmax]
            fill = rng.integers(0, size, size=(n, lmax))
            pos = np.where(order >= size, fill, order)
            ids = table[clusters[:, None], pos] + lo
            return _ragged(ids, lengths, dtype)
        own = table[clusters, rng.integers(0, sizes[clusters])]
        uniform = rng.integers(0, hi - lo + 1, size=n)
        values = np.where(rng.random(n) < _CLUSTER_TIE, own, uniform) + lo
        return values.astype(dtype)
    # continuous: around a cluster-specific mean, inside [lo, hi]
    means = rng.uniform(0.15, 0.85, size=k)
    if columns.is_list(col):
        lengths, lmax = _list_lengths(rng, col, n)
        unit = np.clip(means[clusters][:, None] + rng.normal(0, 0.12, (n, lmax)), 0, 1)
        return _ragged(lo + (hi - lo) * unit, lengths, dtype)
    unit = np.clip(means[clusters] + rng.normal(0.0, 0.12, size=n), 0.0, 1.0)
    return (lo + (hi - lo) * unit).astype(dtype)


def _context_feature(rng, col, n):
    """A column tied to neither user nor item: uniform per row."""
    kind, lo, hi, dtype = _generated(col)
    if columns.is_list(col):
        lengths, lmax = _list_lengths(rng, col, n)
        if kind == CATEGORICAL:
            vals = rng.integers(lo, hi + 1, size=(n, lmax))
        else:
            vals = rng.uniform(lo, hi, size=(n, lmax))
        return _ragged(vals, lengths, dtype)
    if kind == CATEGORICAL:
        return rng.integers(lo, hi + 1, size=n).astype(dtype)
    return rng.uniform(lo, hi, size=n).astype(dtype)


def _target(rng, col, score, affinity):
    """Target values, higher for higher user-item affinity."""
    if columns.is_list(col):
        raise ValueError(f"synthetic: list target column {col.name!r} is not supported")
    kind = columns.kind(col) or CONTINUOUS
    lo, hi = _require_domain(col, kind)
    dtype = _dtype(col, kind)
    # centred half way between a same-cluster pair (norm**2) and a cross pair (0)
    z = affinity * (score - _CENTRE_NORM**2 / 2) + rng.normal(0.0, 0.5, size=len(score))
    unit = 1.0 / (1.0 + np.exp(-z))
    if kind == CATEGORICAL or np.issubdtype(dtype, np.integer):
        lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
        values = np.minimum(lo_i + np.floor(unit * (hi_i - lo_i + 1)), hi_i)
        return values.astype(dtype)
    return (lo + (hi - lo) * unit).astype(dtype)


def synthetic(
    schema: Schema,
    num_rows: int,
    seed: int | None = 0,
    *,
    num_clusters: int = 8,
    popularity_skew: float = 1.0,
    affinity: float = 4.0,
    return_truth: bool = False,
):
    """Generate ``num_rows`` interactions for ``schema`` with a planted cluster structure.

    Args:
        schema: a merlin Schema with one column tagged ``user_id`` and one
            tagged ``item_id``; every categorical column needs a domain
            (continuous columns without one use [0, 1]).
        num_rows: number of interactions (rows).
        seed: everything is reproducible from it (None: fresh randomness).
        num_clusters: number of latent user / item clusters.
        popularity_skew: weight of log item popularity in the choice of item
            (0: popularity plays no part).
        affinity: weight of the user-item latent dot product (0: items are
            drawn by popularity only).
        return_truth: also return a ``SyntheticTruth`` with the hidden clusters,
            latents and the exact generating distributions.

    Returns:
        A DataFrame with one column per schema column, in schema order:
        scalar columns with the schema's dtype (int64 / float32 when the schema
        gives none), list columns as an object column of 1-D numpy arrays
        (read-only: the rows of one user or item share one array).
        With ``return_truth=True``, the tuple ``(frame, truth)``.

    Raises:
        ValueError: a categorical column without a domain (naming it), a schema
            without user / item id columns, or bad arguments.

    Example:
        >>> import numpy as np
        >>> from merlin.schema import ColumnSchema, Schema, Tags
        >>> schema = Schema([
        ...     ColumnSchema("user_id", tags=[Tags.USER_ID, Tags.CATEGORICAL],
        ...                  dtype=np.int64, properties={"domain": {"min": 0, "max": 99}}),
        ...     ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
        ...                  dtype=np.int64, properties={"domain": {"min": 0, "max": 199}}),
        ...     ColumnSchema("item_tags", tags=[Tags.ITEM, Tags.CATEGORICAL, Tags.LIST],
        ...                  dtype=np.int64, is_list=True, is_ragged=True,
        ...                  properties={"domain": {"min": 0, "max": 29},
        ...                              "value_count": {"min": 1, "max": 3}}),
        ... ])
        >>> df = synthetic(schema, 1000, seed=0)
        >>> list(df.columns), len(df)
        (['user_id', 'item_id', 'item_tags'], 1000)
        >>> bool(df["item_id"].between(0, 199).all())
        True
    """
    require_schema(schema, "synthetic")
    if not isinstance(num_rows, (int, np.integer)) or num_rows < 0:
        raise ValueError(f"synthetic: num_rows must be a non-negative int, got {num_rows!r}")
    num_rows, k = int(num_rows), integer(num_clusters, "synthetic", "num_clusters")

    user_col = schema[columns.require_user_id_column(schema, "synthetic")]
    item_col = schema[columns.item_id_column(schema)]
    u_lo, u_hi = _require_domain(user_col, CATEGORICAL)
    i_lo, i_hi = _require_domain(item_col, CATEGORICAL)
    n_users, n_items = u_hi - u_lo + 1, i_hi - i_lo + 1
    # Check every column up front, so a bad schema fails before any work.
    for col in schema:
        kind = columns.kind(col)
        if kind == CATEGORICAL:
            _require_domain(col, kind)

    rng = np.random.default_rng(seed)
    d = max(16, k)
    centres = _CENTRE_NORM * np.linalg.qr(rng.normal(size=(d, k)))[0].T  # [k, d] orthogonal
    user_cluster = rng.integers(0, k, size=n_users)
    item_cluster = rng.integers(0, k, size=n_items)
    item_latent = _latents(rng, centres, item_cluster, _LATENT_NOISE)
    user_activity = _power_law(rng, n_users, _ACTIVITY_EXPONENT)
    item_popularity = _power_law(rng, n_items, _POPULARITY_EXPONENT)

    if n_users * n_items <= _PROFILE_BUDGET:
        user_latent = _latents(rng, centres, user_cluster, _LATENT_NOISE)
        profile_latent, user_profile = user_latent, np.arange(n_users)
    else:  # users share one of `per_cluster` latent profiles of their cluster
        per_cluster = max(1, _PROFILE_BUDGET // (k * n_items))
        profile_cluster = np.arange(k * per_cluster) % k
        profile_latent = _latents(rng, centres, profile_cluster, _LATENT_NOISE)
        user_profile = user_cluster + k * rng.integers(0, per_cluster, size=n_users)
        user_latent = profile_latent[user_profile]

    # One CDF over the catalog per profile, offset by the profile index so that
    # a single searchsorted over the flattened table samples every row.
    probs = _softmax(_logits(profile_latent, item_latent, item_popularity, affinity,
                             popularity_skew))
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    cdf += np.arange(len(cdf), dtype=np.float64)[:, None]
    del probs

    row_user = rng.choice(n_users, size=num_rows, p=user_activity)
    row_profile = user_profile[row_user]
    pos = np.searchsorted(cdf.ravel(), row_profile + rng.random(num_rows), side="right")
    row_item = np.clip(pos - row_profile * n_items, 0, n_items - 1)
    del cdf, pos

    values = {}
    for col in schema:
        name = col.name
        if name == user_col.name:
            values[name] = (row_user + u_lo).astype(_dtype(col, CATEGORICAL))
        elif name == item_col.name:
            values[name] = (row_item + i_lo).astype(_dtype(col, CATEGORICAL))
        elif Tags.TARGET in col.tags:
            score = np.einsum("ij,ij->i", user_latent[row_user], item_latent[row_item])
            values[name] = _target(_column_rng(seed, name), col, score, affinity)
        elif Tags.USER in col.tags:
            per_user = _entity_feature(_column_rng(seed, name), col, user_cluster, k)
            values[name] = per_user[row_user]
        elif Tags.ITEM in col.tags:
            per_item = _entity_feature(_column_rng(seed, name), col, item_cluster, k)
            values[name] = per_item[row_item]
        else:
            values[name] = _context_feature(_column_rng(seed, name), col, num_rows)
    frame = pd.DataFrame(values, columns=list(values))
    if not return_truth:
        return frame
    truth = SyntheticTruth(
        user_cluster=user_cluster,
        item_cluster=item_cluster,
        user_latent=user_latent,
        item_latent=item_latent,
        user_activity=user_activity,
        item_popularity=item_popularity,
        affinity=float(affinity),
        popularity_skew=float(popularity_skew),
        user_id_min=int(u_lo),
        item_id_min=int(i_lo),
    )
    return frame, truth
