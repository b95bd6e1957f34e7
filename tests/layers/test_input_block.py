"""InputBlock: tables, pooling, continuous values and column order, checked against hand-computed numbers."""

import copy
import json
from helpers import synthetic_schema

import keras
from merlin.schema import Tags
import numpy as np
import pytest

from schemaretrieval import schema as schema_lib
from schemaretrieval.layers import CategoricalEmbedding, InputBlock
from schemaretrieval.schema import SchemaError, schema_from_dict

SPEC = {
    "columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                    "domain": {"min": 0, "max": 9}, "embedding_dim": 3},
        "genres": {"tags": ["user", "categorical", "list"], "dtype": "int64",
                   "domain": {"min": 0, "max": 4, "name": "genre"}, "embedding_dim": 2,
                   "value_count": {"min": 0, "max": 3}},
        "age": {"tags": ["user", "continuous"], "dtype": "float32"},
        # shares the `genre` table, and so its width, without repeating embedding_dim
        "fav_genre": {"tags": ["user", "categorical"], "dtype": "int64",
                      "domain": {"min": 0, "max": 4, "name": "genre"}},
        # no embedding_dim: the rule gives 2 * 20 ** 0.25 = 4.23 -> 5 -> 8
        "country": {"tags": ["user", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 19}},
        "rating": {"tags": ["target", "continuous"], "dtype": "float32"},
    }
}

# Table contents set by `set_tables`.
USER_TABLE = np.arange(30, dtype="float32").reshape(10, 3) / 10  # row i = [3i, 3i+1, 3i+2] / 10
GENRE_TABLE = np.array([[0, 0], [1, 10], [2, 20], [3, 30], [4, 40]], dtype="float32")  # row i = [i, 10i]
COUNTRY_TABLE = np.repeat(np.arange(20, dtype="float32")[:, None], 8, axis=1)  # row i = i * ones(8)

BATCH = {
    "user_id": np.array([2, 0, 9, 1]),
    "genres": np.array([[1, 3, -1], [-1, -1, -1], [0, 4, 4], [4, -1, -1]]),
    "age": np.array([0.25, -1.5, 3.0, 0.0], dtype="float32"),
    "fav_genre": np.array([3, 0, 4, 1]),
    "country": np.array([19, 0, 5, 7]),
}

# Worked out by hand from the tables above; columns in schema order:
# user_id (3) | genres mean (2) | age (1) | fav_genre (2) | country (8)
EXPECTED = np.array([
    [.6, .7, .8] + [2, 20] + [0.25] + [3, 30] + [19] * 8,             # genres (1, 3): ([1,10]+[3,30]) / 2
    [0., .1, .2] + [0, 0] + [-1.5] + [0, 0] + [0] * 8,                # genres all padding -> zeros
    [2.7, 2.8, 2.9] + [8 / 3, 80 / 3] + [3.0] + [4, 40] + [5] * 8,    # genres (0, 4, 4): id 0 counts
    [.3, .4, .5] + [4, 40] + [0.0] + [1, 10] + [7] * 8,               # genres (4): padding not in the count
], dtype="float32")


def spec_schema(spec=SPEC):
    return schema_from_dict(copy.deepcopy(spec))


def set_tables(block):
    block.tables["user_id"].table.embeddings.assign(USER_TABLE)
    block.tables["genre"].table.embeddings.assign(GENRE_TABLE)
    block.tables["country"].table.embeddings.assign(COUNTRY_TABLE)


@pytest.fixture()
def block():
    layer = InputBlock(spec_schema())
    layer.build()
    set_tables(layer)
    return layer


# ---------------------------------------------------------------------------- tables


def test_one_table_per_domain_sized_max_plus_one(block):
    shapes = {name: tuple(t.table.embeddings.shape) for name, t in block.tables.items()}
    # genres and fav_genre share `genre`: three tables for four categorical columns
    assert shapes == {"user_id": (10, 3), "genre": (5, 2), "country": (20, 8)}
    assert len(block.trainable_weights) == 3


def test_synthetic_tables_follow_the_rule():
    block = InputBlock(synthetic_schema())
    shapes = {name: (t.input_dim, t.output_dim) for name, t in block.tables.items()}
    # 2 * n ** 0.25 rounded up, then up to a multiple of 8 (min 8):
    # 2000 -> 13.4 -> 16; 20 -> 4.2 -> 8; 3000 -> 14.8 -> 16; 30 -> 4.7 -> 8; 100 -> 6.3 -> 8
    assert shapes == {"user_id": (2000, 16), "user_country": (20, 8), "item_id": (3000, 16),
                      "item_category": (30, 8), "item_tags": (100, 8)}
    for column in synthetic_schema().select_by_tag(Tags.CATEGORICAL):
        table = block.tables[column.name]
        assert (table.input_dim, table.output_dim) == (schema_lib.cardinality(column),
                                                       schema_lib.embedding_dim(column))


