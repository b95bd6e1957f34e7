"""The item-id table started from the training rows' SVD: `start_item_ids` and `fit`'s first training."""

import keras
import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.training.svd_start import item_id_table, start_item_ids

# `schema`: conftest's, the bundled schemas/synthetic.yaml


@pytest.fixture(scope="module")
def rows(schema):
    return sr.data.synthetic(schema, 3000, seed=0)


def fresh(schema, **kwargs):
    keras.utils.set_random_seed(0)
    return sr.TwoTowerModel(schema, **kwargs)


def test_the_written_columns_are_the_item_side_of_the_matrix_best_rank_k_approximation(schema, rows):
    rows = rows[rows["item_id"] != 5]  # an item no row has
    model = fresh(schema)
    s = start_item_ids(model, rows)
    table = np.asarray(item_id_table(model), dtype=np.float64)
    num_items, k = table.shape  # 3,000 item ids, 72 wide: k is the width
    matrix = np.zeros((sr.schema.cardinality(schema["user_id"]), num_items))
    matrix[rows["user_id"], rows["item_id"]] = 1.0  # repeats count once
    _, full_s, vt = np.linalg.svd(matrix, full_matrices=False)
    np.testing.assert_allclose(s, full_s[:k], rtol=1e-5)  # randomized: within 1e-5 of the exact values
    # V S^0.5 up to each column's sign: its Gram matrix is V S V^T, scaled to a standard deviation of 0.01
    expected = (vt[:k].T * full_s[:k]) @ vt[:k]
    gram = table @ table.T
    np.testing.assert_allclose(gram / gram.max(), expected / expected.max(), atol=1e-3)
    # the written directions keep what the best rank-k approximation keeps of the matrix
    directions = table[:, :k] / np.linalg.norm(table[:, :k], axis=0)
    assert np.linalg.norm(matrix @ directions) ** 2 / (full_s[:k] ** 2).sum() == pytest.approx(1.0, abs=1e-5)
    assert table.std() == pytest.approx(0.01, rel=1e-5)
    # an item no row has starts at zeros
    np.testing.assert_allclose(table[5], 0.0, atol=1e-9)
    # the same rows, the same table; the power and the scale as asked
    again = fresh(schema)
    start_item_ids(again, rows)
    np.testing.assert_array_equal(np.asarray(item_id_table(again)), table.astype(np.float32))
    flat = fresh(schema)
    start_item_ids(flat, rows, scale=0.05, power=0.0)
    flat = np.asarray(item_id_table(flat), dtype=np.float64)
    assert flat.std() == pytest.approx(0.05, rel=1e-5)
    np.testing.assert_allclose(flat @ flat.T / (flat @ flat.T).max(),
                               vt[:k].T @ vt[:k] / (vt[:k].T @ vt[:k]).max(), atol=1e-3)


def test_a_table_wider_than_the_matrix_keeps_the_columns_past_k(schema):
    small = pd.DataFrame({"user_id": [0, 1, 2, 0], "item_id": [3, 4, 5, 4]})
    tiny = schema_with_users(schema, 4)
    model = fresh(tiny)
    model.build()
    before = np.asarray(item_id_table(model)).copy()
    assert len(start_item_ids(model, small)) == 4  # k: the 4 users, not the table's 72 columns
    after = np.asarray(item_id_table(model))
    np.testing.assert_array_equal(after[:, 4:], before[:, 4:])
    assert not np.allclose(after[:, :4], before[:, :4])


def schema_with_users(schema, n):
    d = sr.schema.schema_to_dict(schema)
    d["columns"]["user_id"]["domain"] = {**d["columns"]["user_id"]["domain"], "max": n - 1}
    return sr.schema.schema_from_dict(d)


def test_bad_arguments_and_rows_are_named(schema, rows):
    model = fresh(schema)
    for bad in (0, -1.0, "0.01", True):
        with pytest.raises(ValueError, match=r"scale must be a number > 0, got"):
            start_item_ids(model, rows, scale=bad)
    with pytest.raises(ValueError, match=r"power must be a number in \[0, 1\], got 2"):
        start_item_ids(model, rows, power=2)
    with pytest.raises(ValueError, match=r"<arrays>.*'user_id'"):
        start_item_ids(model, {"item_id": np.array([1])})
    with pytest.raises(ValueError, match=r"<arrays>.*'item_id'.*domain|<arrays>.*'item_id'.*outside"):
        start_item_ids(model, {"user_id": np.array([0]), "item_id": np.array([-5])})
    with pytest.raises(ValueError, match=r"'item_id'.*outside|'item_id'.*domain"):
        start_item_ids(model, pd.DataFrame({"user_id": [0], "item_id": [10_000]}))
    with pytest.raises(ValueError, match=r"user_id"):
        start_item_ids(model, pd.DataFrame({"item_id": [1]}))
    no_user = schema.excluding_by_name(["user_id"])
    with pytest.raises(ValueError, match=r"the schema tags no user_id column"):
        start_item_ids(fresh(no_user), rows)


def test_fit_starts_a_new_model_from_the_svd_and_leaves_a_built_one_alone(schema, rows, capsys):
    expected = fresh(schema)
    start_item_ids(expected, rows)
    model = fresh(schema, item_id_start="svd")
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # steps that move nothing: the start is what is left
    model.fit(rows, epochs=1, batch_size=500, verbose=2)
    assert "the item-id table starts from the SVD of these rows (item_id_start='svd')" in capsys.readouterr().out
    np.testing.assert_allclose(np.asarray(item_id_table(model)), np.asarray(item_id_table(expected)), atol=1e-7)
    # a second fit goes on from the weights; a model built before fit (loaded weights, say) keeps them
    model.fit(rows.iloc[:600], epochs=1, batch_size=500, verbose=0)
    np.testing.assert_allclose(np.asarray(item_id_table(model)), np.asarray(item_id_table(expected)), atol=1e-7)
    built = fresh(schema, item_id_start="svd")
    built.build()
    before = np.asarray(item_id_table(built)).copy()
    built.compile(optimizer=keras.optimizers.SGD(0.0))
    built.fit(rows, epochs=1, batch_size=500, verbose=0)
    np.testing.assert_array_equal(np.asarray(item_id_table(built)), before)


def test_streamed_rows_keep_the_initialiser_and_say_so(tmp_path, schema, rows, capsys):
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path)
    model = fresh(schema, item_id_start="svd")
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(str(path), epochs=1, batch_size=500, streaming=True, verbose=2)
    assert ("the item-id table keeps its initialiser: item_id_start='svd' reads the rows in memory, and these "
            "are streamed") in capsys.readouterr().out
    assert np.asarray(item_id_table(model)).std() == pytest.approx(0.029, abs=0.002)  # Keras's uniform start
