import math

import numpy as np
import pandas as pd
import pytest

from schemaretrieval.evaluation import baselines
from schemaretrieval.evaluation.baselines import EASE, Popularity

# 3 users x 4 items (a, b, c, d)
#   u1: a b
#   u2: a   c
#   u3: a b   d
TRAIN = pd.DataFrame(
    {"user": ["u1", "u1", "u2", "u2", "u3", "u3", "u3"], "item": list("abacabd")}
)
TEST = pd.DataFrame({"user": ["u1", "u2", "u3"], "item": ["c", "b", "c"]})
X = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]], dtype=np.float64)


def metrics_by_hand(ranks, k):
    """Reference formulas, written out per query (rank 0-based, None = miss)."""
    hit = [r is not None and r < k for r in ranks]
    n = len(ranks)
    return {
        f"recall@{k}": sum(hit) / n,
        f"ndcg@{k}": sum(1 / math.log2(r + 2) for r, h in zip(ranks, hit) if h) / n,
        f"mrr@{k}": sum(1 / (r + 1) for r, h in zip(ranks, hit) if h) / n,
        f"precision@{k}": sum(hit) / k / n,
        f"map@{k}": sum(1 / (r + 1) for r, h in zip(ranks, hit) if h) / n,
    }


def assert_metrics(got, ranks, ks):
    for k in ks:
        for name, value in metrics_by_hand(ranks, k).items():
            assert got[name] == pytest.approx(value), name


def test_popularity_counts():
    pop = Popularity().fit(TRAIN, None, "item")
    assert pop.item_ids_.tolist() == ["a", "b", "c", "d"]
    assert pop.counts_.tolist() == [3, 2, 1, 1]


def test_popularity_metrics_by_hand():
    pop = Popularity().fit(TRAIN, "user", "item")
    m = pop.evaluate_topk(TEST, ks=(1, 2, 4))
    # scores a=3 b=2 c=1 d=1 for everyone; pessimistic ranks:
    #   u1 -> c (1): a, b, c, d are >= 1 -> rank 3
    #   u2 -> b (2): a, b are >= 2      -> rank 1
    #   u3 -> c (1):                    -> rank 3
    # k=1: no hit, every metric 0
    assert all(m[f"{name}@1"] == 0 for name in ("recall", "ndcg", "mrr", "precision", "map"))
    # k=2: only u2 hits: recall 1/3, ndcg (1/log2(3))/3, mrr (1/2)/3 = 1/6, precision (1/2)/3 = 1/6
    assert m["recall@2"] == pytest.approx(1 / 3)
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3) / 3)
    assert m["mrr@2"] == pytest.approx(1 / 6) and m["precision@2"] == pytest.approx(1 / 6)
    # k=4: all hit: recall 1, mrr (1/4 + 1/2 + 1/4)/3 = 1/3
    assert m["recall@4"] == 1.0 and m["mrr@4"] == pytest.approx(1 / 3)
    assert_metrics(m, [3, 1, 3], (1, 2, 4))


def test_popularity_with_exclusion_by_hand():
    pop = Popularity().fit(TRAIN, "user", "item")
    m = pop.evaluate_topk(TEST, ks=(1, 2), exclude=TRAIN)
    #   u1 minus {a, b}: c (1), d (1) left -> c ties with d -> rank 1
    #   u2 minus {a, c}: b (2), d (1) left -> rank 0
    #   u3 minus {a, b, d}: only c left    -> rank 0
    # k=1: recall 2/3; k=2: recall 1, mrr (1/2 + 1 + 1)/3 = 5/6
    assert m["recall@1"] == pytest.approx(2 / 3)
    assert m["recall@2"] == 1.0 and m["mrr@2"] == pytest.approx(5 / 6)
    assert_metrics(m, [1, 0, 0], (1, 2))


def test_popularity_exclusion_needs_user_column():
    pop = Popularity().fit(TRAIN, None, "item")
    with pytest.raises(ValueError, match="matches rows to users by the column tagged user_id"):
        pop.evaluate_topk(TEST, exclude=TRAIN)


def test_unknown_target_and_extra_candidates():
    pop = Popularity().fit(TRAIN, "user", "item")
    test = pd.DataFrame({"user": ["u1", "u1"], "item": ["a", "zzz"]})
    with pytest.raises(ValueError, match=r"1 of 2 item ids.*zzz"):
        pop.evaluate_topk(test)
    # with an explicit catalog, zzz is a candidate scored 0: a ranks 0, zzz ties with nothing -> 4
    m = pop.evaluate_topk(test, candidate_ids=["a", "b", "c", "d", "zzz"], ks=(1, 5))
    assert_metrics(m, [0, 4], (1, 5))