@pytest.mark.parametrize("maximum, dim", [(4094, 16), (4095, 16), (4096, 24)])
def test_inferred_dim_at_a_fourth_power(maximum, dim):
    # cardinality 4096 = 8 ** 4: 2 * 8 = 16 exactly; 4097 needs 17, rounded up to 24
    schema = schema_from_dict({"columns": {"x": {"tags": ["item", "categorical"], "dtype": "int64",
                                                 "domain": {"min": 0, "max": maximum}}}})
    table = InputBlock(schema).tables["x"]
    assert (table.input_dim, table.output_dim) == (maximum + 1, dim)


def test_shared_table_is_used_by_both_columns(block):
    out = np.asarray(block(BATCH))
    # change one row of the shared table: both the pooled list and the scalar column see it
    block.tables["genre"].table.embeddings.assign(GENRE_TABLE + np.array([[0, 0], [0, 0], [0, 0], [0, 0], [100, 0]]))
    changed = np.asarray(block(BATCH))
    delta = changed - out
    # row 2: genres (0, 4, 4) -> +200/3 in its first dim; fav_genre 4 -> +100
    np.testing.assert_allclose(delta[2, 3], 200 / 3, rtol=1e-5)
    np.testing.assert_allclose(delta[2, 6], 100, rtol=1e-6)
    # row 3: genres (4) -> +100; fav_genre 1 unchanged
    np.testing.assert_allclose(delta[3], [0] * 3 + [100, 0] + [0] + [0, 0] + [0] * 8, atol=1e-5)


def test_shared_table_covers_the_largest_domain():
    # two columns of one domain with different maxes: the table needs rows for every id of both
    schema = schema_from_dict({"columns": {
        "a": {"tags": ["user", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9, "name": "g"}},
        "b": {"tags": ["user", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 19, "name": "g"}},
    }})
    block = InputBlock(schema)
    assert (block.tables["g"].input_dim, block.tables["g"].output_dim) == (20, 8)
    block.build()
    block.tables["g"].table.embeddings.assign(COUNTRY_TABLE)
    np.testing.assert_allclose(np.asarray(block({"a": np.array([3]), "b": np.array([15])})),
                               [[3] * 8 + [15] * 8])


def test_shared_domain_with_two_widths_is_an_error():
    spec = copy.deepcopy(SPEC)
    spec["columns"]["fav_genre"]["embedding_dim"] = 4
    with pytest.raises(SchemaError, match=r"sharing domain 'genre'.*\[2, 4\]") as err:
        InputBlock(spec_schema(spec))
    assert (err.value.column, err.value.key) == ("fav_genre", "embedding_dim")


def test_a_table_larger_than_the_machine_is_named_before_it_is_allocated():
    # was: ResourceExhaustedError: OOM when allocating tensor with shape[4294967296,512], no column named
    schema = schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 2**32 - 1},
                    "embedding_dim": 512},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}}}})
    with pytest.raises(SchemaError, match=r"column 'user_id', key 'domain': domain max 4,294,967,295 makes an "
                                          r"embedding table of 4,294,967,296 x 512 float32 \(8,192.0 GiB\), more "
                                          r"than this machine's .* GiB of memory; encode the ids with the ETL"):
        InputBlock(schema)


# ---------------------------------------------------------------------------- output


def test_output_hand_computed(block):
    out = np.asarray(block(BATCH))
    assert out.shape == (4, 3 + 2 + 1 + 2 + 8)
    np.testing.assert_allclose(out, EXPECTED, rtol=1e-6, atol=1e-6)


def test_continuous_values_at_their_offset(block):
    out = np.asarray(block(BATCH))
    np.testing.assert_array_equal(out[:, 5], BATCH["age"])
    # a float64 column or a (batch, 1) column reads the same
    for age in (BATCH["age"].astype("float64"), BATCH["age"][:, None]):
        np.testing.assert_array_equal(np.asarray(block({**BATCH, "age": age}))[:, 5], BATCH["age"])


