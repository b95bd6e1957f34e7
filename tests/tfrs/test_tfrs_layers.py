"""`schemaretrieval.tfrs.layers.factorized_top_k`: `BruteForce` and
`Streaming` return TFRS 0.7.7's scores and identifiers (figures TFRS
computed, tests/tfrs/reference/; regenerate with
``python tests/tfrs/reference/make_reference.py``); the approximate `ScaNN`
returns what FAISS's IndexIVFFlat returns with the same partition; all three
export to a SavedModel that TensorFlow alone loads and calls.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import schemaretrieval.tfrs as tfrs

REFERENCE = json.loads((Path(__file__).parent / "reference" / "tfrs_0.7.7.json").read_text())
EXPECTED = REFERENCE["layers"]
QUERY = np.asarray(REFERENCE["inputs"]["query"], "float32")
CATALOG = np.asarray(REFERENCE["inputs"]["catalog"], "float32")
IDS = np.asarray(REFERENCE["inputs"]["catalog_ids"], "int64")
EXCLUSIONS = tf.constant(np.asarray(REFERENCE["inputs"]["exclusions"], "int64"))
BruteForce = tfrs.layers.factorized_top_k.BruteForce
Streaming = tfrs.layers.factorized_top_k.Streaming
ScaNN = tfrs.layers.factorized_top_k.ScaNN


def pairs():
    return tf.data.Dataset.from_tensor_slices((IDS, CATALOG)).batch(3)


def embeddings_only():
    return tf.data.Dataset.from_tensor_slices(CATALOG).batch(3)


def results():
    brute = BruteForce(k=3).index(CATALOG, IDS)
    streaming = Streaming(k=3).index_from_dataset(pairs())
    return {
        "brute_force_index": lambda: brute(QUERY),
        "brute_force_k2": lambda: brute(QUERY, k=2),
        "brute_force_exclusions": lambda: brute.query_with_exclusions(QUERY, EXCLUSIONS),
        "brute_force_exclusions_k2": lambda: brute.query_with_exclusions(QUERY, EXCLUSIONS, k=2),
        "brute_force_no_identifiers": lambda: BruteForce(k=3).index(CATALOG)(QUERY),
        "brute_force_index_from_dataset": lambda: BruteForce(k=3).index_from_dataset(pairs())(QUERY),
        "brute_force_index_from_dataset_embeddings": lambda: BruteForce(k=3).index_from_dataset(embeddings_only())(QUERY),
        "streaming": lambda: streaming(QUERY),
        "streaming_k2": lambda: streaming(QUERY, k=2),
        "streaming_exclusions": lambda: streaming.query_with_exclusions(QUERY, EXCLUSIONS),
        "streaming_no_identifiers": lambda: Streaming(k=3).index_from_dataset(embeddings_only())(QUERY),
    }


def test_every_reference_case_is_checked():
    assert set(results()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_top_k_matches_tfrs(name):
    scores, ids = results()[name]()
    assert ids.numpy().tolist() == EXPECTED[name]["ids"]
    np.testing.assert_allclose(scores.numpy(), EXPECTED[name]["scores"], rtol=1e-6, atol=1e-6)


def test_positions_are_int32_as_in_tfrs():
    assert BruteForce(k=1).index(CATALOG)(QUERY)[1].dtype == tf.int32
    assert Streaming(k=1).index_from_dataset(embeddings_only())(QUERY)[1].dtype == tf.int32


def test_float64_candidates_score_as_float32_ones():
    # NumPy's default dtype; the first query failed with "_MklMatMul ... double tensor" before
    as_float64 = BruteForce(k=3).index(CATALOG.astype("float64"), IDS)(QUERY)
    as_float32 = BruteForce(k=3).index(CATALOG, IDS)(QUERY)
    np.testing.assert_array_equal(as_float64[1].numpy(), as_float32[1].numpy())
    np.testing.assert_allclose(as_float64[0].numpy(), as_float32[0].numpy(), rtol=1e-6)


def test_index_again_replaces_the_catalog_after_a_call():
    index = BruteForce(k=1).index(CATALOG, IDS)
    index(QUERY)
    index.index(CATALOG[:2] * 0 + 1.0, tf.constant(["x", "y"]))
    assert index(QUERY[:1])[1].numpy().tolist() == [[b"x"]]


def test_streaming_without_incomplete_batches_says_how_to_fix_it():
    with pytest.raises(ValueError, match="handle_incomplete_batches=True"):
        Streaming(k=3, handle_incomplete_batches=False).index_from_dataset(pairs())(QUERY)


def test_streaming_names_a_short_batch_in_a_traced_call_and_a_query_of_another_width():
    index = Streaming(k=3, handle_incomplete_batches=False).index_from_dataset(pairs())
    # traced, as fit's metrics call it: TensorFlow's "input must have at least k columns" before
    with pytest.raises(tf.errors.InvalidArgumentError, match="handle_incomplete_batches=True"):
        tf.function(lambda queries: index(queries))(QUERY)
    width = CATALOG.shape[1]
    with pytest.raises(ValueError, match=rf"Streaming: query embeddings of width {width + 1} against candidates of "
                                         rf"width {width}"):  # a MatMul error inside tf.data before
        Streaming(k=3).index_from_dataset(pairs())(np.ones((2, width + 1), "float32"))


def test_streaming_has_no_index_of_a_tensor():
    with pytest.raises(NotImplementedError, match="index_from_dataset"):
        Streaming().index(CATALOG)


@pytest.mark.parametrize("make, match", [
    (lambda: BruteForce(k=0), "BruteForce: k must be an integer >= 1, got 0"),
    (lambda: BruteForce(k=2).index(CATALOG, IDS[:3]), "8 candidates but identifiers of shape"),
    (lambda: BruteForce(k=2).index(CATALOG[0]), r"candidates must be \[num_candidates >= 1, dim\]"),
    (lambda: BruteForce(k=2)(QUERY), "call index"),
    (lambda: BruteForce(k=9).index(CATALOG)(QUERY), "k=9 is more than the 8 candidates"),
    (lambda: Streaming(sorted_order="yes"), "sorted_order must be True or False"),
    (lambda: BruteForce().query_with_exclusions(QUERY, tf.constant([1, 2])), r"exclusions must be \[batch"),
    (lambda: BruteForce().index_from_dataset(tf.data.Dataset.from_tensor_slices((IDS, IDS, CATALOG))),
     "identifiers, embeddings"),
    (lambda: Streaming().index_from_dataset(tf.data.Dataset.from_tensor_slices(CATALOG)), r"call \.batch\(\)"),
    (lambda: ScaNN(distance_measure="cosine"), "distance_measure must be one of"),
    (lambda: ScaNN(num_leaves=4, num_leaves_to_search=5), "num_leaves_to_search"),
    (lambda: ScaNN(training_iterations=0), "ScaNN: training_iterations must be an integer >= 1, got 0"),
    (lambda: ScaNN(dimensions_per_block=0), "ScaNN: dimensions_per_block must be an integer >= 1, got 0"),
    (lambda: ScaNN(num_reordering_candidates=0), "ScaNN: num_reordering_candidates must be an integer >= 1, got 0"),
    (lambda: ScaNN(parallelize_batch_searches=1), "parallelize_batch_searches must be True or False"),
])
def test_bad_arguments_are_errors_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_queries_of_another_width_and_k_with_exclusions_are_named():
    index = BruteForce(k=3).index(CATALOG, IDS)
    # was: "Matrix size-incompatible"
    with pytest.raises(ValueError, match=rf"BruteForce: query embeddings of width {CATALOG.shape[1] + 2} against "
                                         rf"candidates of width {CATALOG.shape[1]}"):
        index(np.ones((2, CATALOG.shape[1] + 2), "float32"))
    # was: "k=12 is more than the 8 candidates" for k=9 and three exclusions; now k itself is checked
    excluded = tf.constant([IDS[:3], IDS[3:6]])
    scores, ids = index.query_with_exclusions(QUERY[:2], excluded, k=len(IDS) - 1)
    assert ids.shape == (2, len(IDS) - 1)
    with pytest.raises(ValueError, match=f"BruteForce: k={len(IDS) + 1} is more than the {len(IDS)} candidates indexed"):
        index.query_with_exclusions(QUERY[:2], excluded, k=len(IDS) + 1)


@pytest.mark.parametrize("layer", [BruteForce, Streaming, ScaNN])
def test_a_query_model_that_cannot_be_called_is_refused_at_construction(layer):
    # was: accepted, then an error from inside Keras at the first call
    with pytest.raises(TypeError, match=f"{layer.__name__}: query_model must be None or a callable from query "
                                        "features to embeddings"):
        layer(query_model="user_model")
    assert layer(query_model=lambda queries: queries).query_model is not None


# --- ScaNN: partitioned, FAISS-trained, searched in TensorFlow ----------------------------------------


def clustered(n, dim=16, clusters=30, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    return (centers[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))).astype("float32")


def test_scann_returns_faiss_ivf_results_for_the_same_partition():
    import faiss

    catalog, queries = clustered(3000), clustered(50, seed=1)
    index = ScaNN(k=10, num_leaves=40, num_leaves_to_search=4).index(catalog)
    scores, ids = index(queries)
    quantizer = faiss.IndexFlatIP(16)
    quantizer.add(index._centroids.numpy())
    ivf = faiss.IndexIVFFlat(quantizer, 16, 40, faiss.METRIC_INNER_PRODUCT)
    ivf.is_trained = True
    ivf.add(catalog)
    ivf.nprobe = 4
    faiss_scores, faiss_ids = ivf.search(queries, 10)
    np.testing.assert_array_equal(ids.numpy(), faiss_ids)
    np.testing.assert_allclose(scores.numpy(), faiss_scores, rtol=1e-5)


def test_scann_is_approximate_and_searching_every_leaf_is_exact():
    catalog, queries = clustered(3000), clustered(200, seed=1)
    exact = BruteForce(k=10).index(catalog)(queries)[1].numpy()
    few = ScaNN(k=10, num_leaves=50, num_leaves_to_search=2).index(catalog)(queries)[1].numpy()
    every = ScaNN(k=10, num_leaves=50, num_leaves_to_search=50).index(catalog)(queries)[1].numpy()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(few, exact)])
    assert 0.5 < recall < 1.0
    np.testing.assert_array_equal(every, exact)
    assert not ScaNN().is_exact()


def test_scann_squared_l2_returns_the_nearest_by_hand():
    catalog, queries = clustered(500), clustered(5, seed=1)
    distances, ids = ScaNN(k=3, distance_measure="squared_l2", num_leaves=10, num_leaves_to_search=10).index(
        catalog, tf.constant([f"c{i}" for i in range(500)]))(queries)
    by_hand = ((queries[:, None, :] - catalog[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(by_hand, axis=1)[:, :3]
    assert ids.numpy().tolist() == [[f"c{i}".encode() for i in row] for row in nearest]
    np.testing.assert_allclose(distances.numpy(), np.take_along_axis(by_hand, nearest, 1), rtol=1e-4)


def test_scann_pads_with_minus_inf_and_a_fill_id_when_its_leaves_hold_fewer_than_k():
    catalog = np.array([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, 0.1]], "float32")
    index = ScaNN(k=3, num_leaves=2, num_leaves_to_search=1).index(catalog, tf.constant([5, 6, 7, 8]))
    scores, ids = index(np.array([[1.0, 0.0]], "float32"))
    assert sorted(ids.numpy()[0].tolist()[:2]) == [5, 6] and ids.numpy()[0, 2] == -1
    assert scores.numpy()[0, 2] == -np.inf


def test_factorized_top_k_over_scann_needs_ids():
    metric = tfrs.metrics.FactorizedTopK(ScaNN(k=3, num_leaves=2, num_leaves_to_search=2).index(CATALOG, IDS), ks=[1, 3])
    with pytest.raises(ValueError, match="true_candidate_ids"):
        metric.update_state(QUERY, CATALOG[:4])
    metric.update_state(QUERY, CATALOG[:4], true_candidate_ids=IDS[:4])
    exact = tfrs.metrics.FactorizedTopK(BruteForce(k=3).index(CATALOG, IDS), ks=[1, 3])
    exact.update_state(QUERY, CATALOG[:4], true_candidate_ids=IDS[:4])
    assert [float(x) for x in metric.result()] == [float(x) for x in exact.result()]  # every leaf searched


# --- SavedModel: TensorFlow alone loads and serves the layers -----------------------------------------

LOAD_WITH_TENSORFLOW_ALONE = """
import json, sys
import tensorflow as tf
queries = tf.constant(json.loads(sys.argv[1]), tf.float32)
exclusions = tf.constant(json.loads(sys.argv[2]), tf.int64)
out = {}
for path in sys.argv[3:]:
    loaded = tf.saved_model.load(path)
    scores, ids = loaded(queries)
    out[path] = {"scores": scores.numpy().tolist(), "ids": ids.numpy().tolist(), "type": type(loaded).__module__,
                 "excluded_ids": loaded.query_with_exclusions(queries, exclusions)[1].numpy().tolist()}
