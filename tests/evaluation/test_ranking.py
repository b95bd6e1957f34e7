import math

import numpy as np
import pytest
import tensorflow as tf

from schemaretrieval.data.exclusions import Exclusions, QueryExclusions
from schemaretrieval.data.exclusions import catalog_positions as item_positions
from schemaretrieval.evaluation import compute_ranks, evaluate_ranking, metrics_from_ranks
from schemaretrieval.retrieval.topk import embedding_scorer


def exclusion_positions(queries, users, items, catalog):
    """The CSR exclusions of each query's user, as evaluation takes them."""
    return Exclusions(np.asarray(users, dtype=object), np.asarray(items, dtype=object)).positions(queries, catalog)

# 3 queries x 5 items. Targets: query 0 -> item 2, query 1 -> item 1, query 2 -> item 0.
SCORES = np.array(
    [
        [0.9, 0.1, 0.5, 0.3, 0.7],  # target 0.5; >= 0.5: 0.9, 0.5, 0.7 -> rank 2
        [0.2, 0.8, 0.4, 0.6, 0.0],  # target 0.8 is the top -> rank 0
        [0.1, 0.2, 0.3, 0.4, 0.5],  # target 0.1 is the bottom -> rank 4
    ],
    dtype=np.float32,
)
TARGETS = np.array([2, 1, 0])


def matrix_fn(scores):
    fn = lambda start, stop: scores[start:stop]  # noqa: E731
    fn.num_candidates = scores.shape[1]
    return fn


def test_hand_worked_metrics():
    m = evaluate_ranking(matrix_fn(SCORES), TARGETS, ks=(1, 2, 3))
    # ranks = [2, 0, 4]
    # k=1: hits [0, 1, 0]
    #   recall = 1/3; ndcg = (1/log2(0+2) = 1)/3 = 1/3; mrr = (1/1)/3 = 1/3
    #   precision = (1 hit / k=1)/3 = 1/3; map = mrr = 1/3
    # k=2: hits [0, 1, 0] (rank 2 is not < 2)
    #   recall = 1/3; ndcg = 1/3; mrr = 1/3; precision = (1/2)/3 = 1/6; map = 1/3
    # k=3: hits [1, 1, 0]
    #   recall = 2/3
    #   ndcg = (1/log2(2+2) + 1/log2(0+2) + 0)/3 = (1/2 + 1)/3 = 1/2
    #   mrr = (1/(2+1) + 1/(0+1) + 0)/3 = (1/3 + 1)/3 = 4/9
    #   precision = (1/3 + 1/3 + 0)/3 = 2/9; map = 4/9
    expected = {
        "recall@1": 1 / 3, "ndcg@1": 1 / 3, "mrr@1": 1 / 3, "precision@1": 1 / 3, "map@1": 1 / 3,
        "recall@2": 1 / 3, "ndcg@2": 1 / 3, "mrr@2": 1 / 3, "precision@2": 1 / 6, "map@2": 1 / 3,
        "recall@3": 2 / 3, "ndcg@3": 1 / 2, "mrr@3": 4 / 9, "precision@3": 2 / 9, "map@3": 4 / 9,
    }  # fmt: skip
    assert m.keys() == expected.keys()
    for name, value in expected.items():
        assert m[name] == pytest.approx(value), name
    assert compute_ranks(matrix_fn(SCORES), TARGETS).tolist() == [2, 0, 4]


def test_tf_tensor_and_float64_scores_give_the_same_result():
    ref = evaluate_ranking(matrix_fn(SCORES), TARGETS, ks=(1, 2, 3))
    as_tf = evaluate_ranking(lambda a, b: tf.constant(SCORES[a:b]), TARGETS, (1, 2, 3), num_candidates=5)
    as_f64 = evaluate_ranking(matrix_fn(SCORES.astype(np.float64)), TARGETS, ks=(1, 2, 3))
    assert as_tf == ref and as_f64 == ref


def test_rank_three_ndcg_value():
    # rank 3 inside k=5: ndcg = 1/log2(3+2) = 1/log2(5), mrr = 1/4, precision = 1/5
    m = metrics_from_ranks([3], ks=(5,))
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(5))
    assert m["mrr@5"] == pytest.approx(0.25) and m["precision@5"] == pytest.approx(0.2)