def test_list_mean_pooling_alone():
    layer = CategoricalEmbedding(input_dim=5, output_dim=2)
    layer.build(None)
    layer.table.embeddings.assign(GENRE_TABLE)
    out = np.asarray(layer(np.array([[2, -1, -1, -1], [1, 2, 3, -1], [-1, -1, -1, -1], [0, 0, 0, 4]])))
    np.testing.assert_allclose(out, [[2, 20], [2, 20], [0, 0], [1, 10]], rtol=1e-6)
    # a 1-d id column is a plain lookup
    np.testing.assert_array_equal(np.asarray(layer(np.array([4, 0]))), [[4, 40], [0, 0]])


def test_output_width_and_target_left_out():
    schema = synthetic_schema()
    block = InputBlock(schema)
    # rating is tagged [target, continuous]: a label, never an input
    assert block.column_names == ["user_id", "user_age", "user_country",
                                  "item_id", "item_category", "item_tags", "item_price"]
    batch = {"user_id": np.array([0, 1999]), "user_age": np.array([0.1, 0.9]), "user_country": np.array([0, 19]),
             "item_id": np.array([0, 2999]), "item_category": np.array([0, 29]),
             "item_tags": np.array([[0, 99, -1], [5, -1, -1]]), "item_price": np.array([0.3, 0.7])}
    # 16 + 1 + 8 + 16 + 8 + 8 + 1
    assert block(batch).shape == (2, 58)
    assert InputBlock(schema_lib.query_schema(schema))(batch).shape == (2, 16 + 1 + 8)
    assert InputBlock(schema_lib.candidate_schema(schema))(batch).shape == (2, 16 + 8 + 8 + 1)


