"""`schemaretrieval.tfrs.tasks.Retrieval` gives TFRS 0.7.7's loss and metric
values: one case per argument of the task and of its call, against the
figures TFRS itself computed on the same inputs.

The figures are in tests/tfrs/reference/tfrs_0.7.7.json; regenerate them with

    python tests/tfrs/reference/make_reference.py

(it runs TFRS 0.7.7 in its own environment, benchmarks/.venvs/tfrs).
Some arguments are also checked against a computation by hand.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import schemaretrieval.tfrs as tfrs

REFERENCE = json.loads((Path(__file__).parent / "reference" / "tfrs_0.7.7.json").read_text())
X = {name: np.asarray(value) for name, value in REFERENCE["inputs"].items()}
DTYPES = {"candidate_ids": "int64", "catalog_ids": "int64", "exclusions": "int64", "score_mask": "bool"}
X = {name: value.astype(DTYPES.get(name, "float32")) for name, value in X.items()}
CASES = REFERENCE["retrieval"]
# float32 sums taken in another order by Keras 3 than by tf-keras.
TOLERANCE = dict(rtol=2e-6, atol=1e-6)


class SquaredSoftmaxError(keras.losses.Loss):
    """The reference's user-defined loss, written for Keras 3 the same way."""

    def call(self, y_true, y_pred):
        return tf.reduce_sum(tf.square(y_true - tf.nn.softmax(y_pred)), axis=-1)


# The reference's losses and metrics, spelt as a Keras 3 user spells them
# (tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE is "sum_over_batch_size").
LOSSES = {
    "cce_sum_over_batch_size": lambda: tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, reduction="sum_over_batch_size"),
    "cce_label_smoothing": lambda: tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction="sum"),
    "squared_softmax_error": lambda: SquaredSoftmaxError(),
}
BATCH_METRICS = {
    "categorical_accuracy": lambda: tf.keras.metrics.CategoricalAccuracy(),
    "top_2_categorical_accuracy": lambda: tf.keras.metrics.TopKCategoricalAccuracy(k=2),
    "auc": lambda: tf.keras.metrics.AUC(from_logits=True),
}


def factorized(spec):
    if spec["candidates"] == "brute_force":
        candidates = tfrs.layers.factorized_top_k.BruteForce(k=max(spec["ks"]))
        candidates.index(tf.constant(X["catalog"]), tf.constant(X["catalog_ids"]))
    else:
        candidates = tf.data.Dataset.from_tensor_slices((X["catalog_ids"], X["catalog"])).batch(3)
        if spec["candidates"] == "dataset_embeddings":
            candidates = candidates.map(lambda ids, embeddings: embeddings)
    return tfrs.metrics.FactorizedTopK(candidates=candidates, ks=spec["ks"])


def task_from(arguments):
    kwargs = dict(arguments)
    if "loss" in kwargs:
        kwargs["loss"] = LOSSES[kwargs["loss"]]()
    if "batch_metrics" in kwargs:
        kwargs["batch_metrics"] = [BATCH_METRICS[name]() for name in kwargs["batch_metrics"]]
    if "loss_metrics" in kwargs:
        kwargs["loss_metrics"] = [tf.keras.metrics.Mean(name="loss_mean") for _ in kwargs["loss_metrics"]]
    if "metrics" in kwargs:
        kwargs["metrics"] = [factorized(spec) for spec in kwargs["metrics"]]
    return tfrs.tasks.Retrieval(**kwargs)


def metric_values(task, arguments):
    values = {}
    for name, metric in zip(arguments.get("loss_metrics", []), task._loss_metrics):
        values[name] = float(metric.result())
    for name, metric in zip(arguments.get("batch_metrics", []), task._batch_metrics):
        values[name] = float(metric.result())
    for i, metric in enumerate(task.factorized_metrics):
        for inner in metric.metrics:
            values[f"{i}:{inner.name}"] = float(inner.result())
    return values