@pytest.mark.parametrize("ks", [10, "10", [], [2.7], [10, 10], [0, 5], [True], [[10]]])
def test_bad_ks_are_named_before_any_ranking(ks):
    # was: TypeError for 10, 'ks must be positive, got [1, 0]' for "10", [2.7] read as recall@2, {} for []
    message = r"ks must be a non-empty list of distinct ints >= 1 such as \(10, 100\), got "
    with pytest.raises(ValueError, match=message):
        metrics_from_ranks([3], ks=ks)

    def never(a, b):
        raise AssertionError("scored before ks were checked")

    with pytest.raises(ValueError, match=message):
        evaluate_ranking(never, TARGETS, ks=ks, num_candidates=5)


def test_bad_ranks_and_weights_are_named():
    # was: NaN metrics from a NaN weight, and a negative rank counted as a hit
    with pytest.raises(ValueError, match=r"ranks are 0-based \(inf for a miss\); query 1 has -1.0"):
        metrics_from_ranks([0, -1, np.inf], ks=(1,))
    with pytest.raises(ValueError, match=r"query 2 has nan"):
        metrics_from_ranks([0, 1, np.nan], ks=(1,))
    with pytest.raises(ValueError, match=r"sample_weight must be finite; query 1 has inf"):
        metrics_from_ranks([0, 1], ks=(1,), sample_weight=[1.0, np.inf])
    assert metrics_from_ranks([0, np.inf], ks=(1,), sample_weight=[3.0, 1.0])["recall@1"] == 0.75


def test_constant_scores_rank_last():
    # Every score equal: 5 candidates at or above each target -> rank 4 for all queries.
    const = np.zeros((3, 5), np.float32)
    m = evaluate_ranking(matrix_fn(const), TARGETS, ks=(1, 2, 3, 4, 5))
    for k in (1, 2, 3, 4):
        assert m[f"recall@{k}"] == 0.0 and m[f"ndcg@{k}"] == 0.0
    assert m["recall@5"] == 1.0  # every item is in the top 5 of a 5-item catalog
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(6))


def test_partial_ties_are_pessimistic():
    # target 0.5 ties with two other items at 0.5, one item above -> rank 3
    s = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], np.float32)
    assert compute_ranks(matrix_fn(s), [0]).tolist() == [3]


def test_exclusion_by_hand():
    exclude = [
        [0, 4],  # query 0: removes 0.9 and 0.7, both above the target 0.5 -> rank 0
        [1],  # query 1: removes its own target -> miss
        [1, 2, 3, 4],  # query 2: only the target is left -> rank 0
    ]
    ranks = compute_ranks(matrix_fn(SCORES), TARGETS, exclude=exclude)
    assert ranks.tolist() == [0, np.inf, 0]
    m = evaluate_ranking(matrix_fn(SCORES), TARGETS, ks=(1, 5), exclude=exclude)
    # k=1: hits [1, 0, 1] -> recall 2/3, ndcg 2/3, mrr 2/3, precision 2/3
    assert m["recall@1"] == pytest.approx(2 / 3) and m["ndcg@1"] == pytest.approx(2 / 3)
    # the excluded target is a miss even at k=5 = the whole catalog
    assert m["recall@5"] == pytest.approx(2 / 3)


def test_exclusion_formats_and_duplicates_agree():
    as_list = [[0, 4, 4], [1], [3, 1, 2, 4, 3]]
    indptr = np.array([0, 3, 4, 9])
    indices = np.array([0, 4, 4, 1, 3, 1, 2, 4, 3])
    a = compute_ranks(matrix_fn(SCORES), TARGETS, exclude=as_list)
    b = compute_ranks(matrix_fn(SCORES), TARGETS, exclude=(indptr, indices))
    assert a.tolist() == b.tolist() == [0, np.inf, 0]


