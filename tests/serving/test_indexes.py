"""Top-k indexes: exact results against numpy, exclusion, errors, one interface."""

import faiss  # noqa: F401  (the dev extra installs it: a missing faiss fails here rather than skipping)
import numpy as np
import pytest

from schemaretrieval.serving.indexes import BruteForce, Faiss


def data(n=500, dim=16, q=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype("float32"), rng.normal(size=(q, dim)).astype("float32")


def numpy_topk(queries, candidates, k, exclude=None):
    scores = queries @ candidates.T
    if exclude is not None:
        for row, positions in enumerate(exclude):
            scores[row, list(positions)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


EXACT = [lambda: BruteForce(), lambda: BruteForce(chunk_bytes=1), lambda: Faiss("flat")]


@pytest.mark.parametrize("make", EXACT, ids=["brute", "brute-chunk1", "faiss-flat"])
def test_exact_indexes_match_numpy(make):
    candidates, queries = data()
    ids = np.arange(len(candidates)) * 7 + 3
    scores, found = make().index(candidates, ids).search(queries, k=10)
    want_scores, want_pos = numpy_topk(queries, candidates, 10)
    np.testing.assert_array_equal(found, ids[want_pos])
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert scores.shape == found.shape == (len(queries), 10)


@pytest.mark.parametrize("make", EXACT, ids=["brute", "brute-chunk1", "faiss-flat"])
def test_exclude_removes_ids_per_query_and_still_returns_k(make):
    candidates, queries = data(n=200, q=5)
    ids = np.array([f"item{i}" for i in range(len(candidates))])
    index = make().index(candidates, ids)
    _, plain = index.search(queries, k=10)
    # exclude the top 3 of query 0, nothing for query 1, unknown ids for 2, many for 3
    exclude = [plain[0, :3], [], ["nope", "item-1"], ids[:150], None]
    scores, found = index.search(queries, k=10, exclude=exclude)
    positions = [[int(x[4:]) for x in row if x.startswith("item") and x[4:].isdigit() and int(x[4:]) >= 0]
                 for row in [list(plain[0, :3]), [], [], list(ids[:150]), []]]
    want_scores, want_pos = numpy_topk(queries, candidates, 10, positions)
    np.testing.assert_array_equal(found, ids[want_pos])
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert not set(found[0]) & set(plain[0, :3])
    np.testing.assert_array_equal(found[1], plain[1])


def test_k_larger_than_the_catalog_says_its_size():
    candidates, queries = data(n=30)
    for index in (BruteForce(), Faiss("flat"), Faiss("hnsw")):
        index.index(candidates)
        with pytest.raises(ValueError, match="catalog size 30"):
            index.search(queries, k=31)
        with pytest.raises(ValueError, match="excludes 25 of the catalog's 30 items"):
            index.search(queries[:1], k=10, exclude=[range(25)])


def test_errors_name_the_problem():
    candidates, queries = data(n=20, dim=4)
    with pytest.raises(ValueError, match="before search"):
        BruteForce().search(queries[:, :4], k=1)
    with pytest.raises(ValueError, match="unique"):
        BruteForce().index(candidates, ids=[1] * 20)
    with pytest.raises(ValueError, match=r"ids of shape \(3,\)"):
        BruteForce().index(candidates, ids=[1, 2, 3])
    index = BruteForce().index(candidates)
    with pytest.raises(ValueError, match=r"query_embeddings: expected \[rows, 4\] finite numbers, got shape \(2, 5\)"):
        index.search(np.ones((2, 5)), k=1)
    with pytest.raises(ValueError, match="one per query"):
        index.search(queries[:2, :4], k=1, exclude=[[1]])
    with pytest.raises(ValueError, match="kind"):
        Faiss("lsh")


def test_single_query_vector_is_one_row():
    candidates, queries = data(n=50)
    scores, ids = BruteForce().index(candidates).search(queries[0], k=3)
    assert ids.shape == (1, 3)


@pytest.mark.parametrize("index", [Faiss("hnsw", m=16, ef_search=64), Faiss("ivf", nlist=16, nprobe=8)],
                         ids=["hnsw", "ivf"])
def test_approximate_indexes_recall_against_exact(index):
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(20, 16))
    candidates = (centers[rng.integers(0, 20, 2000)] + 0.3 * rng.normal(size=(2000, 16))).astype("float32")
    queries = (centers[rng.integers(0, 20, 50)] + 0.3 * rng.normal(size=(50, 16))).astype("float32")
    _, exact = BruteForce().index(candidates).search(queries, k=10)
    _, approx = index.index(candidates).search(queries, k=10, exclude=[exact[i, :2] for i in range(50)])
    # excluded ids never come back; recall on the rest of the exact top-10
    assert not any(set(approx[i]) & set(exact[i, :2]) for i in range(50))
    _, approx = index.search(queries, k=10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9, recall


def test_keras_rs_brute_force_retrieval_keeps_ids_as_int32_in_0_4_0():
    # Why the library has its own exact index (schemaretrieval/index.py):
    # keras-rs 0.4.0 stores candidate ids in an int32 variable, so an int64
    # id such as a hashed item id cannot be returned as given.
    from keras_rs.layers import BruteForceRetrieval

    embeddings = np.eye(2, dtype="float32")
    layer = BruteForceRetrieval(k=1, candidate_embeddings=embeddings, candidate_ids=np.array([5, 9]))
    assert layer.candidate_ids.dtype == "int32"
    big = np.array([2**40 + 1, 7], dtype="int64")
    _, ids = BruteForce().index(embeddings, ids=big).search(np.array([[1.0, 0.0]], "float32"), k=1)
    assert ids.dtype == np.int64 and ids.tolist() == [[2**40 + 1]]


@pytest.mark.parametrize("options, message", [
    # was: FAISS aborted the process (m=0), crashed it (m=1) or never returned (m < 0)
    ({"kind": "hnsw", "m": 0}, "Faiss: m must be an integer >= 2, got 0"),
    ({"kind": "hnsw", "m": 1}, "Faiss: m must be an integer >= 2, got 1"),
    ({"kind": "hnsw", "m": -3}, "Faiss: m must be an integer >= 2, got -3"),
    # was: a recall of nan and the widest ef_search; nlist=0 was taken for "choose one"
    ({"kind": "hnsw", "tune_queries": 0}, "Faiss: tune_queries must be an integer >= 1, got 0"),
    ({"kind": "ivf", "nlist": 0}, "Faiss: nlist must be an integer >= 1, got 0"),
    ({"kind": "hnsw", "ef_search": True}, "Faiss: ef_search must be 'auto' or an integer >= 1, got True"),
    ({"kind": "hnsw", "target_recall": "0.9"}, "Faiss: target_recall must be a finite number > 0 and <= 1"),
    # was: ignored without a word
    ({"kind": "flat", "ef_search": 10}, r"Faiss: kind='flat' does not read ef_search \(an exact index has no options\)"),
    ({"kind": "hnsw", "nprobe": 3}, r"Faiss: kind='hnsw' does not read nprobe \(it reads m, ef_construction, ef_search\)"),
    # was: FAISS's RuntimeError from inside its k-means, naming neither option
    ({"kind": "ivf", "nlist": 1000}, r"nlist 1000 cells need at least as many training vectors, got 300 \(candidates\)"),
    ({"kind": "ivf", "nlist": 10, "train_size": 1}, r"nlist 10 cells .* got 1 \(train_size\)"),
    ({"kind": "ivf", "nlist": 8, "nprobe": 9}, "nprobe 9 visits more cells than the index's nlist 8"),
])
def test_faiss_options_are_checked_before_faiss_sees_them(options, message):
    candidates, _ = data(n=300)
    with pytest.raises(ValueError, match=message):
        Faiss(**options).index(candidates)


def test_faiss_takes_numpy_integers_for_its_sizes():
    candidates, _ = data(n=300)
    index = Faiss("ivf", nlist=np.int64(8), nprobe=np.int32(2)).index(candidates)
    assert index.describe()["nlist"] == 8 and index.describe()["nprobe"] == 2


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_faiss_checks_its_tuning_queries_and_norms_past_float32s_distances(kind):
    candidates, queries = data(n=300)
    bad = queries.copy()
    bad[3, 0] = np.nan
    # was: a NaN row shifted the chosen width, all-NaN measured recall 0, none measured NaN, text named nothing
    with pytest.raises(ValueError, match=r"Faiss.index: queries: expected finite numbers; NaN or inf in 1 row\(s\), "
                                         r"e.g. rows \[3\]"):
        Faiss(kind).index(candidates, queries=bad)
    with pytest.raises(ValueError, match=r"Faiss.index: queries must be \[num_queries >= 1, 16\], got none"):
        Faiss(kind).index(candidates, queries=np.zeros((0, 16), np.float32))
    with pytest.raises(ValueError, match=r"Faiss.index: queries: expected \[rows, 16\] finite numbers, got str"):
        Faiss(kind).index(candidates, queries="q")
    # was: every slot -1 / -inf for a query near 1e19, and NaN coordinates for a candidate near 1e20
    index = Faiss(kind).index(candidates, queries=queries)
    with pytest.raises(ValueError, match=rf"Faiss\('{kind}'\).search: query_embeddings: row 1 has a squared norm "
                                         r"of 1.6e\+39, beyond"):
        index.search(np.stack([queries[0], np.full(16, 1e19, np.float32)]), 5)
    big = candidates.copy()
    big[7] = 1e20
    with pytest.raises(ValueError, match=rf"Faiss\('{kind}'\).index: candidate_embeddings: row 7 has a squared norm"):
        Faiss(kind).index(big)
    # the exact kind computes dot products, which stay finite
    assert np.isfinite(Faiss("flat").index(big).search(queries, 5)[0]).all()