def ease_b_by_formula(x, l2):
    g = x.T @ x + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = np.empty_like(p)
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            b[i, j] = 0.0 if i == j else -p[i, j] / p[j, j]
    return b


def brute_ranks(scores, targets, exclude=None):
    ranks = []
    for i, t in enumerate(targets):
        allowed = [j for j in range(len(scores[i])) if not (exclude and j in exclude[i])]
        if t not in allowed:
            ranks.append(None)
        else:
            ranks.append(sum(scores[i][j] >= scores[i][t] for j in allowed) - 1)
    return ranks


@pytest.mark.parametrize("l2", [0.5, 10.0])
def test_ease_b_matches_formula(l2):
    ease = EASE(l2=l2).fit(TRAIN, "user", "item")
    want = ease_b_by_formula(X, l2)
    np.testing.assert_allclose(ease.B_, want, rtol=1e-5, atol=1e-7)
    assert np.all(np.diag(ease.B_) == 0)


def test_ease_inverse_by_cholesky_is_the_inverse_across_blocks(monkeypatch, capsys):
    # potrf + potri write one triangle; the other is mirrored a block at a time
    monkeypatch.setattr(baselines, "SYMMETRIZE_BLOCK", 3)
    rng = np.random.default_rng(0)
    x = (rng.random((40, 11)) < 0.3).astype(np.float64)
    ease = EASE(l2=2.0).fit(pd.DataFrame({"user": np.nonzero(x)[0], "item": np.nonzero(x)[1]}), "user", "item")
    np.testing.assert_allclose(ease.B_, ease_b_by_formula(x[:, x.any(axis=0)][x.any(axis=1)], 2.0),
                               rtol=1e-5, atol=1e-7)
    assert capsys.readouterr().err == ""  # a step this short shows no progress


def test_ease_metrics_with_and_without_exclusion():
    ease = EASE(l2=0.5).fit(TRAIN, "user", "item")
    scores = X @ ease_b_by_formula(X, 0.5)  # test users u1, u2, u3 are rows 0, 1, 2 of X
    # scores (a, b, c, d), from the formula with l2 = 0.5:
    #   u1: 0.727 0.615 0.146 0.432  target c is last           -> rank 3
    #   u2: 0.667 0.205 0.537 0.054  target b below a and c     -> rank 2
    #   u3: 0.909 0.872 0.049 0.432  target c is last           -> rank 3
    targets = [2, 1, 2]
    assert brute_ranks(scores, targets) == [3, 2, 3]
    assert_metrics(ease.evaluate_topk(TEST, ks=(1, 2, 3, 4)), [3, 2, 3], (1, 2, 3, 4))
    # excluding training items:
    #   u1 minus {a, b}: c 0.146 < d 0.432 -> rank 1
    #   u2 minus {a, c}: b 0.205 > d 0.054 -> rank 0
    #   u3 minus {a, b, d}: only c          -> rank 0
    seen = [{0, 1}, {0, 2}, {0, 1, 3}]
    assert brute_ranks(scores, targets, seen) == [1, 0, 0]
    m = ease.evaluate_topk(TEST, ks=(1, 2), exclude=TRAIN)
    assert m["recall@1"] == pytest.approx(2 / 3) and m["ndcg@2"] == pytest.approx(
        (1 / math.log2(3) + 1 + 1) / 3
    )
    assert_metrics(m, [1, 0, 0], (1, 2))


def test_ease_sample_weight_column_and_extra_candidate():
    ease = EASE(l2=0.5).fit(TRAIN, "user", "item")
    test = TEST.assign(w=[1.0, 0.0, 3.0])
    # excluded ranks [1, 0, 0] weighted by [1, 0, 3]: recall@1 = (0 + 0 + 3) / 4
    m = ease.evaluate_topk(test, ks=(1,), exclude=TRAIN, sample_weight="w")
    assert m["recall@1"] == pytest.approx(3 / 4)
    # a catalog item unseen in fit scores 0: for u1 (minus a, b) c 0.146 > e 0 -> u1 rank 1 still
    m = ease.evaluate_topk(TEST, ks=(1,), exclude=TRAIN, candidate_ids=list("abcde"))
    assert m["recall@1"] == pytest.approx(2 / 3)


