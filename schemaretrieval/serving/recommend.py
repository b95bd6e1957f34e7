"""Top-k items for users in Python: the query tower, then an index over the catalog.

>>> import schemaretrieval as sr
>>> schema = sr.load_schema("schemas/synthetic.yaml")
>>> train = sr.data.synthetic(schema, 2000, seed=0)
>>> model = sr.TwoTowerModel(schema)
>>> model.compile(optimizer="adam")
>>> history = model.fit(train, epochs=1, verbose=0)
>>> users = train.drop_duplicates("user_id").head(3)
>>> catalog = sr.data.Catalog.from_interactions(train, schema)
>>> scores, ids = recommend(model, users, k=5, catalog=catalog)
>>> scores.shape, ids.shape, bool((scores[:, :-1] >= scores[:, 1:]).all())
((3, 5), (3, 5), True)
>>> _, unseen = recommend(model, users, k=5, catalog=catalog, exclude=train)
>>> [set(row) & set(train.loc[train["user_id"] == user, "item_id"]) for user, row in zip(users["user_id"], unseen)]
[set(), set(), set()]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from merlin.schema import Tags

from schemaretrieval.data.catalog import as_catalog
from schemaretrieval.data.exclusions import as_exclusions
from schemaretrieval.serving.indexes import BruteForce, TopKIndex
from schemaretrieval.serving.requests import UNUSABLE_QUERY, unit_length, unusable_rows

__all__ = ["recommend", "catalog_index"]


def catalog_index(model, catalog=None, index: TopKIndex | None = None) -> TopKIndex:
    """``index`` (default `BruteForce`) built over the catalog's candidate embeddings, under its item ids.

    >>> import schemaretrieval as sr
    >>> model = sr.TwoTowerModel(sr.load_schema("schemas/synthetic.yaml"))
    >>> catalog = sr.data.Catalog.from_interactions(sr.data.synthetic(model.schema, 200, seed=0), model.schema)
    >>> len(catalog_index(model, catalog)) == len(catalog)
    True
    """
    catalog = as_catalog(catalog, model.schema) if catalog is not None else model.default_catalog("recommend")
    return (index or BruteForce()).index(model.candidate_embeddings(catalog), catalog.ids)


def recommend(model, user_features, k: int = 10, catalog=None, exclude=None, index: TopKIndex | None = None):
    """Top-k ``(scores, item ids)``, each ``[num_users, k]``, for each row of ``user_features``.

    Args:
        model: a `TwoTowerModelV2`.
        user_features: a DataFrame or mapping of the query tower's columns
            (encoded ids); a single user may be given as scalars.
        k: results per user.
        catalog: a `sr.data.Catalog` (see `TwoTowerModelV2.evaluate_topk`).
        exclude: an `sr.data.Exclusions`, or interactions, matched to the rows
            by the user-id column; or one collection of item ids per row.
        index: an index already built over the catalog (`catalog_index`): the
            catalog is not embedded again.

    k larger than what exclusion leaves of the catalog for some user is a ValueError
    (the module's example runs it).

    >>> import schemaretrieval as sr
    >>> model = sr.TwoTowerModel(sr.load_schema("schemas/synthetic.yaml"))
    >>> recommend(model, {"user_id": 1, "user_country": 2}, k=3)
    Traceback (most recent call last):
    ...
    ValueError: recommend: user_features lacks the query feature(s) ['user_age']; the query tower reads ['user_id', 'user_age', 'user_country']
    """
    if not isinstance(user_features, (Mapping, pd.DataFrame)):
        raise ValueError("recommend: user_features must be a DataFrame or a mapping of the query tower's columns "
                         f"(column -> values), got a {type(user_features).__name__}")
    if isinstance(user_features, Mapping) and not isinstance(user_features, pd.DataFrame):
        user_features = {name: np.atleast_1d(np.asarray(v)) if np.ndim(v) == 0 else v
                         for name, v in user_features.items()}
    names = model.query_tower.column_names
    present = user_features.columns if isinstance(user_features, pd.DataFrame) else user_features.keys()
    missing = [name for name in names if name not in present]
    if missing:
        raise ValueError(f"recommend: user_features lacks the query feature(s) {missing}; the query tower reads {names}")
    if index is None:
        index = catalog_index(model, catalog)
    users = None
    if exclude is not None and not isinstance(exclude, (list, tuple, np.ndarray)):  # else one collection per row
        exclude = as_exclusions(exclude, model.query_id_column, model.candidate_id_column, "recommend: exclude=")
        if model.query_id_column not in present:
            raise ValueError(f"recommend: exclude= matches users by {model.query_id_column!r}, which user_features lacks")
        users = np.asarray(user_features[model.query_id_column]).ravel()
    queries = model.query_embeddings(user_features)
    bad = np.asarray(unusable_rows(queries, unit_length(model.query_tower)))
    if bad.any():
        continuous = [c.name for c in model.query_tower.schema.select_by_tag(Tags.CONTINUOUS)]
        raise ValueError(f"recommend: {UNUSABLE_QUERY.format(names=', '.join(continuous) or 'none')}; in rows "
                         f"{np.nonzero(bad)[0][:5].tolist()}")
    return index.search(queries, k, exclude=exclude, users=users)
