"""Writes tfrs_0.7.7.json: what TensorFlow Recommenders 0.7.7 itself computes
on fixed inputs, for every argument of `tfrs.tasks.Retrieval`, its call, the
`FactorizedTopK` metric, the `BruteForce` and `Streaming` layers, a small
`tfrs.Model` trained for two epochs, and `tfrs.tasks.Ranking`. tests/test_tfrs_*.py compare
`schemaretrieval.tfrs` with these figures.

Run it with the project's python:

    python tests/tfrs/reference/make_reference.py

It re-runs itself in benchmarks/.venvs/tfrs (TensorFlow 2.21, tf-keras 2.21,
tensorflow-recommenders 0.7.7, TF_USE_LEGACY_KERAS=1), which
benchmarks/train_throughput.py makes on first use. Nothing here imports
schemaretrieval: every figure comes from TFRS.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "tfrs_0.7.7.json"


def _rerun_in_tfrs_venv():
    sys.path.insert(0, str(HERE.parents[2] / "benchmarks"))
    from train_throughput import ensure_tfrs_venv

    python = ensure_tfrs_venv()
    if python is None:
        sys.exit("make_reference.py: the TFRS environment could not be made (see above)")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    sys.exit(subprocess.run([str(python), __file__], env=env).returncode)


try:
    import tensorflow_recommenders as tfrs
except ImportError:
    _rerun_in_tfrs_venv()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def inputs():
    """The fixed inputs, rounded to two decimals so that the JSON holds them exactly."""
    rng = np.random.default_rng(7)

    def normal(*shape):
        return np.round(rng.normal(size=shape), 2).astype("float32")

    query = normal(4, 3)
    # Each candidate near its query, so that the top-k metrics are neither all 0 nor all 1.
    candidate = np.round(query + 0.5 * normal(4, 3), 2)
    return {
        "query": query,
        "candidate": candidate,
        "candidate_extra": np.concatenate([candidate, normal(2, 3)]),  # two extra negatives
        "query_heads": np.stack([query, normal(4, 3)], axis=1),  # [4, 2 heads, 3]
        "candidate_ids": np.array([10, 11, 10, 13], "int64"),  # rows 0 and 2 share id 10
        "sample_weight": np.array([1.0, 0.5, 2.0, 0.0], "float32"),
        # 1.5 is above 1: TFRS clips probabilities to [1e-6, 1].
        "candidate_sampling_probability": np.array([0.1, 0.5, 0.2, 1.5], "float32"),
        "score_mask": np.array(
            [[1, 1, 0, 1], [1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 1]], bool
        ),
        # The catalog: the batch's four candidates (ids 10..13) and four more.
        "catalog": np.concatenate([candidate, normal(4, 3)]),
        "catalog_ids": np.arange(10, 18).astype("int64"),
        "exclusions": np.array([[10, 11], [12, 99], [17, 16], [99, 99]], "int64"),
    }


X = inputs()
KS = (1, 2, 3)


class SquaredSoftmaxError(tf.keras.losses.Loss):
    """A user-defined loss: squared error between softmax(logits) and the labels."""

    def call(self, y_true, y_pred):
        return tf.reduce_sum(tf.square(y_true - tf.nn.softmax(y_pred)), axis=-1)


LOSSES = {
    "cce_sum_over_batch_size": lambda: tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE
    ),
    "cce_label_smoothing": lambda: tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction=tf.keras.losses.Reduction.SUM
    ),
    "squared_softmax_error": lambda: SquaredSoftmaxError(),
}

BATCH_METRICS = {
    "categorical_accuracy": lambda: tf.keras.metrics.CategoricalAccuracy(),
    "top_2_categorical_accuracy": lambda: tf.keras.metrics.TopKCategoricalAccuracy(k=2),
    "auc": lambda: tf.keras.metrics.AUC(from_logits=True),
}


def factorized(spec):
    """A FactorizedTopK from a case's description."""
    if spec["candidates"] == "brute_force":
        candidates = tfrs.layers.factorized_top_k.BruteForce(k=max(spec["ks"]))
        candidates.index(tf.constant(X["catalog"]), tf.constant(X["catalog_ids"]))
    else:  # a dataset of (id, embedding) batches of 3: the last batch is short
        candidates = tf.data.Dataset.from_tensor_slices((X["catalog_ids"], X["catalog"])).batch(3)
        if spec["candidates"] == "dataset_embeddings":
            candidates = candidates.map(lambda ids, embeddings: embeddings)
    return tfrs.metrics.FactorizedTopK(candidates=candidates, ks=spec["ks"])


