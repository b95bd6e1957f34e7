"""schemaretrieval beside TFRS, keras-rs and Merlin Models: training
throughput and full-catalog recall@10/@100 on the same data, in one run.

What is compared
    Every peer trains the TFRS basic-retrieval tutorial's model: a user-id
    tower and an item-id tower, each one embedding of dim 32 (no MLP),
    in-batch softmax, the loss summed over the batch (TFRS's reduction),
    Adagrad(0.1), batch 8192, --epochs epochs (default 3, the tutorial's).
    schemaretrieval runs that model too (TwoTowerModelV2 with id encoders),
    and, as a last row, its own defaults: ``TwoTowerModel(schema)`` on every
    feature of the schema (Adam 1e-3 ending on the average of the weights,
    batch 128, 12 epochs; docs/experiments/movielens-100k-search.md).
    A "most popular" row gives the floor a model has to clear.

    peers: tensorflow-recommenders 0.7.7 (tf-keras, TF_USE_LEGACY_KERAS=1,
    the venv of benchmarks/train_throughput.py in benchmarks/.venvs/tfrs),
    keras-rs 0.4.0 on Keras 3 (this venv), Merlin Models 23.12 (TensorFlow
    2.12 in its own venv, benchmarks/.venvs/merlin, made on first use; if it
    cannot be made the row says why and the rest runs).

Same data, same metric
    The parent makes the data once: the generated MovieLens-100K-shaped
    preset (``sr.data.movielens_like``, 943 users, 1682 items, 100k ratings)
    or, with ``--movielens DIR``, GroupLens's ml-100k folder (read with
    ``sr.datasets.movielens``), split at random 80/20, every rating an
    implicit positive. Each system trains in its own subprocess on the same
    arrays through the same tf.data pipeline (shuffled every epoch, batched,
    prefetched) and writes its trained user (query) and item (candidate)
    embeddings as .npy; the parent ranks all items for every test rating
    with ``schemaretrieval.evaluation`` alike for everyone, with and without
    each user's training items excluded ("excl").

    examples/s: training rows per second over epochs 2..N (the first epoch
    traces and compiles; with one epoch, over it). Timings on a shared
    machine drift between runs: compare rows of one run.

Run
    python benchmarks/peers.py [--epochs 3] [--movielens ~/data/ml-100k]
        [--skip-tfrs] [--skip-merlin] [--skip-keras-rs] [--out runs/peers]

--out writes peers.json (every number and the environment) and
recall_at_k.png (recall@k against k, one line per system, with and without
seen items excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MERLIN_VENV = HERE / ".venvs" / "merlin"
# The set that installs and imports together with Python 3.11 (Merlin Models
# 23.12 needs TensorFlow < 2.13; merlin-core/dataloader stop at 23.8 on
# PyPI; TF 2.12 wants numpy < 1.24 and protobuf < 4 for tensorflow-metadata;
# merlin-core 23.8 imports with the dask of the project's constraints.txt,
# not with the pandas-2-only dask pip picks by itself).
MERLIN_REQUIREMENTS = [
    "tensorflow==2.12.1",
    "merlin-models==23.12.0",
    "numpy==1.23.5",
    "pandas==1.5.3",
    "protobuf==3.20.3",
    "dask==2023.7.1",
    "distributed==2023.7.1",
    "dask-cuda==23.8.0",
    "pyarrow==17.0.0",
]

EMBEDDING_DIM = 32
LEARNING_RATE = 0.1
BATCH_SIZE = 8192
CURVE_KS = tuple(range(1, 101))
TABLE_KS = (10, 100)

# (worker, system, config) in the order they run.
SYSTEMS = [
    ("ours-tutorial", "schemaretrieval", "tutorial config (TwoTowerModelV2, id towers)"),
    ("tfrs", "TFRS 0.7.7", "tutorial config (tfrs.Model + tasks.Retrieval)"),
    ("keras-rs", "keras-rs 0.4.0", "tutorial config (basic retrieval example)"),
    ("merlin", "Merlin Models 23.12", "tutorial config (mm.TwoTowerModelV2)"),
    ("ours-defaults", "schemaretrieval", "TwoTowerModel(schema) defaults, all features"),
]


# --- data (parent) ---------------------------------------------------------------


def _age_bucket(ages):
    """ML-1M's age buckets (the preset's user_age_bucket) of ml-100k's ages."""
    return np.searchsorted(np.array([18, 25, 35, 45, 50, 56]), np.asarray(ages), side="right").astype("int64")


