"""The top-k engine: chunks under one budget, exclusions scored -inf, the same answer eagerly and in a graph."""

import numpy as np
import pytest
import tensorflow as tf

from schemaretrieval.data import Exclusions
from schemaretrieval.retrieval.topk import BlockTopK, dense_exclusions, embedding_scorer, masked_top_k, query_chunks, top_k


def test_masked_top_k_leaves_the_excluded_out_and_marks_what_is_left_empty():
    scores = tf.constant([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    values, positions = masked_top_k(scores, 2, tf.constant([[3, 1], [-1, -1]], tf.int64))
    assert positions.numpy().tolist() == [[2, 0], [0, 1]]
    assert values.numpy().tolist() == [[2.0, 0.0], [3.0, 2.0]]
    values, positions = masked_top_k(scores[:1], 4, tf.constant([[3, 1]], tf.int64))
    assert positions.numpy().tolist() == [[2, 0, -1, -1]] and np.isneginf(values.numpy()[0, 2:]).all()


def test_dense_exclusions_pad_each_querys_positions():
    assert dense_exclusions((np.array([0, 1, 3]), np.array([5, 1, 2])), 1, 2).tolist() == [[1, 2]]
    assert dense_exclusions(None, 0, 3).shape == (3, 0)


@pytest.mark.parametrize("chunk_bytes", [4 * 7, 4 * 7 * 3, 2**20])
def test_top_k_over_chunks_equals_numpy(chunk_bytes):
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((10, 4)).astype("float32"), rng.standard_normal((7, 4)).astype("float32")
    exclude = (np.array([0, 2] + [2] * 9), np.array([0, 6]))  # query 0 excludes items 0 and 6
    scores, positions = top_k(embedding_scorer(q, c), 10, 7, k=3, exclude=exclude, chunk_bytes=chunk_bytes)
    full = q @ c.T
    full[0, [0, 6]] = -np.inf
    want = np.argsort(-full, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(positions, want)
    np.testing.assert_allclose(scores, np.take_along_axis(full, want, axis=1), rtol=1e-5)
    assert len(list(query_chunks(10, 7, chunk_bytes))) == -(-10 // max(1, chunk_bytes // 28))
    # the same exclusions bound to the queries (query i is user i), read a chunk at a time
    bound = Exclusions([0, 0], [0, 6]).for_queries(np.arange(10), np.arange(7))
    bound_scores, bound_positions = top_k(embedding_scorer(q, c), 10, 7, k=3, exclude=bound, chunk_bytes=chunk_bytes)
    np.testing.assert_array_equal(bound_positions, want)
    np.testing.assert_array_equal(bound_scores, scores)


def test_the_graph_blocks_give_the_chunked_answer():
    rng = np.random.default_rng(1)
    q, c = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((9, 3)).astype("float32")
    excluded = np.array([[4, -1], [-1, -1], [0, 8], [-1, -1], [2, 3]])
    module = BlockTopK(c, block=4)
    graph = tf.function(lambda queries, k, ex: module(queries, k, ex))
    values, positions = graph(tf.constant(q), tf.constant(3), tf.constant(excluded, tf.int64))
    indptr = np.array([0, 1, 1, 3, 3, 5])
    flat = np.array([4, 0, 8, 2, 3])
    eager_scores, eager_positions = top_k(embedding_scorer(q, c), 5, 9, k=3, exclude=(indptr, flat))
    np.testing.assert_array_equal(positions.numpy(), eager_positions)
    np.testing.assert_allclose(values.numpy(), eager_scores, rtol=1e-5)
