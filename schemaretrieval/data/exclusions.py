"""Items to leave out of each user's results: `Exclusions`, the one exclusion type.

Evaluation (``evaluate_topk(exclude=)``), the baselines, the indexes
(``search(exclude=)``), Python ``recommend`` and the serving export all take
an ``Exclusions``, or the interactions one is built from (a DataFrame or a
parquet path with the user-id and item-id columns: e.g. the training data, so
that a user is not recommended what they already have). It keeps each user's
distinct items, sorted, and answers per query in the catalog's positions.

>>> import pandas as pd
>>> train = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": [30, 10, 20]})
>>> seen = Exclusions.from_interactions(train, "user_id", "item_id")
>>> len(seen), [items.tolist() for items in seen.items_of(["u2", "u1", "new"])]
(3, [[20], [10, 30], []])
>>> indptr, positions = seen.positions(["u1"], catalog_ids=[10, 20, 30])
>>> positions[indptr[0]:indptr[1]].tolist()
[0, 2]
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from schemaretrieval.data import parquet
from schemaretrieval.data.read import read_frame, require_columns, require_present

__all__ = ["Exclusions", "QueryExclusions", "as_exclusions", "catalog_positions"]


def _unique_index(ids, what="catalog ids") -> pd.Index:
    index = pd.Index(np.asarray(ids))
    if not index.is_unique:
        dup = index[index.duplicated()]
        raise ValueError(f"{what} must be unique; {len(dup)} duplicates, e.g. {dup[0]!r}")
    return index


def catalog_positions(catalog_ids, item_ids) -> np.ndarray:
    """Position in the catalog ``catalog_ids`` of each of ``item_ids`` (int64); an id not in
    the catalog is an error saying how many and showing one.

    >>> catalog_positions(np.array([10, 20, 30]), [30, 10, 30]).tolist()
    [2, 0, 2]
    """
    index = _unique_index(catalog_ids)
    item_ids = np.asarray(item_ids)
    pos = index.get_indexer(item_ids)
    missing = pos < 0
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of {len(item_ids)} item ids are not in the catalog of "
                         f"{len(index)} items, e.g. {item_ids[missing][0]!r}")
    return pos.astype(np.int64)


class Exclusions:
    """Each user's distinct items to leave out (see the module docstring).

    Args:
        users, items: one (user id, item id) pair per excluded item; ids of
            any dtype (encoded ints, raw strings). Pairs may repeat.

    >>> seen = Exclusions([1, 1, 2], [7, 7, 9])
    >>> len(seen), [items.tolist() for items in seen.items_of([1, 2, 3])]
    (2, [[7], [9], []])
    """

    def __init__(self, users, items):
        users, items = np.asarray(users), np.asarray(items)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"Exclusions: {users.shape} user ids against {items.shape} item ids; expected one "
                             "user per item, both 1-d")
        for what, ids in (("user", users), ("item", items)):  # a NaN user would sort into no row
            require_present(ids, "Exclusions", f"{what} ids", "every pair needs a user id and an item id")
        pairs = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
        pairs = pairs.sort_values(["user", "item"], kind="stable")
        self.users = pd.unique(pairs["user"].to_numpy())
        counts = pairs.groupby("user", sort=True).size().reindex(self.users).to_numpy()
        self.indptr = np.zeros(len(self.users) + 1, np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        self.items = pairs["item"].to_numpy()
        self._users = pd.Index(self.users)

    @classmethod
    def from_interactions(cls, data, user_column: str, item_column: str) -> "Exclusions":
        """From a table of interactions: a DataFrame, or a parquet path read two columns at a
        time, one row group at a time (memory: those two columns)."""
        if isinstance(data, (str, os.PathLike)) and parquet.row_groups(data):
            columns = parquet.read_columns(data, [user_column, item_column])
            return cls(columns[user_column], columns[item_column])
        frame, source = read_frame(data, "exclude=")
        # An empty table is a valid "exclude nothing".
        require_columns(frame, [user_column, item_column], source, "exclude= (interactions: user id, item id)",
                        allow_empty=True)
        return cls(frame[user_column].to_numpy(), frame[item_column].to_numpy())

    @classmethod
    def per_query(cls, lists) -> "Exclusions":
        """One collection of item ids per query, keyed by the query's position 0..n-1 (what
        ``search(exclude=)`` takes without ``users=``).

        >>> [items.tolist() for items in Exclusions.per_query([[3, 1], [], {2}]).items_of([0, 1, 2])]
        [[1, 3], [], [2]]
        """
        if isinstance(lists, (str, bytes)) or not hasattr(lists, "__len__"):
            raise TypeError("exclude: expected one collection of item ids per query")
        users, items = [], []
        for query, ids in enumerate(lists):
            if isinstance(ids, (set, frozenset, dict)):  # a collection NumPy would take for one object
                ids = list(ids)
            if ids is not None and (isinstance(ids, (str, bytes)) or np.ndim(ids) == 0):
                raise TypeError(f"exclude: expected one collection of item ids per query, got {ids!r} for query "
                                f"{query} (a flat list is not ids for every query: give [[...]] * number of queries)")
            ids = [] if ids is None else list(np.asarray(ids).ravel())
            users.extend([query] * len(ids))
            items.extend(ids)
        return cls(np.asarray(users, np.int64), np.asarray(items))

    def __len__(self) -> int:
        return len(self.items)

    def _rows(self, users):
        rows = self._users.get_indexer(np.asarray(users))
        found = rows >= 0
        rows = np.where(found, rows, 0)
        starts = np.where(found, self.indptr[rows], 0)
        counts = np.where(found, self.indptr[np.minimum(rows + 1, len(self.indptr) - 1)] - starts, 0)
        return starts, counts

    def items_of(self, users) -> list[np.ndarray]:
        """Each user's excluded item ids (sorted); an unknown user has none."""
        starts, counts = self._rows(users)
        return [self.items[s:s + c] for s, c in zip(starts, counts)]

    def positions(self, users, catalog_ids) -> tuple[np.ndarray, np.ndarray]:
        """CSR ``(indptr, positions)``: query ``i``'s excluded catalog positions are
        ``positions[indptr[i]:indptr[i + 1]]`` (sorted, unique). Items not in the catalog
        are ignored. Vectorised: no Python loop over queries. For many queries,
        `for_queries` gives the same a range of queries at a time."""
        return self.for_queries(users, catalog_ids).rows(0, len(users))

    def for_queries(self, users, catalog_ids) -> "QueryExclusions":
        """Each query's excluded catalog positions, read a range of queries at a time
        (`QueryExclusions.rows`): what evaluation and top-k take, so that one query per
        held-out row does not hold every query's exclusions at once."""
        return QueryExclusions(self, users, catalog_ids)