def encode_movielens(raw):
    """ml-100k as sr.datasets.movielens reads it -> the preset's columns and schema
    (contiguous ids from 0, demographics, genres and year as ids)."""
    import pandas as pd

    from schemaretrieval.data.movielens_like import GENRES, OCCUPATIONS, movielens_like_schema

    frame = pd.DataFrame()
    users, user_index = pd.factorize(raw["user_id"], sort=True)
    items, item_index = pd.factorize(raw["item_id"], sort=True)
    frame["user_id"] = users.astype("int64")
    frame["user_age_bucket"] = _age_bucket(raw["user_age"])
    frame["user_gender"] = (raw["user_gender"].str.upper() == "F").astype("int64")
    occupation = {name: i for i, name in enumerate(OCCUPATIONS)}
    frame["user_occupation"] = raw["user_occupation"].str.lower().map(occupation).fillna(occupation["other"]).astype("int64")
    frame["item_id"] = items.astype("int64")
    genre = {name: i for i, name in enumerate(GENRES)}
    frame["item_genres"] = [np.array(sorted(genre[g] for g in gs if g in genre) or [0], "int64") for gs in raw["item_genres"]]
    year = raw["item_year"].fillna(raw["item_year"].median())
    frame["item_year"] = year.astype("int64")
    frame["rating"] = raw["rating"].astype("float32")
    return frame, movielens_like_schema(len(user_index), len(item_index))


def make_data(args):
    """(train, test, users, catalog, description): the one split every system sees."""
    import schemaretrieval as sr

    if args.movielens:
        frame, schema = encode_movielens(sr.datasets.movielens(args.movielens, "ml-100k"))
        source = f"GroupLens ml-100k ({args.movielens})"
    else:
        frame, schema = sr.data.movielens_like(seed=args.seed)
        source = f"sr.data.movielens_like(seed={args.seed})"
    train, test = sr.data.random_split(frame, 0.2, seed=args.seed)
    catalog = sr.data.Catalog.from_interactions(frame, schema)
    users = frame.drop_duplicates("user_id").sort_values("user_id")
    users = users[["user_id", "user_age_bucket", "user_gender", "user_occupation"]].reset_index(drop=True)
    num_users, num_items = len(users), len(catalog)
    assert (users["user_id"].to_numpy() == np.arange(num_users)).all()
    assert (catalog.ids == np.arange(num_items)).all()
    return train, test, users, catalog, schema, source


def write_payload(directory: Path, train, test, users, catalog, schema) -> None:
    """ids.npz for every worker (any numpy reads it); tables.pkl for ours-defaults."""
    np.savez(
        directory / "ids.npz",
        user_id=train["user_id"].to_numpy("int64"),
        item_id=train["item_id"].to_numpy("int64"),
        num_users=len(users),
        num_items=len(catalog),
    )
    from schemaretrieval.schema import schema_to_dict

    with open(directory / "tables.pkl", "wb") as f:
        pickle.dump({"train": train, "users": users, "catalog": catalog.frame, "schema": schema_to_dict(schema)}, f)


# --- workers (each in its own subprocess and venv) ----------------------------------


