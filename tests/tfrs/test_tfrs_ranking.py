"""`schemaretrieval.tfrs.tasks.Ranking` gives TFRS 0.7.7's loss and metric
values, one case per argument of the task and its call, against the figures
TFRS computed (tests/tfrs/reference/tfrs_0.7.7.json; regenerate with
``python tests/tfrs/reference/make_reference.py``).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import schemaretrieval.tfrs as tfrs

REFERENCE = json.loads((Path(__file__).parent / "reference" / "tfrs_0.7.7.json").read_text())
INPUTS = {name: np.asarray(value, "float32") for name, value in REFERENCE["ranking_inputs"].items()}
CASES = REFERENCE["ranking"]
GROUPS = ("metrics", "prediction_metrics", "label_metrics", "loss_metrics")
LOSSES = {"mse": lambda: tf.keras.losses.MeanSquaredError()}
METRICS = {
    "rmse": lambda: tf.keras.metrics.RootMeanSquaredError(),
    "auc": lambda: tf.keras.metrics.AUC(),
    "mean": lambda: tf.keras.metrics.Mean(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_and_metrics_match_tfrs(name):
    case = CASES[name]
    kwargs = dict(case["arguments"])
    if "loss" in kwargs:
        kwargs["loss"] = LOSSES[kwargs["loss"]]()
    for group in GROUPS:
        if group in kwargs:
            kwargs[group] = [METRICS[m]() for m in kwargs[group]]
    task = tfrs.tasks.Ranking(**kwargs)
    call = {k: (tf.constant(INPUTS[v]) if isinstance(v, str) else v) for k, v in case["call"].items()}
    np.testing.assert_allclose(float(task(**call)), case["loss"], rtol=2e-6)
    metrics = {f"{group}:{m}": float(metric.result())
               for group in GROUPS for m, metric in zip(case["arguments"].get(group, []), kwargs.get(group, []))}
    assert metrics.keys() == case["metrics"].keys()
    for key, value in case["metrics"].items():
        np.testing.assert_allclose(metrics[key], value, rtol=2e-6, err_msg=key)
    if name == "name":
        assert task.name == case["task_name"] == "my_ranking"


def test_default_loss_is_binary_cross_entropy_by_hand():
    labels, p = INPUTS["clicks"], INPUTS["probabilities"].astype(np.float64)
    by_hand = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    np.testing.assert_allclose(float(tfrs.tasks.Ranking()(labels, p.astype("float32"))), by_hand, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "mse"}, "loss must be a Keras loss"),
    ({"metrics": ["rmse"]}, "metrics must be a list of keras metrics"),
    ({"prediction_metrics": [1]}, "prediction_metrics must be a list of keras metrics"),
    ({"label_metrics": [None]}, "label_metrics must be a list of keras metrics"),
    ({"loss_metrics": ["mean"]}, "loss_metrics must be a list of keras metrics"),
])
def test_bad_arguments_are_errors_naming_them(kwargs, match):
    with pytest.raises(TypeError, match=match):
        tfrs.tasks.Ranking(**kwargs)


def test_ranking_and_retrieval_train_together_in_one_model():
    # TFRS's multitask tutorial: one model, both tasks, a weighted sum of losses.
    users = tf.keras.Sequential([tf.keras.layers.StringLookup(vocabulary=["u0", "u1"], mask_token=None),
                                 tf.keras.layers.Embedding(3, 4)])
    movies = tf.keras.Sequential([tf.keras.layers.StringLookup(vocabulary=["m0", "m1", "m2"], mask_token=None),
                                  tf.keras.layers.Embedding(4, 4)])
    rating_head = tf.keras.Sequential([tf.keras.layers.Dense(1)])

    class Multitask(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.users, self.movies, self.rating_head = users, movies, rating_head
            self.rating_task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError(),
                                                  metrics=[tf.keras.metrics.RootMeanSquaredError()])
            self.retrieval_task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            u, m = self.users(features["user_id"]), self.movies(features["movie_title"])
            predictions = self.rating_head(tf.concat([u, m], axis=1))
            return (0.5 * self.rating_task(features["user_rating"], predictions)
                    + 0.5 * self.retrieval_task(u, m))

    data = tf.data.Dataset.from_tensor_slices({"user_id": ["u0", "u1", "u0"], "movie_title": ["m0", "m2", "m1"],
                                               "user_rating": [[4.0], [2.0], [5.0]]}).batch(3)
    model = Multitask()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = model.fit(data, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "root_mean_squared_error" in history.history