def test_ease_unseen_user_scores_zero_and_misses():
    ease = EASE(l2=1.0).fit(TRAIN, "user", "item")
    test = pd.DataFrame({"user": ["new"], "item": ["a"]})
    # all-zero scores: 4 items tie -> rank 3
    m = ease.evaluate_topk(test, ks=(3, 4))
    assert m["recall@3"] == 0.0 and m["recall@4"] == 1.0


def test_ease_max_items():
    with pytest.raises(ValueError, match="max_items=3"):
        EASE(max_items=3).fit(TRAIN, "user", "item")


def test_recommend():
    ease = EASE(l2=0.5).fit(TRAIN, "user", "item")
    scores = X @ ease_b_by_formula(X, 0.5)
    top, ids = ease.recommend(["u2", "u1"], k=2)  # (scores, ids), as the model
    for row, u in zip(range(2), [1, 0]):
        order = np.argsort(-scores[u], kind="stable")[:2]
        assert ids[row].tolist() == [list("abcd")[j] for j in order]
        np.testing.assert_allclose(top[row], scores[u][order], rtol=1e-5, atol=1e-6)
    top, ids = ease.recommend(["u3"], k=2, exclude=TRAIN)
    assert ids[0].tolist() == ["c", ""] and top[0, 1] == -np.inf  # only c is left: the slot is empty
    pop_scores, pop_ids = Popularity().fit(TRAIN, None, "item").recommend(["x", "y"], k=3)
    assert pop_ids.tolist() == [["a", "b", "c"]] * 2
    assert pop_scores.tolist() == [[3, 2, 1]] * 2


def test_bad_input_to_the_baselines_is_named():
    pop = Popularity().fit(TRAIN, "user", "item")
    test = TRAIN.head(2)
    cases = [
        # was: KeyError: "None of [Index(['x'])] are in the [columns]" / KeyError: 'item' / KeyError: '[None] not in index'
        (lambda: Popularity().fit(TRAIN, "user", "x"), r"train: Popularity.fit needs column \['x'\]; the data has "
                                                        r"columns \['user', 'item'\]"),
        (lambda: EASE().fit(TRAIN, None, "item"), r"train: EASE.fit needs column \[None\]"),
        (lambda: pop.evaluate_topk(test.rename(columns={"item": "x"})), r"data: Popularity.evaluate_topk needs column "
                                                                         r"\['item'\]"),
        (lambda: pop.evaluate_topk(test, sample_weight="w"), r"needs column \['w'\]"),
        # was: accepted, the user column never read until recommend
        (lambda: Popularity().fit(TRAIN, "usr", "item"), r"Popularity.fit needs column \['usr'\]"),
        # was: TypeError: len() of unsized object; Index data must be 1-dimensional
        (lambda: pop.recommend("u1"), r"Popularity.recommend: expected a 1-D list of user ids \(one user: \[id\]\), "
                                      r"got shape \(\)"),
        (lambda: pop.recommend([["u1", "u2"]]), r"got shape \(1, 2\)"),
        # was: "negative dimensions are not allowed"
        (lambda: pop.recommend(["u1", None]), r"Popularity.recommend: 1 missing user ids \(None/NaN\), first at "
                                              r"position 1"),
        # was: [["a", "a"]] and a [1, 0] result
        (lambda: pop.recommend(["u1"], candidate_ids=["a", "a", "b"]), "distinct item ids .* got 3 ids with repeats"),
        (lambda: pop.recommend(["u1"], candidate_ids=[]), r"non-empty 1-D list of distinct item ids .* got shape \(0,\)"),
        # was: capped at the catalog size, where the model's recommend and the export refuse it
        (lambda: pop.recommend(["u1"], k=5), r"Popularity.recommend: k=5 is more than the catalog's 4 items"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="Popularity.evaluate_topk: data must be a DataFrame of test interactions, "
                                        "got dict"):
        pop.evaluate_topk({"user": ["u1"], "item": ["a"]})


def test_ease_checks_its_dense_matrix_against_this_machines_memory(monkeypatch):
    # was: numpy's MemoryError "Unable to allocate 671. GiB" after the matrix was built
    monkeypatch.setattr(baselines, "machine_memory", lambda: 8 * 3 * 3)  # room for 3x3 doubles, not 4x4
    with pytest.raises(ValueError, match=r"EASE: B over 4 items is dense 4x4 .* more than this machine's"):
        EASE(max_items=10**9).fit(TRAIN, "user", "item")