# name -> (Retrieval arguments, call arguments); arrays are named by their key in X.
CASES = {
    "default": ({}, {}),
    "temperature": ({"temperature": 0.5}, {}),
    "sample_weight": ({}, {"sample_weight": "sample_weight"}),
    "candidate_sampling_probability": ({}, {"candidate_sampling_probability": "candidate_sampling_probability"}),
    "remove_accidental_hits": ({"remove_accidental_hits": True}, {"candidate_ids": "candidate_ids"}),
    "remove_accidental_hits_without_ids": ({"remove_accidental_hits": True}, {}),
    "candidate_ids_only": ({}, {"candidate_ids": "candidate_ids"}),
    "num_hard_negatives_1": ({"num_hard_negatives": 1}, {}),
    "num_hard_negatives_2": ({"num_hard_negatives": 2}, {}),
    "num_hard_negatives_10": ({"num_hard_negatives": 10}, {}),
    "num_hard_negatives_0": ({"num_hard_negatives": 0}, {}),
    "num_hard_negatives_minus_1": ({"num_hard_negatives": -1}, {}),
    "loss_cce_sum_over_batch_size": ({"loss": "cce_sum_over_batch_size"}, {}),
    "loss_cce_sum_over_batch_size_weighted": ({"loss": "cce_sum_over_batch_size"}, {"sample_weight": "sample_weight"}),
    "loss_cce_label_smoothing": ({"loss": "cce_label_smoothing"}, {}),
    "loss_squared_softmax_error": ({"loss": "squared_softmax_error"}, {}),
    "loss_squared_softmax_error_weighted": ({"loss": "squared_softmax_error"}, {"sample_weight": "sample_weight"}),
    "extra_negatives": ({}, {"candidate_embeddings": "candidate_extra"}),
    "score_mask": ({}, {"score_mask": "score_mask"}),
    "query_heads": ({}, {"query_embeddings": "query_heads"}),
    "batch_metrics": ({"batch_metrics": list(BATCH_METRICS)}, {}),
    "batch_metrics_weighted": ({"batch_metrics": list(BATCH_METRICS)}, {"sample_weight": "sample_weight"}),
    "compute_batch_metrics_false": (
        {"batch_metrics": list(BATCH_METRICS), "loss_metrics": ["mean"]}, {"compute_batch_metrics": False}
    ),
    "loss_metrics": ({"loss_metrics": ["mean"]}, {}),
    "metrics_brute_force": ({"metrics": [{"candidates": "brute_force", "ks": KS}]}, {}),
    "metrics_id_based": ({"metrics": [{"candidates": "brute_force", "ks": KS}]}, {"candidate_ids": "candidate_ids"}),
    "metrics_dataset": ({"metrics": [{"candidates": "dataset", "ks": KS}]}, {}),
    "metrics_dataset_embeddings": ({"metrics": [{"candidates": "dataset_embeddings", "ks": KS}]}, {}),
    "metrics_weighted": ({"metrics": [{"candidates": "brute_force", "ks": KS}]}, {"sample_weight": "sample_weight"}),
    "metrics_sequence": (
        {"metrics": [{"candidates": "brute_force", "ks": (1,)}, {"candidates": "dataset", "ks": (2, 3)}]}, {}
    ),
    "compute_metrics_false": ({"metrics": [{"candidates": "brute_force", "ks": KS}]}, {"compute_metrics": False}),
    "metrics_extra_negatives": (
        {"metrics": [{"candidates": "brute_force", "ks": KS}]}, {"candidate_embeddings": "candidate_extra"}
    ),
    "name": ({"name": "my_task"}, {}),
    "everything": (
        {
            "temperature": 0.2,
            "num_hard_negatives": 2,
            "remove_accidental_hits": True,
            "batch_metrics": ["categorical_accuracy"],
            "loss_metrics": ["mean"],
            "metrics": [{"candidates": "brute_force", "ks": KS}],
        },
        {
            "sample_weight": "sample_weight",
            "candidate_sampling_probability": "candidate_sampling_probability",
            "candidate_ids": "candidate_ids",
        },
    ),
}


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
    # Keyed by the names CASES gives (Keras numbers repeated metric names: auc_1, auc_2).
    values = {}
    for name, metric in zip(arguments.get("loss_metrics", []), task._loss_metrics):
        values[name] = float(metric.result())
    for name, metric in zip(arguments.get("batch_metrics", []), task._batch_metrics):
        values[name] = float(metric.result())
    for i, metric in enumerate(task.factorized_metrics):
        for inner in metric._top_k_metrics:
            values[f"{i}:{inner.name}"] = float(inner.result())
    return values