def id_dataset(data_dir: str, batch_size: int, seed: int):
    """The tutorial's input for every peer: shuffled every epoch, batched, prefetched."""
    import tensorflow as tf

    arrays = np.load(Path(data_dir) / "ids.npz")
    features = {"user_id": arrays["user_id"], "item_id": arrays["item_id"]}
    dataset = (
        tf.data.Dataset.from_tensor_slices(features)
        .shuffle(len(arrays["user_id"]), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, int(arrays["num_users"]), int(arrays["num_items"]), len(arrays["user_id"])


def epoch_timer(keras_module):
    """A callback recording each epoch's wall time and loss."""

    class EpochTimer(keras_module.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.loss = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)
            self.loss.append(float((logs or {}).get("loss", float("nan"))))

    return EpochTimer()


def worker_ours_tutorial(args):
    import keras
    from merlin.schema import ColumnSchema, Schema, Tags

    from schemaretrieval.layers import Encoder
    from schemaretrieval.models import TwoTowerModelV2
    from schemaretrieval.retrieval.outputs import ContrastiveOutput

    keras.utils.set_random_seed(args.seed)
    dataset, num_users, num_items, _ = id_dataset(args.data, args.batch_size, args.seed)

    def id_column(name, tag, cardinality):
        return ColumnSchema(
            name, tags=[tag, Tags.CATEGORICAL], dtype="int64",
            properties={"domain": {"min": 0, "max": cardinality - 1}, "embedding_dim": EMBEDDING_DIM},
        )

    query = Encoder(Schema([id_column("user_id", Tags.USER_ID, num_users)]))
    candidate = Encoder(Schema([id_column("item_id", Tags.ITEM_ID, num_items)]))
    model = TwoTowerModelV2(query, candidate,  # as TFRS: summed, no false negatives downscored
                            outputs=ContrastiveOutput(loss_reduction="sum", downscore_false_negatives=False))
    model.compile(optimizer=keras.optimizers.Adagrad(LEARNING_RATE))
    timer = epoch_timer(keras)
    model.fit(dataset, epochs=args.epochs, callbacks=[timer], verbose=0)
    users = model.query_embeddings({"user_id": np.arange(num_users)})
    items = model.candidate_embeddings({"item_id": np.arange(num_items)})
    return users, items, timer, {"keras": keras.__version__}


def worker_ours_defaults(args):
    import keras

    import schemaretrieval as sr
    from schemaretrieval.models.defaults import DEFAULT_BATCH_SIZE
    from schemaretrieval.schema import schema_from_dict

    with open(Path(args.data) / "tables.pkl", "rb") as f:
        tables = pickle.load(f)
    keras.utils.set_random_seed(args.seed)
    model = sr.TwoTowerModel(schema_from_dict(tables["schema"]))
    model.compile()  # the measured optimizer, sr.default_optimizer()
    timer = epoch_timer(keras)
    model.fit(tables["train"], epochs=args.epochs, batch_size=DEFAULT_BATCH_SIZE, seed=args.seed,
              callbacks=[timer], verbose=0)
    users = model.query_embeddings(tables["users"])
    items = model.candidate_embeddings(tables["catalog"])
    return users, items, timer, {"keras": keras.__version__, "batch_size": DEFAULT_BATCH_SIZE,
                                 "optimizer": type(model.optimizer).__name__ + "(1e-3)"}


def worker_tfrs(args):
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(args.seed)
    dataset, num_users, num_items, _ = id_dataset(args.data, args.batch_size, args.seed)

    class BasicRetrieval(tfrs.Model):
        """The tutorial's MovielensModel, ids embedded directly (no StringLookup)."""

        def __init__(self):
            super().__init__()
            self.user_model = tf.keras.layers.Embedding(num_users, EMBEDDING_DIM)
            self.movie_model = tf.keras.layers.Embedding(num_items, EMBEDDING_DIM)
            # Metrics are computed by the parent, on the exported embeddings.
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            return self.task(self.user_model(features["user_id"]), self.movie_model(features["item_id"]))

    model = BasicRetrieval()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=LEARNING_RATE))
    timer = epoch_timer(tf.keras)
    model.fit(dataset, epochs=args.epochs, callbacks=[timer], verbose=0)
    users = model.user_model(tf.range(num_users)).numpy()
    items = model.movie_model(tf.range(num_items)).numpy()
    return users, items, timer, {"tfrs": tfrs.__version__, "tensorflow": tf.__version__}


