"""benchmarks/eval_scale.py: its numpy baseline (matmul + argpartition) and the
library's full-catalog evaluation agree hit for hit, ties and exclusions
included, so that the benchmark's equality check means something."""

import importlib.util
from pathlib import Path

import numpy as np

from schemaretrieval.evaluation import evaluate_ranking
from schemaretrieval.retrieval.topk import embedding_scorer

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("eval_scale", ROOT / "benchmarks" / "eval_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numpy_baseline_by_hand():
    script = _script()
    queries = np.array([[1.0], [1.0], [1.0]], np.float32)
    items = np.array([[3.0], [3.0], [2.0], [1.0]], np.float32)  # scores 3, 3, 2, 1 for every query
    targets = np.array([1, 2, 0])
    # query 0: item 1 ties item 0 at 3 -> pessimistic rank 1; query 1: rank 2; query 2: rank 1
    assert script.numpy_recall(queries, items, targets, None, ks=(1, 2)) == {"recall@1": 0.0, "recall@2": 2 / 3}
    # query 0 leaves out item 0 -> rank 0; query 1 leaves out items 0, 1 -> rank 0; query 2 leaves out its target
    exclude = (np.array([0, 1, 3, 4]), np.array([0, 0, 1, 0]))
    assert script.numpy_recall(queries, items, targets, exclude, ks=(1, 2)) == {"recall@1": 2 / 3, "recall@2": 2 / 3}


def test_numpy_baseline_equals_the_library_with_ties_and_exclusions():
    script = _script()
    rng = np.random.default_rng(3)
    # small integers: many tied scores, the target's often among them; each query near its target
    items = rng.integers(-3, 4, (500, 5)).astype(np.float32)
    targets = rng.integers(0, 500, 300)
    queries = items[targets] + rng.integers(-1, 2, (300, 5)).astype(np.float32)
    counts = rng.integers(0, 40, 300)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    positions = rng.integers(0, 500, indptr[-1])  # duplicates and the target itself included
    positions[indptr[:-1][counts > 0][::3]] = targets[counts > 0][::3]
    for exclude in (None, (indptr, positions)):
        ours = evaluate_ranking(embedding_scorer(queries, items), targets, ks=(1, 10, 100), exclude=exclude)
        base = script.numpy_recall(queries, items, targets, exclude, ks=(1, 10, 100))
        for k in (1, 10, 100):
            assert round(ours[f"recall@{k}"] * 300) == round(base[f"recall@{k}"] * 300), (k, exclude is None)
        assert 0 < base["recall@1"] < base["recall@10"] < base["recall@100"] < 1
    scores = queries @ items.T
    assert np.mean(np.sum(scores == scores[np.arange(300), targets][:, None], axis=1) > 1) > 0.3  # ties are common


def test_generated_data_is_exact_and_excludes_other_items_of_the_cluster():
    script = _script()
    query_emb, item_emb, targets, (indptr, positions) = script.generate(5000, 400, 64, seed=1)
    for x in (query_emb, item_emb):
        assert x.dtype == np.float32 and np.array_equal(x, np.rint(x)) and np.abs(x).max() <= 256
    rows = np.repeat(np.arange(400), np.diff(indptr))
    assert not np.any(positions == targets[rows])
    assert np.array_equal(positions % 1000, targets[rows] % 1000)
    assert positions.min() >= 0 and positions.max() < 5000
    ours = evaluate_ranking(embedding_scorer(query_emb, item_emb), targets, ks=(10, 100), exclude=(indptr, positions))
    base = script.numpy_recall(query_emb, item_emb, targets, (indptr, positions))
    assert {k: round(v * 400) for k, v in base.items()} == {k: round(ours[k] * 400) for k in base}