def run_case(arguments, call):
    task = task_from(arguments)
    kwargs = {"query_embeddings": X["query"], "candidate_embeddings": X["candidate"]}
    kwargs.update({k: (X[v] if isinstance(v, str) else v) for k, v in call.items()})
    kwargs = {k: (tf.constant(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    try:
        loss = task(**kwargs)
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        return {"error": type(err).__name__, "message": str(err).splitlines()[0]}
    result = {"loss": float(loss), "metrics": metric_values(task, arguments), "task_name": task.name}
    if arguments.get("loss_metrics"):
        # A second call on the reversed batch: the loss metrics average the two losses.
        reversed_kwargs = dict(kwargs, query_embeddings=kwargs["query_embeddings"][::-1])
        result["second_loss"] = float(task(**reversed_kwargs))
        result["metrics_after_second_call"] = metric_values(task, arguments)
    return result


def retrieval_cases():
    return {name: {"arguments": arguments, "call": call, **run_case(arguments, call)}
            for name, (arguments, call) in CASES.items()}


def pair(result):
    scores, ids = result
    ids = ids.numpy()
    return {"scores": scores.numpy().tolist(),
            "ids": [[i.decode() if isinstance(i, bytes) else int(i) for i in row] for row in ids]}


def layer_cases():
    """BruteForce and Streaming on the catalog: index, index_from_dataset, k, exclusions."""
    query, catalog, ids = tf.constant(X["query"]), tf.constant(X["catalog"]), tf.constant(X["catalog_ids"])
    exclusions = tf.constant(X["exclusions"])
    pairs = tf.data.Dataset.from_tensor_slices((ids, catalog)).batch(3)
    embeddings_only = tf.data.Dataset.from_tensor_slices(catalog).batch(3)
    BruteForce, Streaming = tfrs.layers.factorized_top_k.BruteForce, tfrs.layers.factorized_top_k.Streaming
    out = {}
    brute = BruteForce(k=3).index(catalog, ids)
    out["brute_force_index"] = pair(brute(query))
    out["brute_force_k2"] = pair(brute(query, k=2))
    out["brute_force_exclusions"] = pair(brute.query_with_exclusions(query, exclusions))
    out["brute_force_exclusions_k2"] = pair(brute.query_with_exclusions(query, exclusions, k=2))
    out["brute_force_no_identifiers"] = pair(BruteForce(k=3).index(catalog)(query))
    out["brute_force_index_from_dataset"] = pair(BruteForce(k=3).index_from_dataset(pairs)(query))
    out["brute_force_index_from_dataset_embeddings"] = pair(BruteForce(k=3).index_from_dataset(embeddings_only)(query))
    streaming = Streaming(k=3).index_from_dataset(pairs)
    out["streaming"] = pair(streaming(query))
    out["streaming_k2"] = pair(streaming(query, k=2))
    out["streaming_exclusions"] = pair(streaming.query_with_exclusions(query, exclusions))
    out["streaming_no_identifiers"] = pair(Streaming(k=3).index_from_dataset(embeddings_only)(query))
    return out


USERS = np.array([b"u0", b"u1", b"u2", b"u3"])
MOVIES = np.array([b"m0", b"m1", b"m2", b"m3", b"m4", b"m5"])


def tower_weights():
    rng = np.random.default_rng(11)
    # One row more than the vocabulary: StringLookup's out-of-vocabulary index 0.
    return (np.round(rng.normal(size=(len(USERS) + 1, 3)), 2).astype("float32"),
            np.round(rng.normal(size=(len(MOVIES) + 1, 3)), 2).astype("float32"))


def tower(vocabulary, weights):
    return tf.keras.Sequential([
        tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None),
        tf.keras.layers.Embedding(len(vocabulary) + 1, weights.shape[1],
                                  embeddings_initializer=tf.keras.initializers.Constant(weights)),
    ])


RATINGS = {
    # user u0 twice in the second batch of 4
    "repeated_ids": ([b"u0", b"u1", b"u2", b"u3", b"u0", b"u1", b"u2", b"u0"],
                     [b"m0", b"m1", b"m2", b"m3", b"m4", b"m1", b"m5", b"m2"]),
    # no user or movie twice in a batch of 4
    "unique_ids": ([b"u0", b"u1", b"u2", b"u3", b"u0", b"u1", b"u2", b"u3"],
                   [b"m0", b"m1", b"m2", b"m3", b"m4", b"m1", b"m5", b"m2"]),
}
OPTIMIZERS = {"sgd": lambda: tf.keras.optimizers.SGD(0.1), "adagrad": lambda: tf.keras.optimizers.Adagrad(0.1)}
# name -> (optimizer, ratings)
MODEL_CASES = {"sgd": ("sgd", "repeated_ids"), "adagrad": ("adagrad", "repeated_ids"),
               "adagrad_unique_ids": ("adagrad", "unique_ids")}


def ratings(name="repeated_ids"):
    users, movies = RATINGS[name]
    return tf.data.Dataset.from_tensor_slices({"user_id": users, "movie_title": movies})


def fitted(optimizer_name, ratings_name, run_eagerly):
    user_weights, movie_weights = tower_weights()
    user_model, movie_model = tower(USERS, user_weights), tower(MOVIES, movie_weights)
    movies = tf.data.Dataset.from_tensor_slices(MOVIES)
    task = tfrs.tasks.Retrieval(metrics=tfrs.metrics.FactorizedTopK(
        candidates=movies.batch(4).map(movie_model), ks=(1, 2, 3)))

    class MovielensModel(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.user_model, self.movie_model, self.task = user_model, movie_model, task

        def compute_loss(self, features, training=False):
            return self.task(self.user_model(features["user_id"]), self.movie_model(features["movie_title"]))

    model = MovielensModel()
    model.compile(optimizer=OPTIMIZERS[optimizer_name](), run_eagerly=run_eagerly)
    history = model.fit(ratings(ratings_name).batch(4), epochs=2, verbose=0, shuffle=False)
    evaluation = model.evaluate(ratings(ratings_name).batch(5), return_dict=True, verbose=0)
    return model, movies, history, evaluation


def model_cases():
    """The tutorial's model, fitted two epochs, then evaluated; and the serving layer.

    Fitted twice: as a graph (Keras's default) and eagerly. TFRS's top-k
    metrics differ between the two: in the graph, the dataset that maps the
    candidate tower is read after the optimizer's update (nothing orders the
    read before it), so the reported figures score the step's queries
    against the updated catalog; run eagerly they score it against the
    catalog the loss saw. The losses are the same both ways.
    """
    out = {}
    for case_name, (optimizer_name, ratings_name) in MODEL_CASES.items():
        _, _, eager_history, eager_evaluation = fitted(optimizer_name, ratings_name, run_eagerly=True)
        model, movies, history, evaluation = fitted(optimizer_name, ratings_name, run_eagerly=False)
        index = tfrs.layers.factorized_top_k.BruteForce(model.user_model, k=3)
        index.index_from_dataset(tf.data.Dataset.zip((movies.batch(4), movies.batch(4).map(model.movie_model))))
        queries = tf.constant([b"u1", b"u3"])
        # As in the tutorial, the layer is called before it is saved: the
        # call is what gives the SavedModel its signature.
        recommend = pair(index(queries))
        with tempfile.TemporaryDirectory() as tmp:
            tf.saved_model.save(index, os.path.join(tmp, "model"))
            loaded = tf.saved_model.load(os.path.join(tmp, "model"))
            served = pair(loaded(queries))
        out[case_name] = {
            "optimizer": optimizer_name,
            "ratings": ratings_name,
            "history": {k: [float(v) for v in values] for k, values in history.history.items()},
            "history_run_eagerly": {k: [float(v) for v in values] for k, values in eager_history.history.items()},
            "evaluate_run_eagerly": {k: float(v) for k, v in eager_evaluation.items()},
            "evaluate": {k: float(v) for k, v in evaluation.items()},
            "recommend": recommend,
            "recommend_exclusions": pair(index.query_with_exclusions(queries, tf.constant([[b"m2"], [b"m0"]]))),
            "saved_model": served,
        }
    return out


RANKING_INPUTS = {
    "ratings": np.array([[4.0], [2.0], [5.0], [1.0]], "float32"),
    "predictions": np.array([[3.5], [2.5], [4.0], [2.0]], "float32"),
    "clicks": np.array([[1.0], [0.0], [1.0], [0.0]], "float32"),
    "probabilities": np.array([[0.8], [0.3], [0.6], [0.1]], "float32"),
    "sample_weight": np.array([1.0, 0.5, 2.0, 0.0], "float32"),
}
RANKING_LOSSES = {"mse": lambda: tf.keras.losses.MeanSquaredError()}
RANKING_METRICS = {
    "rmse": lambda: tf.keras.metrics.RootMeanSquaredError(),
    "auc": lambda: tf.keras.metrics.AUC(),
    "mean": lambda: tf.keras.metrics.Mean(),
}
# name -> (Ranking arguments, call arguments): labels/predictions name RANKING_INPUTS.
RANKING_CASES = {
    "default_binary_crossentropy": ({}, {"labels": "clicks", "predictions": "probabilities"}),
    "loss_mse_and_rmse": ({"loss": "mse", "metrics": ["rmse"]}, {"labels": "ratings", "predictions": "predictions"}),
    "sample_weight": ({"loss": "mse", "metrics": ["rmse"]},
                      {"labels": "ratings", "predictions": "predictions", "sample_weight": "sample_weight"}),
    "metrics_auc": ({"metrics": ["auc"]}, {"labels": "clicks", "predictions": "probabilities"}),
    "prediction_metrics": ({"prediction_metrics": ["mean"]}, {"labels": "clicks", "predictions": "probabilities"}),
    "label_metrics": ({"label_metrics": ["mean"]},
                      {"labels": "clicks", "predictions": "probabilities", "sample_weight": "sample_weight"}),
    "loss_metrics": ({"loss_metrics": ["mean"]}, {"labels": "clicks", "predictions": "probabilities"}),
    "compute_metrics_false": ({"loss": "mse", "metrics": ["rmse"], "loss_metrics": ["mean"]},
                              {"labels": "ratings", "predictions": "predictions", "compute_metrics": False}),
    "training_true": ({"loss": "mse"}, {"labels": "ratings", "predictions": "predictions", "training": True}),
    "name": ({"name": "my_ranking"}, {"labels": "clicks", "predictions": "probabilities"}),
}


def ranking_cases():
    out = {}
    for name, (arguments, call) in RANKING_CASES.items():
        kwargs = dict(arguments)
        if "loss" in kwargs:
            kwargs["loss"] = RANKING_LOSSES[kwargs["loss"]]()
        groups = ("metrics", "prediction_metrics", "label_metrics", "loss_metrics")
        for group in groups:
            if group in kwargs:
                kwargs[group] = [RANKING_METRICS[m]() for m in kwargs[group]]
        task = tfrs.tasks.Ranking(**kwargs)
        call_kwargs = {k: (tf.constant(RANKING_INPUTS[v]) if isinstance(v, str) else v) for k, v in call.items()}
        loss = float(task(**call_kwargs))
        metrics = {f"{group}:{m}": float(metric.result())
                   for group in groups for m, metric in zip(arguments.get(group, []), kwargs.get(group, []))}
        out[name] = {"arguments": arguments, "call": call, "loss": loss, "metrics": metrics, "task_name": task.name}
    return out


def main():
    import tf_keras

    user_weights, movie_weights = tower_weights()
    reference = {
        "made_by": "tests/tfrs/reference/make_reference.py",
        "versions": {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                     "tensorflow_recommenders": tfrs.__version__},
        "inputs": {k: v.tolist() for k, v in X.items()},
        "ratings": {name: {"user_id": [u.decode() for u in users], "movie_title": [m.decode() for m in movies]}
                    for name, (users, movies) in RATINGS.items()},
        "towers": {"users": [u.decode() for u in USERS], "movies": [m.decode() for m in MOVIES],
                   "user_weights": user_weights.tolist(), "movie_weights": movie_weights.tolist()},
        "retrieval": retrieval_cases(),
        "layers": layer_cases(),
        "model": model_cases(),
        "ranking_inputs": {k: v.tolist() for k, v in RANKING_INPUTS.items()},
        "ranking": ranking_cases(),
    }
    OUT.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
