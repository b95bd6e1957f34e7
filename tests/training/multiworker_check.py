"""Run by tests/training/test_multiworker.py: `fit` under
MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1, against one
process on the same global batches.

    multiworker_check.py reference OUT            one process, no strategy
    multiworker_check.py worker INDEX PORTS OUT   worker INDEX of len(PORTS.split(","))

Each run builds the same model (the default optimizer, the item-id start, no dropout), fits it
on the same generated DataFrame (global batch GLOBAL_BATCH, the last one
smaller and split unevenly between the workers) and writes its weights
and loss history to OUT/<reference|worker-INDEX>.npz. A worker sets its own
TF_CONFIG (every process must before TensorFlow starts its server).
"""

import json
import os
import sys

GLOBAL_BATCH = 32
ROWS = 2 * GLOBAL_BATCH + GLOBAL_BATCH // 2 + 1  # 3 steps an epoch: 32, 32, 17 (9 + 8 across the workers)
EPOCHS = 2

role = sys.argv[1] if len(sys.argv) > 1 else ""
if role == "worker" and len(sys.argv) == 5:
    index, ports, out = int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    })
    name = f"worker-{index}"
elif role == "reference" and len(sys.argv) == 3:
    out, name = sys.argv[2], "reference"
else:
    sys.exit("usage: multiworker_check.py reference OUT | worker INDEX PORT,PORT OUT")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import schemaretrieval as sr  # noqa: E402

# Two processes share the machine's cores: one thread each keeps them from starving each other.
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

schema = sr.load_schema("schemas/synthetic.yaml")
frame = sr.data.synthetic(schema, ROWS, seed=0)


def build():
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,), logits_temperature=0.2,
                             query_input_dropout=0.0, item_id_start="svd")
    model.compile()  # the default optimizer: sparse updates, the moving average
    return model


if role == "worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = build()
    replicas = strategy.num_replicas_in_sync
else:
    model = build()
    replicas = 1
history = model.fit(frame, epochs=EPOCHS, batch_size=GLOBAL_BATCH, verbose=0).history
np.savez(os.path.join(out, f"{name}.npz"), replicas=replicas, loss=np.asarray(history["loss"]),
         steps=int(model.optimizer.iterations.numpy()), paths=np.asarray([v.path for v in model.variables]),
         **{f"weight_{i}": np.asarray(v) for i, v in enumerate(model.variables)})
print(f"{name}: {replicas} replicas, loss {history['loss']}")
