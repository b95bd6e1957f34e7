"""Training throughput of the TFRS basic-retrieval configuration:
schemaretrieval against tensorflow-recommenders 0.7.7, in one run.

What is measured
    Training examples per second of `fit` on the TFRS basic-retrieval
    tutorial's model: a user-id tower and an item-id tower, each one embedding
    of dim 32 (no MLP), in-batch softmax, loss summed over the batch (TFRS's
    reduction), Adagrad(learning_rate=0.1), batch size 8192, retrieval metrics
    off. The data is shaped like MovieLens-100K (943 users, 1682 items,
    80,000 interactions with power-law popularity), generated once with numpy
    from a fixed seed and handed to every side through one .npz file.

    Both sides read it through the same tf.data pipeline (shuffle every epoch,
    batch, prefetch), train one warm-up epoch that is not timed (tracing and
    compilation), then N timed epochs; examples/s is the timed examples over
    the wall time of the timed epochs alone.

How
    Every row runs in a fresh subprocess, so that no global state (dtype
    policy, compiled functions, thread pools) carries over between rows:
      - schemaretrieval with the current python (the project's venv);
      - TFRS with its own virtual environment, made by this script on first
        use in benchmarks/.venvs/tfrs (TensorFlow 2.21, tf-keras 2.21,
        TF_USE_LEGACY_KERAS=1). If it cannot be made, our side still runs.
    Each worker prints one JSON line that the parent reads.

    Besides each side's default, rows show the two levers Keras offers:
    jit_compile=True (XLA; the default leaves it off on a CPU-only machine)
    on both sides, and the mixed_bfloat16 dtype policy on ours.

Run
    python benchmarks/train_throughput.py [--epochs 5] [--batch-size 8192] [--skip-tfrs] [--repeats 1]

Timings on a shared machine drift between runs: compare rows of one run.
With --repeats R every row runs R times (the rows interleaved) and the
fastest run of each is shown, which filters out bursts of outside load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TFRS_VENV = HERE / ".venvs" / "tfrs"
# The set that installs and imports together (pip resolves the rest).
TFRS_REQUIREMENTS = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-recommenders==0.7.7",
    "numpy==1.26.4",
]

NUM_USERS = 943
NUM_ITEMS = 1682
NUM_INTERACTIONS = 80_000
EMBEDDING_DIM = 32
LEARNING_RATE = 0.1
SEED = 42
# Zipf-like exponents of item popularity and user activity.
ITEM_POPULARITY_EXPONENT = 0.8
USER_ACTIVITY_EXPONENT = 0.5

OURS, TFRS = "schemaretrieval", "TFRS 0.7.7"
# (library, config, worker arguments) of each row, in the order they run:
# the two defaults back to back, so that load from other processes on a
# shared machine hits the pair compared by the ratio alike.
ROWS = [
    (OURS, "float32, jit_compile=auto (default)", ["--precision", "float32", "--jit", "auto"]),
    (TFRS, "float32, jit_compile=None (default)", ["--jit", "auto"]),
    (OURS, "float32, jit_compile=True", ["--precision", "float32", "--jit", "true"]),
    (TFRS, "float32, jit_compile=True", ["--jit", "true"]),
    (OURS, "mixed_bfloat16, jit_compile=auto", ["--precision", "mixed_bfloat16", "--jit", "auto"]),
    (OURS, "mixed_bfloat16, jit_compile=True", ["--precision", "mixed_bfloat16", "--jit", "true"]),
]


# --- data --------------------------------------------------------------------


def power_law_ids(rng: np.random.Generator, cardinality: int, size: int, exponent: float) -> np.ndarray:
    """`size` ids in [0, cardinality) drawn with probability ~ rank^-exponent,
    the ranks shuffled over the ids so popularity does not follow the id."""
    weights = np.arange(1, cardinality + 1, dtype="float64") ** -exponent
    ranks = rng.choice(cardinality, size=size, p=weights / weights.sum())
    return rng.permutation(cardinality)[ranks].astype("int64")


def write_interactions(path: Path) -> None:
    """The MovieLens-100K-shaped interactions both sides train on."""
    rng = np.random.default_rng(SEED)
    users = power_law_ids(rng, NUM_USERS, NUM_INTERACTIONS, USER_ACTIVITY_EXPONENT)
    items = power_law_ids(rng, NUM_ITEMS, NUM_INTERACTIONS, ITEM_POPULARITY_EXPONENT)
    np.savez(path, user_id=users, item_id=items)


def training_dataset(path: str, batch_size: int):
    """The same input pipeline for both sides: reshuffled every epoch."""
    import tensorflow as tf

    arrays = np.load(path)
    features = {"user_id": arrays["user_id"], "item_id": arrays["item_id"]}
    return (
        tf.data.Dataset.from_tensor_slices(features)
        .shuffle(len(arrays["user_id"]), seed=SEED, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


# --- timing (runs in a worker) ------------------------------------------------


def timed_fit(model, dataset, epochs: int, keras_module) -> list[float]:
    """Fits 1 warm-up epoch + `epochs`; returns the wall time of each timed epoch."""

    class EpochTimer(keras_module.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch > 0:  # epoch 0 traces and compiles
                self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    model.fit(dataset, epochs=epochs + 1, callbacks=[timer], verbose=0)
    return timer.seconds


# --jit as each side's compile() spells it: Keras 3 says "auto", tf-keras None.
JIT_ARGUMENT = {
    "ours": {"auto": "auto", "true": True, "false": False},
    "tfrs": {"auto": None, "true": True, "false": False},
}


# --- workers (each runs in its own subprocess) -----------------------------------


def run_ours(args) -> dict:
    """schemaretrieval's TwoTowerModelV2 with id-only towers and the sum reduction."""
    import keras
    from merlin.schema import ColumnSchema, Schema, Tags

    from schemaretrieval.layers import Encoder
    from schemaretrieval.models import TwoTowerModelV2
    from schemaretrieval.retrieval.outputs import ContrastiveOutput

    keras.utils.set_random_seed(SEED)
    keras.mixed_precision.set_global_policy(args.precision)

    def id_column(name, tag, cardinality):
        return ColumnSchema(
            name,
            tags=[tag, Tags.CATEGORICAL],
            dtype="int64",
            properties={"domain": {"min": 0, "max": cardinality - 1}, "embedding_dim": EMBEDDING_DIM},
        )

    model = TwoTowerModelV2(
        Encoder(Schema([id_column("user_id", Tags.USER_ID, NUM_USERS)])),
        Encoder(Schema([id_column("item_id", Tags.ITEM_ID, NUM_ITEMS)])),
        outputs=ContrastiveOutput(loss_reduction="sum", downscore_false_negatives=False),  # as TFRS
    )
    model.compile(optimizer=keras.optimizers.Adagrad(LEARNING_RATE), jit_compile=JIT_ARGUMENT["ours"][args.jit])
    seconds = timed_fit(model, training_dataset(args.data, args.batch_size), args.epochs, keras)
    return {"seconds": seconds, "jit_compile": bool(model.jit_compile), "keras": keras.__version__}


