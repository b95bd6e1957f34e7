"""The user's training history as a query feature: the table, the pooling
checked by hand, the training-time leave-out, and its place in the model
(fit fills it, tf.data needs it given, save/load keeps it)."""

import keras
import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.layers.history import UserHistory, history_table

from helpers import synthetic_schema


def test_history_table_holds_each_users_distinct_items_padded():
    table = history_table([0, 0, 2, 0, 2], [5, 7, 5, 5, 1], num_users=4, max_length=3)
    np.testing.assert_array_equal(table, [[5, 7, -1], [-1, -1, -1], [1, 5, -1], [-1, -1, -1]])
    assert table.dtype == np.int32


def test_history_table_samples_long_histories_without_repeats():
    items = np.arange(10)
    table = history_table(np.zeros(10), items, num_users=1, max_length=4, seed=3)
    assert len(set(table[0])) == 4 and set(table[0]) <= set(items)
    other = history_table(np.zeros(10), items, num_users=1, max_length=4, seed=4)
    assert set(table[0]) != set(other[0])  # another seed, another sample


def test_history_table_names_bad_ids():
    with pytest.raises(ValueError, match=r"history_table: column 'user_ids': value 2 at row 1 is outside the "
                                         r"schema's domain \[0, 1\]"):
        history_table([0, 2], [1, 1], num_users=2)
    with pytest.raises(ValueError, match=r"history_table: column 'item_ids': value -1 at row 0 is outside ids >= 0"):
        history_table([0, 1], [-1, 1], num_users=2)
    with pytest.raises(ValueError, match=r"history_table: column 'item_ids': expected integer ids, found missing / NaN"):
        history_table([0, 1], [np.nan, 1], num_users=2)
    with pytest.raises(ValueError, match="2 user ids but 1 item ids"):
        history_table([0, 1], [1], num_users=2)
    layer = UserHistory(num_users=2, num_items=3, output_dim=2)
    with pytest.raises(ValueError, match=r"UserHistory: column 'item_id': value 3 at row 0 is outside the "
                                         r"schema's domain \[0, 2\]"):
        layer.set_interactions([0], [3])
    with pytest.raises(ValueError, match="UserHistory: column 'user_id': value -1 at row 0 is outside"):
        layer.set_interactions([-1], [0])
    with pytest.raises(ValueError, match="column 'user_id': expected integer ids, found missing / NaN values"):
        layer.set_interactions([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="column 'item_id': expected integer ids, found 0.5 at row 0"):
        layer.set_interactions([0, 1], [0.5, 1.0])
    # was: "value -9223372036854775808 ... is outside", the float wrapped by the cast to int64
    with pytest.raises(ValueError, match="column 'item_id': expected integer ids, found 1e\\+20 at row 1, beyond int64"):
        layer.set_interactions([0, 1], [1.0, 1e20])
    with pytest.raises(ValueError, match="column 'item_id': expected numbers, found the non-numeric value 'a' at row 0"):
        layer.set_interactions([0], ["a"])
    with pytest.raises(ValueError, match=r"keep_rate must be a finite number > 0 and <= 1, got 0.0"):
        UserHistory(num_users=2, num_items=3, output_dim=2, keep_rate=0.0)


def test_a_history_table_beyond_memory_names_max_length_before_tensorflow_allocates():
    # was: TensorFlow's ResourceExhaustedError naming a shape, once the first call built the table
    with pytest.raises(ValueError, match=r"UserHistory: max_length \(TwoTowerModel's history_max_length\) "
                                         r"1,000,000,000 makes a table of 1,000 users x 1,000,000,000 int32 "
                                         r"\(3,725.3 GiB\), more than this machine's .* GiB of memory"):
        UserHistory(num_users=1000, num_items=10, output_dim=4, max_length=10**9)


def _layer_with_known_embeddings(keep_rate=1.0):
    layer = UserHistory(num_users=3, num_items=4, output_dim=2, keep_rate=keep_rate, seed=0)
    layer.set_interactions(user_ids=[0, 0, 0, 1], item_ids=[0, 1, 3, 2])
    layer.embeddings.assign(np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [3.0, 3.0]], dtype="float32"))
    return layer


def test_a_user_is_the_mean_of_their_items_and_a_user_without_history_is_zeros():
    layer = _layer_with_known_embeddings()
    out = np.asarray(layer({"user_id": np.array([0, 1, 2]), "item_id": np.array([0, 2, 1])}))
    # user 0: (e0 + e1 + e3) / 3; user 1: e2; user 2 has none. Outside training the row's item stays in.
    np.testing.assert_allclose(out, [[4 / 3, 4 / 3], [5.0, 5.0], [0.0, 0.0]], rtol=1e-6)


def test_in_training_each_row_leaves_its_own_item_out():
    layer = _layer_with_known_embeddings(keep_rate=1.0)
    out = np.asarray(layer({"user_id": np.array([0, 0, 1]), "item_id": np.array([3, 0, 2])}, training=True))
    # row 0: (e0 + e1) / 2; row 1: (e1 + e3) / 2; row 2: its only item left out -> zeros
    np.testing.assert_allclose(out, [[0.5, 0.5], [1.5, 2.0], [0.0, 0.0]], rtol=1e-6)


