"""The catalog: one row per item with its features and counts, from interactions, a table or the domain."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from merlin.schema import Schema

from schemaretrieval.data import Catalog, synthetic, to_arrays
from schemaretrieval.schema import candidate_schema, schema_from_dict


@pytest.fixture(scope="module")
def frame(schema):
    return synthetic(schema, 2_000, seed=11)


def small_frame():
    return pd.DataFrame({
        "user_id": [0, 1, 2], "user_age": [0.1, 0.2, 0.3], "user_country": [1, 2, 3],
        "item_id": [5, 6, 5], "item_category": [1, 2, 1], "item_tags": [[1, 2], [3], [1, 2]],
        "item_price": [0.5, 0.25, 0.5], "rating": [1.0, 0.0, 0.5],
    })


def test_one_row_per_item_sorted_with_counts(schema, frame):
    catalog = Catalog.from_interactions(frame, schema)
    table = catalog.frame
    assert list(table.columns) == ["item_id", "item_category", "item_tags", "item_price"]
    np.testing.assert_array_equal(catalog.ids, np.unique(frame["item_id"]))
    assert list(table.index) == list(range(len(table)))
    first = frame.drop_duplicates("item_id").set_index("item_id").loc[catalog.ids]
    np.testing.assert_array_equal(table["item_price"], first["item_price"])
    for got, want in zip(table["item_tags"], first["item_tags"]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(catalog.counts, frame["item_id"].value_counts().loc[catalog.ids].to_numpy())
    to_arrays(table, candidate_schema(schema))  # valid candidate-tower input


def test_the_first_occurrence_is_kept_and_sources_combine(schema):
    data = small_frame()
    data.loc[2, "item_price"] = 0.9  # item 5 again, with another price
    catalog = Catalog.from_interactions(data, schema)
    np.testing.assert_array_equal(catalog.ids, [5, 6])
    np.testing.assert_allclose(catalog.frame["item_price"], [0.5, 0.25])
    more = small_frame().assign(item_id=[6, 7, 7])
    both = Catalog.from_interactions([data, more], schema)
    assert both.ids.tolist() == [5, 6, 7] and both.counts.tolist() == [2.0, 2.0, 2.0]


def test_lookup_in_a_graph_gives_the_candidate_features(schema, frame):
    catalog = Catalog.from_interactions(frame, schema)
    item = int(catalog.ids[3])
    features = catalog.lookup(np.array([item]))
    assert int(features["item_id"][0]) == item and sorted(features) == sorted(catalog.schema.column_names)
    assert np.asarray(catalog.rows(np.array([item, 99999]))).tolist() == [3, -1]
    # was: the first row's features for an id the catalog lacks, and 2**32 + id read as id
    with pytest.raises(ValueError, match=r"Catalog.lookup: item id 99999 is not in the catalog \(1 of 2 ids are not\)"):
        catalog.lookup(np.array([item, 99999]))
    assert np.asarray(catalog.rows(np.array([2**32 + item]))).tolist() == [-1]
    in_graph = tf.function(catalog.lookup)
    assert int(in_graph(tf.constant([item]))["item_id"][0]) == item
    with pytest.raises(tf.errors.InvalidArgumentError, match="Catalog.lookup: an item id is not in the catalog"):
        in_graph(tf.constant([99999]))


def test_errors_name_what_is_wrong(schema):
    with pytest.raises(ValueError, match=r"item_price"):
        Catalog.from_interactions(small_frame().drop(columns=["item_price"]), schema)
    no_item = Schema([c for c in schema if c.name != "item_id"])
    with pytest.raises(ValueError, match="item_id"):
        Catalog.from_interactions(small_frame(), no_item)
    with pytest.raises(ValueError, match="item ids of column 'item_id' repeat; a catalog has one row per item"):
        Catalog(small_frame(), schema)
    with pytest.raises(ValueError, match="the candidate side also reads"):
        Catalog.of_domain(schema)
    with pytest.raises(ValueError, match="no item counts"):
        Catalog(small_frame().drop_duplicates("item_id"), schema).counts_by_id(10)


def test_a_parquet_path_without_a_candidate_column_is_named(schema, tmp_path):
    # was: "<DataFrame>: the catalog needs columns [...]" for `train --valid FILE`, naming no file
    path = tmp_path / "valid.parquet"
    small_frame().drop(columns=["item_price"]).to_parquet(path)
    with pytest.raises(ValueError, match=rf"^{path}: the catalog needs column \['item_price'\]; the data has"):
        Catalog.from_interactions([small_frame(), str(path)], schema)


def test_the_domain_catalog():
    schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
                                                        "domain": {"min": 2, "max": 5}}}})
    assert Catalog.of_domain(schema).ids.tolist() == [2, 3, 4, 5]


def test_a_bad_value_is_named_at_the_callers_row_not_the_catalogs(schema, frame, tmp_path):
    # was: "<DataFrame>: column 'item_id': value 9999 at row 50", a row of the de-duplicated items
    bad = frame.head(300).copy()
    bad.loc[250, "item_id"] = 9999
    with pytest.raises(ValueError, match=r"^<DataFrame>: column 'item_id': value 9999 at row 250 is outside"):
        Catalog.from_interactions(bad, schema)
    bad.to_parquet(tmp_path / "bad.parquet")
    path = str(tmp_path / "bad.parquet")
    for data in (path, [frame.head(10), path]):
        with pytest.raises(ValueError, match=rf"^{path} \(rows 0..299 of the file\): column 'item_id': value 9999 at "
                                             r"row 250 is outside"):
            Catalog.from_interactions(data, schema)
