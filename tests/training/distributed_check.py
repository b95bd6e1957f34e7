"""Run by tests/training/test_distributed.py in a fresh process: TensorFlow must see
two logical CPU devices before it initialises.

For each variant named on the command line ("user-id": the user's
features; "user-history": with the history of the user's items), trains one
model on one device and a copy under MirroredStrategy on two logical CPUs,
from the same weights on the same global batches, and prints JSON keyed by
variant: the loss and gradients of the first global batch under both, and
the weights after the steps of `fit`. (One process for all: a process's
start cost each variant about 7 of its 30 s.)

The variant "default-path" (with a compiled RecallAt(10)) compiles with the default
optimizer (sparse updates of the embedding rows, the moving average) and
fits from a parquet path (`sr.training.fit`);
"samplers" fits from the DataFrame with in-batch, cross-batch, uniform and
popularity negatives together. Their JSON has the history and weights.
"""

import json
import os
import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from schemaretrieval.data.validate import to_arrays  # noqa: E402

GLOBAL_BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 64
schema = sr.load_schema(sys.argv[2] if len(sys.argv) > 2 else "schemas/synthetic.yaml")
# variant -> whether the towers read the user's history
USER_HISTORY = {"user-id": False, "user-history": True}
# variant -> what the default optimizer's fit reads: the DataFrame, or it written as
# parquet; "samplers": the DataFrame, with every sampler's negatives in one softmax
TABLE = {"default-path": "path", "samplers": "frame"}
VARIANTS = sys.argv[3:] or ["user-id"]
if set(VARIANTS) - set(USER_HISTORY) - set(TABLE):
    sys.exit(f"distributed_check.py: unknown variant(s) {sorted(set(VARIANTS) - set(USER_HISTORY) - set(TABLE))}; "
             f"expected some of {list(USER_HISTORY) + list(TABLE)}")