def test_column_order_follows_schema(block):
    assert block.column_names == ["user_id", "genres", "age", "fav_genre", "country"]
    order = ["country", "age", "rating", "fav_genre", "user_id", "genres"]
    spec = {"columns": {name: SPEC["columns"][name] for name in order}}
    # fav_genre now comes first in the genre domain: it takes the width given on genres
    reordered = InputBlock(spec_schema(spec))
    reordered.build()
    set_tables(reordered)
    assert reordered.column_names == ["country", "age", "fav_genre", "user_id", "genres"]
    offsets = {"user_id": slice(0, 3), "genres": slice(3, 5), "age": slice(5, 6),
               "fav_genre": slice(6, 8), "country": slice(8, 16)}
    expected = np.concatenate([EXPECTED[:, offsets[name]] for name in reordered.column_names], axis=1)
    np.testing.assert_allclose(np.asarray(reordered(BATCH)), expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- errors


def test_missing_column_names_it(block):
    batch = {k: v for k, v in BATCH.items() if k != "fav_genre"}
    with pytest.raises(KeyError, match=r"no column\(s\) \['fav_genre'\]"):
        block(batch)


def test_categorical_without_domain_asks_for_the_etl():
    spec = copy.deepcopy(SPEC)
    del spec["columns"]["country"]["domain"]
    with pytest.raises(SchemaError, match="run the ETL first") as err:
        InputBlock(spec_schema(spec))
    assert (err.value.column, err.value.key) == ("country", "domain")
    assert "categorical column without a domain max" in str(err.value)


def test_schema_without_features_is_an_error():
    schema = schema_from_dict({"columns": {"rating": {"tags": ["target", "continuous"], "dtype": "float32"}}})
    with pytest.raises(ValueError, match="no categorical or continuous column"):
        InputBlock(schema)


# ---------------------------------------------------------------------------- config


def test_config_round_trip(block):
    config = block.get_config()
    json.dumps(config)  # what keras writes into a saved model
    copy_ = InputBlock.from_config(config)
    assert copy_.column_names == block.column_names
    assert {n: (t.input_dim, t.output_dim) for n, t in copy_.tables.items()} == \
           {n: (t.input_dim, t.output_dim) for n, t in block.tables.items()}
    copy_.build()
    copy_.set_weights(block.get_weights())
    np.testing.assert_array_equal(np.asarray(copy_(BATCH)), np.asarray(block(BATCH)))


def test_keras_serialization_round_trip(block):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert isinstance(restored, InputBlock)
    restored(BATCH)
    restored.set_weights(block.get_weights())
    np.testing.assert_allclose(np.asarray(restored(BATCH)), EXPECTED, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- ids training never read


def mean_layer():
    layer = CategoricalEmbedding(input_dim=4, output_dim=2, untrained_rows="mean")
    layer.build(None)
    layer.table.embeddings.assign([[1, 10], [3, 30], [8, 80], [100, 1000]])
    return layer


def test_untrained_id_reads_the_mean_of_the_trained_rows():
    layer = mean_layer()
    # before any training step nothing is recorded: every row reads itself
    np.testing.assert_array_equal(np.asarray(layer(np.array([2, 3]))), [[8, 80], [100, 1000]])
    layer(np.array([0, 1, 1]), training=True)  # a training batch reads rows 0 and 1
    np.testing.assert_array_equal(np.asarray(layer.trained_rows), [1, 1, 0, 0])
    # trained rows read themselves; rows 2 and 3 read ([1, 10] + [3, 30]) / 2, the mean unweighted by reads
    np.testing.assert_array_equal(np.asarray(layer(np.array([1, 2, 3, 0]))), [[3, 30], [2, 20], [2, 20], [1, 10]])
    # training reads its own rows, whatever was recorded
    np.testing.assert_array_equal(np.asarray(layer(np.array([3]), training=True)), [[100, 1000]])
    np.testing.assert_array_equal(np.asarray(layer.trained_rows), [1, 1, 0, 1])
    np.testing.assert_allclose(np.asarray(layer(np.array([2]))), [[(1 + 3 + 100) / 3, (10 + 30 + 1000) / 3]])


def test_untrained_ids_in_a_list_and_padding_is_not_a_read():
    layer = mean_layer()
    layer(np.array([[1, -1, -1], [2, -1, -1]]), training=True)  # padding (-1) reads no row, not row 0
    np.testing.assert_array_equal(np.asarray(layer.trained_rows), [0, 1, 1, 0])
    # [0, 3] pool the mean of rows 1 and 2 twice: [5.5, 55]
    np.testing.assert_allclose(np.asarray(layer(np.array([[0, 3, -1], [1, 2, -1]]))), [[5.5, 55], [5.5, 55]])


def test_untrained_rows_inside_a_traced_function_and_round_trip():
    import tensorflow as tf

    layer = mean_layer()
    tf.function(lambda ids: layer(ids, training=True))(tf.constant([0, 2]))
    served = tf.function(lambda ids: layer(ids))
    # rows 0 and 2 trained: 3 reads ([1, 10] + [8, 80]) / 2
    np.testing.assert_array_equal(np.asarray(served(tf.constant([3, 2]))), [[4.5, 45], [8, 80]])
    copy_ = CategoricalEmbedding.from_config(layer.get_config())
    copy_.build(None)
    copy_.set_weights(layer.get_weights())  # the table and the rows read
    np.testing.assert_array_equal(np.asarray(copy_(np.array([3]))), [[4.5, 45]])


def test_untrained_rows_takes_mean_or_none():
    with pytest.raises(ValueError, match=r"untrained_rows must be one of \(None, 'mean'\), got 'zero'"):
        CategoricalEmbedding(4, 2, untrained_rows="zero")
    # named even where no column is tagged user_id, rather than dropped
    no_user_id = copy.deepcopy(SPEC)
    no_user_id["columns"]["user_id"]["tags"] = ["user", "categorical"]
    with pytest.raises(ValueError, match=r"InputBlock: untrained_user_ids must be one of \(None, 'mean'\), got 'avg'"):
        InputBlock(spec_schema(no_user_id), untrained_user_ids="avg")


def test_only_the_user_id_domain_fills_untrained_rows(block):
    assert {n: t.untrained_rows for n, t in block.tables.items()} == {"user_id": "mean", "genre": None, "country": None}
    off = InputBlock(spec_schema(), untrained_user_ids=None)
    assert {t.untrained_rows for t in off.tables.values()} == {None}
    assert InputBlock.from_config(off.get_config()).tables["user_id"].untrained_rows is None


def test_a_block_saved_before_untrained_user_ids_reads_its_own_rows(block):
    from schemaretrieval.layers.encoder import Encoder

    # what a .keras file written before the option holds: no key, and no trained_rows to load
    old = {k: v for k, v in block.get_config().items() if k != "untrained_user_ids"}
    restored = InputBlock.from_config(old)
    restored.build()
    assert restored.tables["user_id"].untrained_rows is None
    assert len(restored.get_weights()) == 3 and len(block.get_weights()) == 4  # three tables (+ trained_rows)
    encoder = {k: v for k, v in Encoder(spec_schema()).get_config().items() if k != "untrained_user_ids"}
    assert Encoder.from_config(encoder).inputs_block.tables["user_id"].untrained_rows is None