def call_arguments(call):
    kwargs = {"query_embeddings": X["query"], "candidate_embeddings": X["candidate"]}
    kwargs.update({k: (X[v] if isinstance(v, str) else v) for k, v in call.items()})
    return {k: (tf.constant(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}


# Cases where this package departs from TFRS 0.7.7 on purpose (docs/migrating.md).
DEPARTURES = {"num_hard_negatives_0", "num_hard_negatives_minus_1", "remove_accidental_hits_without_ids"}


@pytest.mark.parametrize("name", sorted(set(CASES) - DEPARTURES))
def test_loss_and_metrics_match_tfrs(name):
    case = CASES[name]
    task = task_from(case["arguments"])
    kwargs = call_arguments(case["call"])
    np.testing.assert_allclose(float(task(**kwargs)), case["loss"], **TOLERANCE)
    values = metric_values(task, case["arguments"])
    assert values.keys() == case["metrics"].keys()
    np.testing.assert_allclose([values[k] for k in sorted(values)], [case["metrics"][k] for k in sorted(values)],
                               **TOLERANCE)
    if "second_loss" in case:
        reversed_kwargs = dict(kwargs, query_embeddings=kwargs["query_embeddings"][::-1])
        np.testing.assert_allclose(float(task(**reversed_kwargs)), case["second_loss"], **TOLERANCE)
        after = metric_values(task, case["arguments"])
        np.testing.assert_allclose([after[k] for k in sorted(after)],
                                   [case["metrics_after_second_call"][k] for k in sorted(after)], **TOLERANCE)


def softmax_loss(logits, weights=None):
    """Sum over rows of -log softmax(logits)[i, i], by hand in float64."""
    logits = np.asarray(logits, np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    rows = -log_softmax[np.arange(len(logits)), np.arange(len(logits))]
    return float((rows if weights is None else rows * weights).sum())


def logits():
    return X["query"].astype(np.float64) @ X["candidate"].astype(np.float64).T


def test_default_loss_is_the_summed_in_batch_softmax_by_hand():
    loss = float(tfrs.tasks.Retrieval()(X["query"], X["candidate"]))
    np.testing.assert_allclose(loss, softmax_loss(logits()), rtol=1e-5)


def test_temperature_divides_the_logits_by_hand():
    loss = float(tfrs.tasks.Retrieval(temperature=0.5)(X["query"], X["candidate"]))
    np.testing.assert_allclose(loss, softmax_loss(logits() / 0.5), rtol=1e-5)


def test_sample_weight_weights_each_row_by_hand():
    loss = float(tfrs.tasks.Retrieval()(X["query"], X["candidate"], sample_weight=X["sample_weight"]))
    np.testing.assert_allclose(loss, softmax_loss(logits(), X["sample_weight"]), rtol=1e-5)


def test_candidate_sampling_probability_subtracts_the_clipped_log_by_hand():
    probability = X["candidate_sampling_probability"]
    loss = float(tfrs.tasks.Retrieval()(X["query"], X["candidate"], candidate_sampling_probability=probability))
    expected = softmax_loss(logits() - np.log(np.clip(probability.astype(np.float64), 1e-6, 1.0)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_remove_accidental_hits_drops_same_id_negatives_by_hand():
    ids = X["candidate_ids"]  # rows 0 and 2 share an id: each drops the other's column
    loss = float(tfrs.tasks.Retrieval(remove_accidental_hits=True)(X["query"], X["candidate"], candidate_ids=ids))
    masked = np.where((ids[:, None] == ids[None, :]) & ~np.eye(4, dtype=bool), -np.inf, logits())
    np.testing.assert_allclose(loss, softmax_loss(masked), rtol=1e-5)


def test_num_hard_negatives_keeps_the_hardest_by_hand():
    loss = float(tfrs.tasks.Retrieval(num_hard_negatives=1)(X["query"], X["candidate"]))
    full = logits()
    rows = []
    for i, row in enumerate(full):
        hardest = max(row[j] for j in range(4) if j != i)
        rows.append(-(row[i] - np.log(np.exp(row[i]) + np.exp(hardest))))
    np.testing.assert_allclose(loss, sum(rows), rtol=1e-5)


@pytest.mark.parametrize("name, count", [("num_hard_negatives_0", 0), ("num_hard_negatives_minus_1", -1)])
def test_non_positive_num_hard_negatives_keeps_every_negative_as_documented(name, count):
    # TFRS 0.7.7's documentation: "If larger than batch size or non-positive,
    # all the negative examples are kept." Its code keeps the positive alone
    # and returns 0, which the reference records; this package follows the
    # documentation (docs/migrating.md).
    assert CASES[name]["loss"] == 0.0
    loss = float(tfrs.tasks.Retrieval(num_hard_negatives=count)(X["query"], X["candidate"]))
    np.testing.assert_allclose(loss, CASES["default"]["loss"], **TOLERANCE)


def test_remove_accidental_hits_without_candidate_ids_is_an_error_naming_them():
    assert CASES["remove_accidental_hits_without_ids"]["error"] == "ValueError"
    with pytest.raises(ValueError, match="candidate_ids"):
        tfrs.tasks.Retrieval(remove_accidental_hits=True)(X["query"], X["candidate"])


def test_name_names_the_layer():
    assert tfrs.tasks.Retrieval(name="my_task").name == CASES["name"]["task_name"] == "my_task"


def test_compute_metrics_false_leaves_the_top_k_metrics_untouched_but_not_the_loss_metrics():
    metric = factorized({"candidates": "brute_force", "ks": [1, 2, 3]})
    loss_metric = tf.keras.metrics.Mean()
    task = tfrs.tasks.Retrieval(metrics=metric, loss_metrics=[loss_metric])
    loss = task(X["query"], X["candidate"], compute_metrics=False, compute_batch_metrics=False)
    assert [float(x) for x in metric.result()] == [0.0, 0.0, 0.0]
    assert float(loss_metric.result()) == pytest.approx(float(loss))


def test_factorized_metrics_can_be_replaced_after_a_call():
    task = tfrs.tasks.Retrieval(metrics=factorized({"candidates": "brute_force", "ks": [1]}))
    task(X["query"], X["candidate"])
    replacement = factorized({"candidates": "dataset", "ks": [2, 3]})
    task.factorized_metrics = replacement
    task(X["query"], X["candidate"])
    assert task.factorized_metrics == [replacement]
    expected = CASES["metrics_dataset"]["metrics"]
    assert [float(x) for x in replacement.result()] == pytest.approx(
        [expected["0:factorized_top_k/top_2_categorical_accuracy"], expected["0:factorized_top_k/top_3_categorical_accuracy"]])
    assert replacement.metrics[0] in task.metrics


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
    ({"temperature": float("inf")}, "temperature must be a finite number > 0, got inf"),
    ({"temperature": "hot"}, "temperature"),
    ({"num_hard_negatives": 1.5}, "num_hard_negatives must be None or an int"),
    ({"remove_accidental_hits": "yes"}, "remove_accidental_hits must be True or False"),
])
def test_bad_arguments_are_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfrs.tasks.Retrieval(**kwargs)


def test_arguments_of_other_shapes_are_named_before_tensorflow_sees_them():
    q, c = np.ones((4, 3), "float32"), np.ones((4, 3), "float32")
    task = tfrs.tasks.Retrieval()
    # was: "In[0] ndims must be >= 2", "Incompatible shapes: [4] vs. [7]", "[4,4] vs. [2]"
    for call, match in [
        (lambda: task(q[0], c[0]), r"query_embeddings must be \[batch, dim\] .* got shapes \(3,\) and \(3,\)"),
        (lambda: task(q, c, sample_weight=np.ones(7)), "sample_weight has 7 values for 4 queries; expected one each"),
        (lambda: task(q, c, candidate_sampling_probability=np.full(2, 0.1)),
         "candidate_sampling_probability has 2 values for 4 candidates; expected one each"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    metric = tfrs.metrics.FactorizedTopK(tf.data.Dataset.from_tensor_slices(np.eye(10, 3, dtype="float32")).batch(4),
                                         ks=[1, 5])
    # was: TensorFlow's [Op:Mul], [Op:Equal], "Cast string to int32", [Op:BroadcastTo]
    for kwargs, match in [
        ({"true_candidate_embeddings": c[:2]}, "true_candidate_embeddings has 2 rows for 4 query_embeddings"),
        ({"true_candidate_ids": np.arange(2)}, "true_candidate_ids has 2 rows for 4 query_embeddings"),
        ({"true_candidate_ids": np.array(["a"] * 4)}, "true_candidate_ids are string and the candidates' identifiers "
                                                       "int32; expected ids of one kind"),
        # int64 ids against the positions of bare embeddings: narrowed and compared with positions, silently
        ({"true_candidate_ids": np.arange(4, dtype="int64") + 2**32}, "true_candidate_ids are int64 and the "
                                                                       r"candidates' identifiers int32.*bare embeddings"),
        ({"sample_weight": np.ones(3)}, "sample_weight has 3 rows for 4 query_embeddings"),
        ({"query_embeddings": np.ones((4, 5), "float32")}, "query_embeddings of width 5 and true_candidate_embeddings "
                                                             "of width 3"),
    ]:
        arguments = {"query_embeddings": q, "true_candidate_embeddings": c, **kwargs}
        with pytest.raises(ValueError, match=match):
            metric.update_state(**arguments)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "categorical_crossentropy"}, "loss must be a Keras loss"),
    ({"metrics": [tf.keras.metrics.AUC()]}, "metrics must be a tfrs.metrics.FactorizedTopK"),
    ({"batch_metrics": ["auc"]}, "batch_metrics must be a list of keras metrics"),
    ({"loss_metrics": [lambda x: x]}, "loss_metrics must be a list of keras metrics"),
])
def test_bad_objects_are_type_errors_naming_the_argument(kwargs, match):
    with pytest.raises(TypeError, match=match):
        tfrs.tasks.Retrieval(**kwargs)


@pytest.mark.parametrize("arguments, call", [
    ({}, {}),
    ({"num_hard_negatives": 2, "temperature": 0.5}, {"sample_weight": np.array([1.0, 0.0, 2.0, 0.5], "float32")}),
    ({}, {"candidates": 2}),  # more queries than candidates: rows 2 and 3 have no label (Keras's loss then)
    ({"num_hard_negatives": 1}, {"candidates": 3}),
], ids=["plain", "hard-negatives-weighted", "fewer-candidates", "fewer-candidates-mined"])
def test_the_default_loss_is_kerass_summed_categorical_cross_entropy(arguments, call):
    rng = np.random.default_rng(3)
    queries = tf.constant(rng.normal(size=(4, 3)).astype("float32"))
    candidates = tf.constant(rng.normal(size=(call.pop("candidates", 4), 3)).astype("float32"))
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")

    def value_and_gradients(task):
        with tf.GradientTape() as tape:
            tape.watch([queries, candidates])
            loss = task(queries, candidates, **call)
        return [loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [queries, candidates])]

    ours = value_and_gradients(tfrs.tasks.Retrieval(**arguments))
    theirs = value_and_gradients(tfrs.tasks.Retrieval(loss=keras_loss, **arguments))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_factorized_top_k_takes_ks_as_any_sequence_of_ints():
    # TFRS types ks as a Sequence: a range and an array were refused as "not a list" before
    candidates = tf.data.Dataset.from_tensor_slices(np.eye(5, 3, dtype="float32")).batch(2)
    queries = np.eye(4, 3, dtype="float32")
    results = []
    for ks in ((1, 2, 3), range(1, 4), np.array([1, 2, 3])):
        metric = tfrs.metrics.FactorizedTopK(candidates, ks=ks)
        metric.update_state(queries, queries)
        results.append([float(value) for value in metric.result()])
    assert results[0] == results[1] == results[2]