def test_exclusion_equals_scattering_minus_inf():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, (50, 30)).astype(np.float32)  # many ties
    targets = rng.integers(0, 30, 50)
    exclude = [rng.choice(30, rng.integers(0, 10), replace=False) for _ in range(50)]
    masked = scores.copy()
    for i, row in enumerate(exclude):
        masked[i, row] = -np.inf
    got = compute_ranks(matrix_fn(scores), targets, exclude=exclude, chunk_bytes=7 * 30 * 4)
    want = compute_ranks(matrix_fn(masked), targets)
    target_excluded = np.array([t in row for t, row in zip(targets, exclude)])
    want[target_excluded] = np.inf
    np.testing.assert_array_equal(got, want)


def test_nan_or_minus_inf_target_is_a_miss():
    s = np.array([[np.nan, 1.0, 0.0], [-np.inf, -np.inf, -np.inf]], np.float32)
    assert compute_ranks(matrix_fn(s), [0, 0]).tolist() == [np.inf, np.inf]


def test_sample_weights():
    # ranks [2, 0, 4], weights [1, 2, 1] (sum 4)
    # recall@3 = (1*1 + 2*1 + 1*0)/4 = 3/4
    # mrr@3 = (1*(1/3) + 2*1 + 0)/4 = (7/3)/4 = 7/12
    # recall@1 = (0 + 2*1 + 0)/4 = 1/2
    m = evaluate_ranking(matrix_fn(SCORES), TARGETS, ks=(1, 3), sample_weight=[1, 2, 1])
    assert m["recall@3"] == pytest.approx(3 / 4)
    assert m["mrr@3"] == pytest.approx(7 / 12)
    assert m["recall@1"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError):
        evaluate_ranking(matrix_fn(SCORES), TARGETS, sample_weight=[0, 0, 0])


def brute_force_ranks(scores, targets, exclude=None):
    ranks = []
    for i, t in enumerate(targets):
        row = scores[i].astype(np.float64).copy()
        if exclude is not None:
            if t in set(exclude[i]):
                ranks.append(np.inf)
                continue
            row[list(exclude[i])] = -np.inf
        ranks.append(float((row >= row[t]).sum() - 1))
    return np.array(ranks)


def test_chunking_matches_one_chunk_and_brute_force():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1000, 16)).astype(np.float32)
    c = rng.standard_normal((5000, 16)).astype(np.float32)
    c[100:110] = c[5]  # some exact ties
    targets = rng.integers(0, 5000, 1000)
    targets[:50] = 5
    exclude = [rng.choice(5000, 20, replace=False) for _ in range(1000)]
    fn = embedding_scorer(q, c)
    calls = []

    def counting_fn(start, stop):
        calls.append((start, stop))
        return fn(start, stop)

    counting_fn.num_candidates = 5000
    ks = (1, 5, 10, 50, 100)
    small = 100 * 5000 * 4  # 100 queries per chunk -> 10 chunks
    chunked = evaluate_ranking(counting_fn, targets, ks, exclude, chunk_bytes=small)
    assert len(calls) == 10
    whole = evaluate_ranking(fn, targets, ks, exclude, chunk_bytes=10**12)
    assert chunked == whole
    full = np.asarray(fn(0, 1000))
    want = brute_force_ranks(full, targets, exclude)
    got = compute_ranks(fn, targets, exclude=exclude, chunk_bytes=small)
    np.testing.assert_array_equal(got, want)
    # uneven last chunk
    odd = compute_ranks(fn, targets, exclude=exclude, chunk_bytes=333 * 5000 * 4)
    np.testing.assert_array_equal(odd, want)