# A smaller last batch, split unevenly between the replicas (17 and 16 rows).
frame = sr.data.synthetic(schema, 4 * GLOBAL_BATCH + GLOBAL_BATCH // 2 + 1, seed=0)
arrays = to_arrays(frame, schema)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def samplers(variant):
    """The samplers of a variant: the default (in-batch, the streaming
    frequency estimate), or in-batch beside a memory bank and draws from the
    catalog (uniform, by popularity)."""
    if variant != "samplers":
        return None
    return ["in-batch", sr.CrossBatchSampler(capacity=96), sr.UniformSampler(num_samples=16, seed=1),
            sr.PopularitySampler(num_samples=16, seed=2)]


def build(user_history, optimizer="sgd", variant=None):
    keras.utils.set_random_seed(0)
    # No dropout: its masks are drawn per replica, so they could not match one device's.
    # With the history, every other item is read (keep rate 1) for the same reason.
    history = {"history_keep_rate": 1.0} if user_history else {}
    model = sr.TwoTowerModel(schema, query_units=(16,), candidate_units=(16,), logits_temperature=0.2,
                             query_input_dropout=0.0, user_history=user_history, negative_samplers=samplers(variant),
                             **history)
    # None: the default optimizer (sr.default_optimizer()); "default-path"
    # also compiles a ranking metric, which Keras builds before the first step.
    metrics = [sr.RecallAt(10)] if variant == "default-path" else None
    model.compile(optimizer=keras.optimizers.SGD(0.5) if optimizer == "sgd" else None, metrics=metrics)
    # 16 steps a call on one device; in a strategy's scope one (the multi-step loop fails there)
    assert model.steps_per_execution == (1 if tf.distribute.has_strategy() else 16), model.steps_per_execution
    model.build()
    if user_history:
        model.set_history(frame)
    return model


def dataset():
    return tf.data.Dataset.from_tensor_slices(arrays).batch(GLOBAL_BATCH)


def loss_and_gradients(model, batch):
    with tf.GradientTape() as tape:
        y_pred = model(batch, training=True)
        loss = model.compute_loss(x=batch, y_pred=y_pred, training=True)
    return loss, tape.gradient(loss, model.trainable_variables)


def compare(user_history):
    """The JSON of one variant (see the module's docstring)."""
    single = build(user_history)
    weights = [np.array(v) for v in single.variables]
    first = next(iter(dataset()))
    loss, grads = loss_and_gradients(single, first)
    for v, w in zip(single.variables, weights):  # the estimate moved: put it back
        v.assign(w)

    with strategy.scope():
        mirrored = build(user_history)
    for v, w in zip(mirrored.variables, weights):
        v.assign(w)
    per_replica = strategy.run(
        tf.function(lambda batch: loss_and_gradients(mirrored, batch)),
        args=(next(iter(strategy.experimental_distribute_dataset(dataset()))),),
    )
    m_loss = strategy.reduce("SUM", per_replica[0], axis=None)
    m_grads = [strategy.reduce("SUM", g, axis=None) for g in per_replica[1]]
    for v, w in zip(mirrored.variables, weights):
        v.assign(w)

    single_history = single.fit(dataset(), epochs=2, verbose=0).history
    mirrored_history = mirrored.fit(dataset(), epochs=2, verbose=0).history
    return {
        "replicas": strategy.num_replicas_in_sync,
        "loss": [float(loss), float(m_loss)],
        "gradients": [[np.asarray(tf.convert_to_tensor(g)).tolist() for g in grads],
                      [np.asarray(tf.convert_to_tensor(g)).tolist() for g in m_grads]],
        "history": [single_history["loss"], mirrored_history["loss"]],
        "weights": [[np.asarray(v).tolist() for v in single.variables],
                    [np.asarray(v).tolist() for v in mirrored.variables]],
        "paths": [v.path for v in single.variables],
    }


def compare_table(variant):
    """The JSON of a default-optimizer variant: `model.fit(table)` of the
    default optimizer, built and compiled inside the strategy's scope."""
    table = frame
    if TABLE[variant] == "path":
        table = os.path.join(tempfile.mkdtemp(), "train.parquet")
        frame.to_parquet(table)
    single = build(False, optimizer=None, variant=variant)
    weights = [np.array(v) for v in single.variables]
    with strategy.scope():
        mirrored = build(False, optimizer=None, variant=variant)
    for v, w in zip(mirrored.variables, weights):
        v.assign(w)
    # Two epochs of the same shuffled global batches (the last one split 17/16).
    catalog = sr.data.Catalog.from_interactions(frame, schema)  # what the catalog samplers draw from
    single_history = single.fit(table, epochs=2, batch_size=GLOBAL_BATCH, catalog=catalog, verbose=0).history
    mirrored_history = mirrored.fit(table, epochs=2, batch_size=GLOBAL_BATCH, catalog=catalog, verbose=0).history
    # Per optimizer, the rows of the user-id table that no step updated
    # (its last step still -1): many when the updates were sparse, none
    # when every row moved at every step.
    never_updated = [int(np.sum(np.asarray(v) < 0)) for m in (single, mirrored) for v in m.optimizer.variables
                     if "user_id" in v.path and v.path.endswith("last_step")]
    return {
        "replicas": strategy.num_replicas_in_sync,
        "never_updated_rows": never_updated,
        # whether training moved each trainable weight from where both began
        "moved": [bool(np.any(np.asarray(v) != w)) for v, w in zip(mirrored.variables, weights) if v.trainable],
        "optimizer": [type(single.optimizer).__name__, type(mirrored.optimizer).__name__],
        "steps": [int(single.optimizer.iterations.numpy()), int(mirrored.optimizer.iterations.numpy())],
        "history": [single_history["loss"], mirrored_history["loss"]],
        "recall": [single_history.get("recall_at_10"), mirrored_history.get("recall_at_10")],
        "weights": [[np.asarray(v).tolist() for v in single.variables],
                    [np.asarray(v).tolist() for v in mirrored.variables]],
        "paths": [v.path for v in single.variables],
    }


print(json.dumps({variant: compare_table(variant) if variant in TABLE else compare(USER_HISTORY[variant])
                  for variant in VARIANTS}))
