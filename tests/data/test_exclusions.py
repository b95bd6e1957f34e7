"""Exclusions: each user's items to leave out, answered per query in catalog positions."""

import numpy as np
import pandas as pd
import pytest

from schemaretrieval.data import Exclusions
from schemaretrieval.data.exclusions import as_exclusions, catalog_positions


def test_each_users_distinct_items_sorted():
    seen = Exclusions(["u2", "u1", "u1", "u1"], [20, 30, 10, 30])
    assert len(seen) == 3
    assert [items.tolist() for items in seen.items_of(["u1", "u2", "u3"])] == [[10, 30], [20], []]


def test_positions_per_query_ignore_items_outside_the_catalog():
    seen = Exclusions(["u1", "u1", "u2", "u1"], [30, 10, 99, 40])
    indptr, positions = seen.positions(["u1", "u2", "u1", "u9"], catalog_ids=[10, 20, 30])
    assert indptr.tolist() == [0, 2, 2, 4, 4]
    assert positions.tolist() == [0, 2, 0, 2]


def test_from_interactions_a_frame_or_a_parquet_path(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7], "other": [0, 0, 0]})
    frame.to_parquet(tmp_path / "train.parquet")
    for source in (frame, tmp_path / "train.parquet", str(tmp_path)):
        seen = Exclusions.from_interactions(source, "user_id", "item_id")
        assert [items.tolist() for items in seen.items_of([1, 2])] == [[7, 8], [7]]
    with pytest.raises(ValueError, match=r"exclude= \(interactions: user id, item id\) needs column \['user_id'\]"):
        Exclusions.from_interactions(frame.drop(columns="user_id"), "user_id", "item_id")


def test_per_query_lists_and_the_conversions():
    assert [x.tolist() for x in Exclusions.per_query([[3, 1], None, [2]]).items_of([0, 1, 2])] == [[1, 3], [], [2]]
    assert as_exclusions(None, "u", "i") is None
    with pytest.raises(ValueError, match="the schema has none"):
        as_exclusions(pd.DataFrame({"i": [1]}), None, "i")
    with pytest.raises(TypeError, match="expects an Exclusions or interactions"):
        as_exclusions([[1]], "u", "i")


def test_catalog_positions_name_a_missing_item():
    assert catalog_positions(np.array([10, 20, 30]), [30, 10]).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"1 of 2 item ids are not in the catalog of 3 items, e.g. 99"):
        catalog_positions(np.array([10, 20, 30]), [30, 99])


def test_for_queries_reads_any_range_of_queries_as_positions_reads_them_all():
    rng = np.random.default_rng(5)
    seen = Exclusions(rng.integers(0, 40, 600), rng.integers(0, 90, 600))
    catalog = rng.permutation(80)  # items 80-89 are outside it
    users = rng.integers(0, 45, 300)  # users 40-44 have nothing excluded
    indptr, positions = seen.positions(users, catalog)
    queries = seen.for_queries(users, catalog)
    assert len(queries) == 300
    for start, stop in [(0, 300), (0, 1), (17, 93), (299, 300), (120, 120)]:
        chunk_indptr, chunk_positions = queries.rows(start, stop)
        assert chunk_indptr.tolist() == (indptr[start:stop + 1] - indptr[start]).tolist()
        assert chunk_positions.tolist() == positions[indptr[start]:indptr[stop]].tolist()


def test_missing_ids_ids_of_another_kind_and_flat_lists_are_refused():
    # was: an indptr ending in -9223372036854775808, and the user's exclusions lost
    with pytest.raises(ValueError, match=r"Exclusions: 1 missing user ids \(None/NaN\), first at position 0"):
        Exclusions([np.nan, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r"Exclusions: 1 missing item ids"):
        Exclusions([1, 2], ["a", None])
    # was: raw strings against encoded ints matched nothing and excluded nothing, without a word
    seen = Exclusions([1, 2], [10, 20])
    with pytest.raises(ValueError, match=r"excluded item ids are numbers \(10, ...\) and the catalog's item ids "
                                         r"text \('10', ...\): they never match"):
        seen.for_queries([1], catalog_ids=["10", "20"])
    with pytest.raises(ValueError, match=r"the exclusions' user ids are numbers .* and the queries' user ids text"):
        seen.for_queries(["1"], catalog_ids=[10, 20])
    # was: bytes (a string tensor's .numpy()) passed for text, matched nothing and excluded nothing
    with pytest.raises(ValueError, match=r"excluded item ids are bytes \(b'i10', ...\) and the catalog's item ids "
                                         r"text \('i10', ...\): they never match; .*bytes decoded to text"):
        Exclusions([1], [b"i10"]).for_queries([1], catalog_ids=["i10", "i20"])
    # was: [100, 101] read as one id for each of two queries
    with pytest.raises(TypeError, match=r"expected one collection of item ids per query, got 100 for query 0"):
        Exclusions.per_query([100, 101])