def test_in_training_about_keep_rate_of_the_other_items_are_read():
    layer = UserHistory(num_users=1, num_items=400, output_dim=1, keep_rate=0.25, max_length=400, seed=0)
    layer.set_interactions(np.zeros(400), np.arange(400))
    # embedding i = 1 for the first 200 items, 0 for the rest: the mean is the kept share of the first half
    layer.embeddings.assign((np.arange(400) < 200).astype("float32").reshape(-1, 1))
    means = [float(np.asarray(layer({"user_id": np.array([0])}, training=True))[0, 0]) for _ in range(20)]
    assert all(abs(m - 0.5) < 0.2 for m in means)  # the kept items are a uniform sample
    assert len(set(means)) > 1  # drawn anew at each call
    assert float(np.asarray(layer({"user_id": np.array([0])}))[0, 0]) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def data():
    schema = synthetic_schema()
    interactions = sr.data.synthetic(schema, 4000, seed=0)
    return schema, interactions


def test_user_history_replaces_the_user_id_embedding_with_its_own_defaults(data):
    schema, _ = data
    model = sr.TwoTowerModel(schema, user_history=True)
    tower = model.query_tower
    assert isinstance(tower.history, UserHistory)
    assert "user_id" not in tower.inputs_block.column_names
    assert "user_id" in tower.column_names  # the history is looked up by it
    assert model.output_layer.logits_temperature == pytest.approx(0.1)
    assert tower.blocks[0].rate == pytest.approx(0.25)
    plain = sr.TwoTowerModel(schema)  # the default: no history
    assert plain.query_tower.history is None and "user_id" in plain.query_tower.inputs_block.column_names
    assert plain.output_layer.logits_temperature == pytest.approx(0.2)
    assert plain.query_tower.blocks[0].rate == pytest.approx(0.5)


def test_a_schema_without_a_user_id_needs_user_history_off(data):
    schema, _ = data
    no_id = schema.excluding_by_name(["user_id"])
    with pytest.raises(ValueError, match="user_history=True reads each user's training items by the column "
                                         "tagged user_id, and the schema has none"):
        sr.TwoTowerModel(no_id, user_history=True)
    assert sr.TwoTowerModel(no_id).query_tower.history is None


@pytest.fixture(scope="module")
def fitted(data):
    """A user-history model fit one epoch on the table."""
    schema, interactions = data
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, user_history=True)
    model.compile(optimizer="adam")
    model.set_history(interactions)
    model.fit(interactions, epochs=1, verbose=0)
    return model


def test_set_history_fills_the_table_from_the_interactions(data, fitted):
    schema, interactions = data
    expected = history_table(interactions["user_id"], interactions["item_id"],
                             sr.schema.cardinality(schema["user_id"]), fitted.query_tower.history.max_length)
    np.testing.assert_array_equal(np.asarray(fitted.query_tower.history.items), expected)


def test_fit_needs_the_history_given(data):
    schema, interactions = data
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, user_history=True)
    model.compile(optimizer="adam")
    dataset = sr.data.to_tf_dataset(interactions, schema, 256, shuffle=True, seed=0)
    with pytest.raises(ValueError, match=r"has none; give it first: model.set_history\(train\)"):
        model.fit(dataset, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"set_history \(interactions: user id, item id\) needs column"):
        model.set_history(interactions[["user_id"]])
    model.set_history(interactions)
    losses = model.fit(dataset, epochs=2, verbose=0).history["loss"]
    assert losses[1] < losses[0]


def test_saved_model_keeps_the_history(tmp_path, data, fitted):
    schema, interactions = data
    fitted.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.query_tower.history.has_interactions()
    users = pd.DataFrame({c: interactions[c][:50] for c in fitted.query_tower.column_names})
    np.testing.assert_allclose(loaded.query_embeddings(users), fitted.query_embeddings(users), atol=1e-6)
    assert not sr.TwoTowerModel(schema, user_history=True).query_tower.history.has_interactions()  # before any fit


def test_the_serving_export_looks_the_history_up_by_user_id(tmp_path, data, fitted):
    import tensorflow as tf

    from schemaretrieval import serving
    from schemaretrieval.serving.indexes import BruteForce

    schema, interactions = data
    model = fitted
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    path = serving.export_serving(model, catalog, tmp_path / "export", k=5)
    users = interactions.drop_duplicates("user_id").iloc[:10]
    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        **{name: tf.constant(users[name].to_numpy()) for name in model.query_tower.column_names})
    index = BruteForce().index(model.candidate_embeddings(catalog), catalog.ids)
    scores, ids = index.search(model.query_embeddings(users), 5)
    np.testing.assert_array_equal(served["ids"].numpy(), ids)
    np.testing.assert_allclose(served["scores"].numpy(), scores, rtol=1e-4, atol=1e-5)