def test_embedding_scorer_matches_numpy():
    rng = np.random.default_rng(2)
    q, c = rng.standard_normal((7, 3)), rng.standard_normal((11, 3))
    fn = embedding_scorer(q, c)
    assert fn.num_queries == 7 and fn.num_candidates == 11
    np.testing.assert_allclose(np.asarray(fn(2, 5)), q[2:5] @ c.T, rtol=1e-6)
    with pytest.raises(ValueError):
        embedding_scorer(q, rng.standard_normal((11, 4)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_candidates"):
        compute_ranks(lambda a, b: SCORES[a:b], TARGETS)
    with pytest.raises(ValueError, match="shape"):
        compute_ranks(lambda a, b: SCORES[a:b, :4], TARGETS, num_candidates=5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        compute_ranks(matrix_fn(SCORES), [0, 1, 5])
    with pytest.raises(ValueError, match="rows"):
        compute_ranks(matrix_fn(SCORES), TARGETS, exclude=[[0]])
    # was: "must be a 1-d integer array" for [], the float array NumPy makes of an empty list
    with pytest.raises(ValueError, match="target_positions is empty: there is no query to rank"):
        evaluate_ranking(matrix_fn(SCORES), [], ks=(1,))


def test_item_positions():
    catalog = np.array([10, 20, 30, 40])
    assert item_positions(catalog, [40, 10, 40]).tolist() == [3, 0, 3]
    with pytest.raises(ValueError, match=r"2 of 3 item ids are not in the catalog of 4 items, e\.g\. 99"):
        item_positions(catalog, [99, 10, 98])
    with pytest.raises(ValueError, match="unique"):
        item_positions([1, 2, 1], [1])


def test_exclusion_positions_by_hand():
    catalog = ["a", "b", "c", "d"]
    train_users = ["u1", "u1", "u2", "u1", "u3"]
    train_items = ["c", "a", "d", "c", "zzz"]  # u1 saw c twice; zzz is not in the catalog
    indptr, indices = exclusion_positions(["u2", "u1", "u4", "u1", "u3"], train_users, train_items, catalog)
    rows = [indices[indptr[i] : indptr[i + 1]].tolist() for i in range(5)]
    assert rows == [[3], [0, 2], [], [0, 2], []]


def test_exclusion_positions_matches_loop():
    rng = np.random.default_rng(3)
    catalog = rng.permutation(500) * 7
    keys = rng.integers(0, 300, 5000)
    items = rng.choice(np.concatenate([catalog, [-1, -2]]), 5000)
    queries = rng.integers(0, 320, 2000)
    indptr, indices = exclusion_positions(queries, keys, items, catalog)
    pos = {v: i for i, v in enumerate(catalog)}
    for i, qk in enumerate(queries):
        want = sorted({pos[it] for k, it in zip(keys, items) if k == qk and it in pos})
        assert indices[indptr[i] : indptr[i + 1]].tolist() == want


def test_exclusion_positions_with_no_interactions():
    indptr, indices = exclusion_positions(["u1", "u2"], [], [], ["a", "b"])
    assert indptr.tolist() == [0, 0, 0] and indices.tolist() == []
    # none of the interactions is in the catalog: same
    indptr, indices = exclusion_positions(["u1"], ["u1"], ["zzz"], ["a", "b"])
    assert indptr.tolist() == [0, 0] and indices.tolist() == []
    assert compute_ranks(matrix_fn(SCORES), TARGETS, exclude=(np.zeros(4, int), [])).tolist() == [2, 0, 4]


def test_exclusions_bound_to_queries_are_read_a_chunk_at_a_time(monkeypatch):
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(60, 25)).astype(np.float32)
    targets = rng.integers(0, 25, 60)
    users = rng.integers(0, 12, 60)
    seen = Exclusions(rng.integers(0, 12, 150), rng.integers(0, 25, 150))
    whole = compute_ranks(matrix_fn(scores), targets, exclude=seen.positions(users, np.arange(25)))
    asked = []
    rows = QueryExclusions.rows
    monkeypatch.setattr(QueryExclusions, "rows", lambda self, a, b: asked.append(b - a) or rows(self, a, b))
    chunked = compute_ranks(matrix_fn(scores), targets, exclude=seen.for_queries(users, np.arange(25)),
                            chunk_bytes=8 * 25 * 4)
    np.testing.assert_array_equal(chunked, whole)
    assert np.isinf(whole).any() and sum(asked) == 60 and max(asked) <= 8  # never all 60 queries at once
    with pytest.raises(ValueError, match="exclude has 59 queries for 60 targets"):
        compute_ranks(matrix_fn(scores), targets, exclude=seen.for_queries(users[:59], np.arange(25)))