def run_tfrs(args) -> dict:
    """The TFRS basic-retrieval tutorial's model, ids embedded directly."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(SEED)

    class BasicRetrieval(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.user_tower = tf.keras.layers.Embedding(NUM_USERS, EMBEDDING_DIM)
            self.item_tower = tf.keras.layers.Embedding(NUM_ITEMS, EMBEDDING_DIM)
            self.task = tfrs.tasks.Retrieval()  # no FactorizedTopK: metrics off

        def compute_loss(self, features, training=False):
            return self.task(self.user_tower(features["user_id"]), self.item_tower(features["item_id"]))

    model = BasicRetrieval()
    model.compile(
        optimizer=tf.keras.optimizers.Adagrad(learning_rate=LEARNING_RATE), jit_compile=JIT_ARGUMENT["tfrs"][args.jit]
    )
    seconds = timed_fit(model, training_dataset(args.data, args.batch_size), args.epochs, tf.keras)
    return {"seconds": seconds, "jit_compile": bool(model.jit_compile), "tfrs": tfrs.__version__}


def run_worker(args) -> None:
    """Runs one row and prints its result as the last line of stdout."""
    result = run_ours(args) if args.worker == "ours" else run_tfrs(args)
    examples = NUM_INTERACTIONS * args.epochs
    result["examples_per_second"] = examples / sum(result["seconds"])
    result["epoch_examples_per_second"] = [NUM_INTERACTIONS / s for s in result["seconds"]]
    print(json.dumps(result), flush=True)


# --- the TFRS environment ---------------------------------------------------------


def ensure_tfrs_venv() -> Path | None:
    """The TFRS venv's python, made on first use; None (with a message) if it cannot be."""
    python = TFRS_VENV / "bin" / "python"
    stamp = TFRS_VENV / ".installed"
    wanted = " ".join(TFRS_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"Creating the TFRS environment in {TFRS_VENV} (first use, about a minute)...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(TFRS_VENV)],
        [str(python), "-m", "pip", "install", "-q", "pip<26.2"],
        [str(python), "-m", "pip", "install", "-q", *TFRS_REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"Could not create the TFRS environment: `{' '.join(step)}` failed:", file=sys.stderr)
            print(tail(done.stderr), file=sys.stderr)
            print("Skipping TFRS; our side still runs.", file=sys.stderr)
            return None
    stamp.write_text(wanted)
    return python


# --- the parent ---------------------------------------------------------------------


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_row(python, side: str, extra: list[str], data: Path, args) -> dict:
    """One worker subprocess: its JSON result, or {"error": the end of its stderr}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if side == "tfrs":
        env["TF_USE_LEGACY_KERAS"] = "1"
    command = [
        str(python), str(Path(__file__).resolve()), "--worker", side, "--data", str(data),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent)
    results = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not results:
        return {"error": f"exit {done.returncode}: {tail(done.stderr, 1)}"}
    return json.loads(results[-1])


def rate(result: dict | None) -> float | None:
    """Examples/s of a run; None if it failed or did not run."""
    return result.get("examples_per_second") if result else None


def faster(a: dict | None, b: dict) -> dict:
    """Of two runs of one row, the one with more examples/s (a failure loses)."""
    if a is None or (rate(b) or 0) > (rate(a) or 0):
        return b
    return a


def print_table(results: dict[tuple[str, str], dict]) -> None:
    """library | config | XLA actually on | examples/s | fastest timed epoch;
    then why any row failed."""
    header = ("library", "config", "XLA", "examples/s", "fastest epoch")
    lines = [header]
    for (library, config), result in results.items():
        if "error" in result:
            lines.append((library, config, "", "failed", ""))
            continue
        lines.append((
            library,
            config,
            "on" if result["jit_compile"] else "off",
            f"{result['examples_per_second']:,.0f}",
            f"{max(result['epoch_examples_per_second']):,.0f}",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print(" | ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    for (library, config), result in results.items():
        if "error" in result:
            print(f"\n{library}, {config}: {result['error']}")


def print_ratios(results: dict[tuple[str, str], dict]) -> None:
    """ours/TFRS for the two defaults (the first row of each), and for the best row of each."""
    ours = [rate(r) for (library, _), r in results.items() if library == OURS]
    tfrs = [rate(r) for (library, _), r in results.items() if library == TFRS]
    if ours and tfrs and ours[0] and tfrs[0]:
        print(f"\nratio ours/TFRS, default configs: {ours[0] / tfrs[0]:.2f}x")
    if any(ours) and any(tfrs):
        print(f"ratio ours/TFRS, best config of each: {max(r for r in ours if r) / max(r for r in tfrs if r):.2f}x")


def run_benchmark(args) -> None:
    print(
        f"{NUM_INTERACTIONS:,} interactions, {NUM_USERS} users, {NUM_ITEMS} items, dim {EMBEDDING_DIM}, "
        f"batch {args.batch_size}, Adagrad({LEARNING_RATE}), sum loss; "
        f"1 warm-up epoch + {args.epochs} timed, best of {args.repeats}, {os.cpu_count()} CPUs",
        flush=True,
    )
    pythons = {OURS: sys.executable, TFRS: None if args.skip_tfrs else ensure_tfrs_venv()}
    rows = [(library, config, extra) for library, config, extra in ROWS if pythons[library] is not None]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "interactions.npz"
        write_interactions(data)
        for _ in range(args.repeats):
            for library, config, extra in rows:
                side = "ours" if library == OURS else "tfrs"
                result = run_row(pythons[library], side, extra, data, args)
                results[library, config] = faster(results.get((library, config)), result)
    print()
    print_table(dict(sorted(results.items(), key=lambda item: item[0][0] != OURS)))
    print_ratios(results)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs, after 1 warm-up epoch")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--skip-tfrs", action="store_true", help="run our side only")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every row; the fastest is shown")
    # Internal: what the parent passes to a worker subprocess.
    parser.add_argument("--worker", choices=["ours", "tfrs"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit", choices=["auto", "true", "false"], default="auto", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        run_worker(arguments)
    else:
        run_benchmark(arguments)