# TensorFlow 2.21 imports keras itself; the library and FAISS must stay out.
out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("schemaretrieval", "faiss"))
print(json.dumps(out))
"""


def test_saved_models_load_and_serve_with_tensorflow_alone(tmp_path):
    layers = {
        "BruteForce": BruteForce(k=3).index(CATALOG, IDS),
        "ScaNN": ScaNN(k=3, num_leaves=4, num_leaves_to_search=2).index(CATALOG, IDS),
    }
    expected = {}
    for name, layer in layers.items():
        expected[str(tmp_path / name)] = (*layer(QUERY), layer.query_with_exclusions(QUERY, EXCLUSIONS)[1])
        tf.saved_model.save(layer, str(tmp_path / name))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITH_TENSORFLOW_ALONE, json.dumps(QUERY.tolist()),
         json.dumps(EXCLUSIONS.numpy().tolist()), *expected],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=True,
    )
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served.pop("modules") == []
    for path, (scores, ids, excluded_ids) in expected.items():
        assert served[path]["type"].startswith("tensorflow."), served[path]["type"]
        assert served[path]["ids"] == ids.numpy().tolist()
        np.testing.assert_allclose(served[path]["scores"], scores.numpy(), rtol=1e-6)
        assert served[path]["excluded_ids"] == excluded_ids.numpy().tolist()


def test_a_layer_never_called_with_a_query_model_exports_no_call(tmp_path):
    # As in TFRS: the first call records the signature the SavedModel serves.
    model = tf.keras.Sequential([tf.keras.layers.StringLookup(vocabulary=["a", "b"], mask_token=None),
                                 tf.keras.layers.Embedding(3, 3)])
    index = BruteForce(model, k=2).index(CATALOG, IDS)
    tf.saved_model.save(index, str(tmp_path / "uncalled"))
    assert not callable(tf.saved_model.load(str(tmp_path / "uncalled")))
    index(tf.constant(["a"]))
    tf.saved_model.save(index, str(tmp_path / "called"))
    loaded = tf.saved_model.load(str(tmp_path / "called"))
    assert loaded(["b", "zzz"])[1].numpy().tolist() == index(tf.constant(["b", "zzz"]))[1].numpy().tolist()