def _same_kind(ids, others, what: str, against: str) -> None:
    """A ValueError when one side's ids are numbers, text or bytes and the other's another kind:
    they never match (b"i4" is not "i4"; a string tensor's ``.numpy()`` gives bytes)."""
    kinds = []
    for values in (ids, others):
        values = np.asarray(values)[:1000]  # a sample: the kind of an id column, not a scan of it
        inferred = pd.api.types.infer_dtype(values, skipna=True) if len(values) else "empty"
        kinds.append("numbers" if inferred in ("integer", "floating", "mixed-integer-float", "decimal")
                     else "text" if inferred == "string" else "bytes" if inferred == "bytes" else None)
    if None not in kinds and kinds[0] != kinds[1]:
        raise ValueError(f"{what} are {kinds[0]} ({np.asarray(ids)[0]!r}, ...) and {against} {kinds[1]} "
                         f"({np.asarray(others)[0]!r}, ...): they never match; give both as the same ids "
                         "(encoded ints where the model was fit on encoded data; bytes decoded to text)")


class QueryExclusions:
    """`Exclusions` bound to one user per query and a catalog: ``rows(start, stop)`` is the
    CSR ``(indptr, positions)`` of queries ``start:stop`` (``indptr`` from 0; positions
    sorted and unique per query, items outside the catalog left out). Memory: two
    integers per query and one per excluded pair, whatever the queries' exclusions add
    up to.

    >>> seen = Exclusions(["a", "a", "b"], [30, 10, 20])
    >>> queries = seen.for_queries(["b", "a", "new", "a"], catalog_ids=[10, 20, 30])
    >>> indptr, positions = queries.rows(1, 4)
    >>> len(queries), indptr.tolist(), positions.tolist()
    (4, [0, 2, 2, 4], [0, 2, 0, 2])
    """

    def __init__(self, exclusions: Exclusions, users, catalog_ids):
        # Ids of another kind (raw strings against encoded ints) would match nothing and exclude nothing.
        _same_kind(exclusions.items, catalog_ids, "excluded item ids", "the catalog's item ids")
        _same_kind(exclusions.users, users, "the exclusions' user ids", "the queries' user ids")
        self._position = _unique_index(catalog_ids).get_indexer(exclusions.items)
        self._starts, self._counts = exclusions._rows(users)

    def __len__(self) -> int:
        return len(self._starts)

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        starts, counts = self._starts[start:stop], self._counts[start:stop]
        indptr = np.zeros(len(starts) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        offsets = np.arange(indptr[-1], dtype=np.int64) + np.repeat(starts - indptr[:-1], counts)
        picked = self._position[offsets]
        rows = np.repeat(np.arange(len(starts)), counts)
        keep = picked >= 0
        if not keep.all():
            rows, picked = rows[keep], picked[keep]
            indptr = np.zeros(len(starts) + 1, np.int64)
            np.cumsum(np.bincount(rows, minlength=len(starts)), out=indptr[1:])
        order = np.lexsort((picked, rows))
        return indptr, picked[order].astype(np.int64)


def as_exclusions(exclude, user_column: str | None, item_column: str, what: str = "exclude=") -> Exclusions | None:
    """``exclude`` as `Exclusions`: None stays None, an ``Exclusions`` passes, interactions
    (a DataFrame or a path) are read by the user-id and item-id columns.

    >>> as_exclusions(None, "user_id", "item_id") is None
    True
    """
    if exclude is None or isinstance(exclude, Exclusions):
        return exclude
    if user_column is None:
        raise ValueError(f"{what} matches rows to users by the column tagged user_id, and the schema has none")
    if isinstance(exclude, (pd.DataFrame, str, os.PathLike)):
        return Exclusions.from_interactions(exclude, user_column, item_column)
    raise TypeError(f"{what} expects an Exclusions or interactions (a DataFrame or a path with columns "
                    f"{user_column!r} and {item_column!r}), got {type(exclude).__name__}")