def worker_keras_rs(args):
    import keras
    import keras_rs
    from keras import ops

    keras.utils.set_random_seed(args.seed)
    dataset, num_users, num_items, _ = id_dataset(args.data, args.batch_size, args.seed)

    class RetrievalModel(keras.Model):
        """keras-rs's basic retrieval example: two embeddings, a brute-force
        retrieval layer for inference; trained with the in-batch softmax."""

        def __init__(self):
            super().__init__()
            self.user_embedding = keras.layers.Embedding(num_users, EMBEDDING_DIM)
            self.candidate_embedding = keras.layers.Embedding(num_items, EMBEDDING_DIM)
            self.retrieval = keras_rs.layers.BruteForceRetrieval(k=min(10, num_items), return_scores=False)
            self.loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")

        def build(self, input_shape):
            self.user_embedding.build(input_shape)
            self.candidate_embedding.build(input_shape)
            super().build(input_shape)

        def call(self, inputs, training=False):
            user_embeddings = self.user_embedding(inputs["user_id"])
            result = {"user_embeddings": user_embeddings}
            if not training:
                result["predictions"] = self.retrieval(user_embeddings)
            return result

        def compute_loss(self, x, y=None, y_pred=None, sample_weight=None, training=True):
            candidates = self.candidate_embedding(x["item_id"])
            scores = ops.matmul(y_pred["user_embeddings"], ops.transpose(candidates))
            labels = ops.eye(ops.shape(scores)[0], dtype=scores.dtype)
            return self.loss_fn(labels, scores, sample_weight)

    model = RetrievalModel()
    model.compile(optimizer=keras.optimizers.Adagrad(learning_rate=LEARNING_RATE))
    timer = epoch_timer(keras)
    model.fit(dataset, epochs=args.epochs, callbacks=[timer], verbose=0)
    items = np.asarray(model.candidate_embedding(ops.arange(num_items)))
    users = np.asarray(model.user_embedding(ops.arange(num_users)))
    # The example's inference path, as a check that the exported embeddings are the model's.
    model.retrieval.update_candidates(ops.convert_to_tensor(items))
    top = np.asarray(model.predict({"user_id": np.arange(8)}, verbose=0)["predictions"])
    k = min(10, num_items)
    expected = np.argsort(-(users[:8] @ items.T), axis=1)[:, :k]
    agree = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, expected)]))
    return users, items, timer, {"keras": keras.__version__, "keras_rs": keras_rs.__version__,
                                 "brute_force_top10_agreement": agree}


def worker_merlin(args):
    import merlin.models.tf as mm
    import tensorflow as tf
    from merlin.schema import ColumnSchema, Schema, Tags

    tf.keras.utils.set_random_seed(args.seed)
    dataset, num_users, num_items, _ = id_dataset(args.data, args.batch_size, args.seed)
    # Merlin's inputs are [batch, 1] per categorical column.
    dataset = dataset.map(lambda batch: {name: tf.expand_dims(value, -1) for name, value in batch.items()})

    def id_column(name, tags, cardinality):
        return ColumnSchema(
            name, tags=tags, dtype=np.int64, is_list=False,
            properties={"domain": {"min": 0, "max": cardinality - 1, "name": name}},
        )

    schema = Schema([
        id_column("user_id", [Tags.USER_ID, Tags.USER, Tags.CATEGORICAL], num_users),
        id_column("item_id", [Tags.ITEM_ID, Tags.ITEM, Tags.CATEGORICAL], num_items),
    ])
    user_schema, item_schema = schema.select_by_tag(Tags.USER), schema.select_by_tag(Tags.ITEM)

    def tower(columns):
        return mm.Encoder(mm.InputBlockV2(columns, categorical=mm.Embeddings(columns, dim=EMBEDDING_DIM)))

    model = mm.TwoTowerModelV2(
        tower(user_schema),
        tower(item_schema),
        negative_samplers="in-batch",
        logits_temperature=1.0,
        # As TFRS's Retrieval task: accidental hits stay in the softmax, and
        # the batch's losses are summed, not averaged (Merlin's default).
        downscore_false_negatives=False,
        default_loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
        # No top-k metrics while training (TFRS's task without FactorizedTopK).
        default_metrics_fn=lambda: (),
    )
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=LEARNING_RATE), run_eagerly=False)
    timer = epoch_timer(tf.keras)
    model.fit(dataset, epochs=args.epochs, callbacks=[timer], verbose=0)
    users = model.query_encoder({"user_id": tf.range(num_users, dtype=tf.int64)[:, None]}).numpy()
    items = model.candidate_encoder({"item_id": tf.range(num_items, dtype=tf.int64)[:, None]}).numpy()
    from importlib.metadata import version

    return users, items, timer, {"merlin_models": version("merlin-models"), "tensorflow": tf.__version__}


WORKERS = {
    "ours-tutorial": worker_ours_tutorial,
    "ours-defaults": worker_ours_defaults,
    "tfrs": worker_tfrs,
    "keras-rs": worker_keras_rs,
    "merlin": worker_merlin,
}


def run_worker(args) -> None:
    """Trains one system; writes users.npy / items.npy and prints a JSON line."""
    users, items, timer, info = WORKERS[args.worker](args)
    out = Path(args.out_dir)
    np.save(out / "users.npy", np.asarray(users, "float32"))
    np.save(out / "items.npy", np.asarray(items, "float32"))
    rows = int(np.load(Path(args.data) / "ids.npz")["user_id"].shape[0])
    timed = timer.seconds[1:] or timer.seconds
    result = {
        "epoch_seconds": timer.seconds,
        "loss": timer.loss,
        "examples_per_second": rows * len(timed) / sum(timed),
        **info,
    }
    print(json.dumps(result), flush=True)


# --- environments -----------------------------------------------------------------


def tail(text: str, lines: int = 3) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_merlin_venv() -> tuple[Path | None, str]:
    """(python of benchmarks/.venvs/merlin, "") made on first use; (None, why) if it cannot be."""
    python = MERLIN_VENV / "bin" / "python"
    stamp = MERLIN_VENV / ".installed"
    wanted = " ".join(MERLIN_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python, ""
    if sys.version_info[:2] > (3, 11):
        return None, f"TensorFlow 2.12 has no wheels for Python {platform.python_version()} (needs <= 3.11)"
    print(f"Creating the Merlin Models environment in {MERLIN_VENV} (first use, a few minutes)...", flush=True)
    steps = {
        f"python -m venv {MERLIN_VENV}": [sys.executable, "-m", "venv", "--clear", str(MERLIN_VENV)],
        "pip install pip<26.2": [str(python), "-m", "pip", "install", "-q", "pip<26.2"],
        f"pip install {wanted}": [str(python), "-m", "pip", "install", "-q", *MERLIN_REQUIREMENTS],
        "import merlin.models.tf": [str(python), "-c", "import merlin.models.tf"],
    }
    for name, step in steps.items():
        done = subprocess.run(step, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if done.returncode != 0:
            return None, f"the Merlin Models venv could not be made: `{name}` failed: {tail(done.stderr, 2)}"
    stamp.write_text(wanted)
    return python, ""


def worker_pythons(args) -> dict[str, tuple[str | None, str]]:
    """worker -> (python to run it with, or None, and why not)."""
    pythons = {"ours-tutorial": (sys.executable, ""), "ours-defaults": (sys.executable, ""),
               "keras-rs": (sys.executable, "")}
    if args.skip_keras_rs:
        pythons["keras-rs"] = (None, "skipped (--skip-keras-rs)")
    if args.skip_tfrs:
        pythons["tfrs"] = (None, "skipped (--skip-tfrs)")
    else:
        sys.path.insert(0, str(HERE))
        from train_throughput import ensure_tfrs_venv  # the same venv as the throughput benchmark

        tfrs = ensure_tfrs_venv()
        pythons["tfrs"] = (str(tfrs), "") if tfrs else (None, "its venv could not be made (see above)")
    if args.skip_merlin:
        pythons["merlin"] = (None, "skipped (--skip-merlin)")
    else:
        merlin, why = ensure_merlin_venv()
        pythons["merlin"] = (str(merlin), "") if merlin else (None, why)
    return pythons


def run_system(python: str, worker: str, data: Path, epochs: int, args) -> tuple[dict, Path]:
    out = data / worker
    out.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    if worker == "tfrs":
        env["TF_USE_LEGACY_KERAS"] = "1"
    command = [
        python, str(Path(__file__).resolve()), "--worker", worker, "--data", str(data), "--out-dir", str(out),
        "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {tail(done.stderr, 1)}", "stderr": tail(done.stderr, 30)}, out
    result = json.loads(lines[-1])
    result["wall_seconds"] = time.perf_counter() - start
    return result, out


# --- metrics (parent) ----------------------------------------------------------------


def evaluate(users: np.ndarray, items: np.ndarray, train, test) -> dict[str, dict[str, float]]:
    """recall@1..100 of one system, all items ranked and seen items excluded."""
    from schemaretrieval import evaluation
    from schemaretrieval.data import Exclusions
    from schemaretrieval.retrieval.topk import embedding_scorer

    test_users = test["user_id"].to_numpy()
    scorer = embedding_scorer(users[test_users], items)
    targets = test["item_id"].to_numpy()
    catalog = np.arange(len(items))
    exclude = Exclusions.from_interactions(train, "user_id", "item_id").positions(test_users, catalog)
    return {
        "all": evaluation.evaluate_ranking(scorer, targets, ks=CURVE_KS),
        "excl": evaluation.evaluate_ranking(scorer, targets, ks=CURVE_KS, exclude=exclude),
    }


def evaluate_popularity(train, test, num_items: int) -> dict[str, dict[str, float]]:
    import schemaretrieval as sr

    pop = sr.baselines.Popularity().fit(train, "user_id", "item_id")
    catalog = np.arange(num_items)
    return {
        "all": pop.evaluate_topk(test, candidate_ids=catalog, ks=CURVE_KS),
        "excl": pop.evaluate_topk(test, candidate_ids=catalog, ks=CURVE_KS, exclude=train),
    }


# --- output --------------------------------------------------------------------------


def print_table(rows: list[dict]) -> None:
    header = ("system", "config", "epochs", "examples/s", "R@10", "R@100", "R@10 excl", "R@100 excl")
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append((row["system"], row["config"], "", "not run" if row["error"].startswith("not run") else "failed",
                          "", "", "", ""))
            continue
        m = row["metrics"]
        lines.append((
            row["system"], row["config"], str(row.get("epochs", "")),
            f"{row['examples_per_second']:,.0f}" if row.get("examples_per_second") else "-",
            *(f"{m[part][f'recall@{k}']:.4f}" for part in ("all", "excl") for k in TABLE_KS),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print(" | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    for row in rows:
        if "error" in row:
            print(f"{row['system']}: {row['error']}")


def plot(rows: list[dict], path: Path, title: str) -> None:
    """recall@k against k per system: all items ranked | seen items excluded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=100, sharey=True)
    for ax, part, label in zip(axes, ("all", "excl"), ("all items ranked", "each user's training items excluded")):
        # Peers that train the same model land on the same curve: dashes
        # of different lengths (and widths) keep every line visible.
        tutorial_styles = iter([("-", 3.0), ("--", 2.4), ("-.", 1.8), (":", 1.4)])
        for row in rows:
            if "metrics" not in row:
                continue
            kwargs = {}
            if row["system"] == "most popular":
                style, width, name = (0, (1, 3)), 1.5, "most popular"
                kwargs = {"color": "0.35"}
            elif row["config"].startswith("tutorial"):
                (style, width), name = next(tutorial_styles), f"{row['system']}, tutorial config"
            else:
                style, width, name = "-", 2.0, f"{row['system']}, TwoTowerModel defaults"
            ax.plot(CURVE_KS, [row["metrics"][part][f"recall@{k}"] for k in CURVE_KS], linestyle=style,
                    linewidth=width, label=name, **kwargs)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("k")
        ax.set_xlim(1, CURVE_KS[-1])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@k")
    axes[0].set_ylim(0, None)
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def environment() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_1_5_15": load}


def run_benchmark(args) -> list[dict]:
    from schemaretrieval.models.defaults import DEFAULT_EPOCHS

    train, test, users, catalog, schema, source = make_data(args)
    defaults_epochs = args.defaults_epochs or DEFAULT_EPOCHS
    print(f"{source}: {len(train):,} train / {len(test):,} test ratings, {len(users)} users, {len(catalog)} items; "
          f"tutorial config: dim {EMBEDDING_DIM}, batch {args.batch_size}, Adagrad({LEARNING_RATE}), summed "
          f"in-batch softmax, {args.epochs} epochs; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    pythons = worker_pythons(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_payload(data, train, test, users, catalog, schema)
        for worker, system, config in SYSTEMS:
            if worker == "ours-defaults" and args.skip_defaults:
                continue
            python, why = pythons[worker]
            epochs = defaults_epochs if worker == "ours-defaults" else args.epochs
            row = {"system": system, "config": config, "worker": worker, "epochs": epochs}
            if python is None:
                row["error"] = f"not run: {why}"
                print(f"{system}: {row['error']}", flush=True)
                rows.append(row)
                continue
            print(f"{system}, {config}: training...", flush=True)
            result, out = run_system(python, worker, data, epochs, args)
            row.update(result)
            if "error" not in result:
                row["metrics"] = evaluate(np.load(out / "users.npy"), np.load(out / "items.npy"), train, test)
            else:
                print(f"{system} failed:\n{result['stderr']}", file=sys.stderr, flush=True)
            rows.append(row)
    rows.append({"system": "most popular", "config": "-, training counts", "epochs": "",
                 "metrics": evaluate_popularity(train, test, len(catalog))})
    print()
    print_table(rows)
    print("\nR@k: full-catalog recall@k over every test rating; 'excl': each user's training items removed "
          "from its ranking; examples/s over epochs 2..N.")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"source": source, "num_train": len(train), "num_test": len(test), "num_users": len(users),
                   "num_items": len(catalog), "batch_size": args.batch_size, "epochs": args.epochs,
                   "seed": args.seed, "environment": environment(),
                   "rows": [{k: v for k, v in row.items() if k != "stderr"} for row in rows]}
        for row in summary["rows"]:  # keep the table's cut-offs and the curve, not every metric at every k
            if "metrics" in row:
                row["metrics"] = {part: {f"recall@{k}": m[f"recall@{k}"] for k in CURVE_KS}
                                  | {f"ndcg@{k}": m[f"ndcg@{k}"] for k in TABLE_KS}
                                  for part, m in row["metrics"].items()}
        (out / "peers.json").write_text(json.dumps(summary, indent=2))
        plot(rows, out / "recall_at_k.png", f"{source}, random 80/20 split, {len(catalog)} items ranked")
        print(f"wrote {out / 'peers.json'} and {out / 'recall_at_k.png'}")
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the tutorial config (default 3, as TFRS's tutorial)")
    parser.add_argument("--defaults-epochs", type=int, help="epochs of TwoTowerModel defaults (default 12)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="tutorial config's batch (default 8192)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the split and every model")
    parser.add_argument("--movielens", metavar="DIR", help="a GroupLens ml-100k folder (u.data, u.item, u.user) instead of the generated data")
    parser.add_argument("--skip-tfrs", action="store_true")
    parser.add_argument("--skip-merlin", action="store_true")
    parser.add_argument("--skip-keras-rs", action="store_true")
    parser.add_argument("--skip-defaults", action="store_true", help="leave out the TwoTowerModel defaults row")
    parser.add_argument("--out", help="directory for peers.json and recall_at_k.png")
    # Internal: what the parent passes to a worker subprocess.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        run_worker(arguments)
    else:
        run_benchmark(arguments)
