"""Training throughput in one run: ours against TFRS 0.7.7 at TFRS's configuration, and ours at our defaults.

schemaretrieval against tensorflow-recommenders 0.7.7 at TFRS's
basic-retrieval configuration, and schemaretrieval's own defaults, each
beside the library at earlier commits (`--before`).

What is measured
    Training examples per second of `fit`, over the wall time of the timed
    epochs alone, after one warm-up epoch that is not timed (tracing and
    compilation).

    TFRS's configuration: the TFRS basic-retrieval tutorial's model, a
    user-id tower and an item-id tower, each one embedding of dim 32 (no
    MLP), in-batch softmax, loss summed over the batch (TFRS's reduction),
    Adagrad(learning_rate=0.1), batch size 8192, retrieval metrics off. The
    data is shaped like MovieLens-100K (943 users, 1682 items, 80,000
    interactions with power-law popularity), generated once with numpy from
    a fixed seed and handed to every side through one .npz file. Both sides
    read it through the same tf.data pipeline (shuffle every epoch, batch,
    prefetch). Besides each side's default, rows show the two levers Keras
    offers: jit_compile=True (XLA for the whole step; the default leaves it
    off on a CPU-only machine) on both sides, and the mixed_bfloat16 dtype
    policy on ours.

    The defaults: `sr.TwoTowerModel(schema)`, `compile()`, `fit` on a
    DataFrame with every default (batch 128, the averaged sparse Adam, the
    in-batch softmax with the logQ correction), on benchmarks/scale.py's
    MovieLens-20M-shaped data and schema (`--shape`: 138,493 users and
    26,744 items, as issue #27's table), `--interactions` rows an epoch.
    `--steps-per-execution N,...` adds rows of the defaults compiled with
    each other ``steps_per_execution`` (the default's is 16).

How
    Every row runs in a fresh subprocess, so that no global state (dtype
    policy, compiled functions, thread pools) carries over between rows:
      - schemaretrieval with the current python (the project's venv), the
        library of this checkout, or with `--before [LABEL=]PATH` also the
        library at PATH (e.g. `git archive 725bd11 | tar -x -C /tmp/before`),
        for its default rows;
      - TFRS with its own virtual environment (`--tfrs-venv`, by default
        benchmarks/.venvs/tfrs, made on first use: TensorFlow 2.21,
        tf-keras 2.21, TF_USE_LEGACY_KERAS=1). If it cannot be made, our
        side still runs.
    Each worker prints one JSON line that the parent reads.

Run
    python benchmarks/train_throughput.py [--epochs 5] [--batch-size 8192] [--skip-tfrs] [--repeats 1] [--no-levers]
        [--tfrs-venv PATH] [--before [LABEL=]PATH ...] [--shape 138493,26744] [--interactions 64000]
        [--steps-per-execution 1,8,16,32,64]

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
# What `fit` on a table batches by when not told (sr.training.DEFAULT_BATCH_SIZE).
DEFAULTS_BATCH_SIZE = 128
USER_ACTIVITY_EXPONENT = 0.5

OURS, TFRS, BEFORE = "schemaretrieval", "TFRS 0.7.7", "schemaretrieval before"
# (library, config, worker arguments) of each row, in the order they run:
# the two defaults back to back, so that load from other processes on a
# shared machine hits the pair compared by the ratio alike.
ROWS = [
    (OURS, "float32, jit_compile=auto (default)", ["--precision", "float32", "--jit", "auto"]),
    (TFRS, "float32, jit_compile=None (default)", ["--jit", "auto"]),
    (BEFORE, "float32, jit_compile=auto (default)", ["--precision", "float32", "--jit", "auto"]),
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


def run_defaults(args) -> dict:
    """`sr.TwoTowerModel(schema)` with every default (batch 128, `compile()`,
    `fit` on a DataFrame) on benchmarks/scale.py's MovieLens-20M-shaped data
    and schema, `args.shape` users and items."""
    import keras
    import scale

    import schemaretrieval as sr

    keras.utils.set_random_seed(SEED)
    users, items = args.shape
    model = sr.TwoTowerModel(scale.encoded_schema(users, items))
    model.compile(**({"steps_per_execution": args.spe} if args.spe else {}))
    frame = scale.interactions(args.interactions, users, items, SEED)

    class EpochTimer(keras.callbacks.Callback):  # sr.training.fit runs one model.fit per epoch
        seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            EpochTimer.seconds.append(time.perf_counter() - self.start)

    model.fit(frame, epochs=args.epochs + 1, callbacks=[EpochTimer()], verbose=0)
    return {"seconds": EpochTimer.seconds[1:], "jit_compile": bool(model.jit_compile), "keras": keras.__version__,
            "library": str(Path(sr.__file__).resolve().parents[1])}


def run_worker(args) -> None:
    """Runs one row and prints its result as the last line of stdout."""
    workers = {"ours": run_ours, "tfrs": run_tfrs, "defaults": run_defaults}
    result = workers[args.worker](args)
    rows = args.interactions if args.worker == "defaults" else NUM_INTERACTIONS
    result["examples_per_second"] = rows * len(result["seconds"]) / sum(result["seconds"])
    result["epoch_examples_per_second"] = [rows / s for s in result["seconds"]]
    print(json.dumps(result), flush=True)


# --- the TFRS environment ---------------------------------------------------------


def ensure_tfrs_venv(venv: Path = TFRS_VENV) -> Path | None:
    """The TFRS venv's python, made on first use; None (with a message) if it cannot be."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(TFRS_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"Creating the TFRS environment in {venv} (first use, about a minute)...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
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


def run_row(python, side: str, extra: list[str], data: Path, args, library: Path | None = None) -> dict:
    """One worker subprocess: its JSON result, or {"error": the end of its stderr}.
    `library`: the schemaretrieval checkout our side imports (PYTHONPATH)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if side == "tfrs":
        env["TF_USE_LEGACY_KERAS"] = "1"
    else:
        env["PYTHONPATH"] = str(library or HERE.parent)
    command = [
        str(python), str(Path(__file__).resolve()), "--worker", side, "--data", str(data),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=library or HERE.parent)
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
    """library | config | XLA on for the whole step | examples/s | fastest timed epoch;
    then why any row failed."""
    header = ("library", "config", "XLA step", "examples/s", "fastest epoch")
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


def print_ratio(results: dict, what: str, a: tuple[str, str], b: tuple[str, str]) -> None:
    """`what`: examples/s of row a over row b, when both ran."""
    if rate(results.get(a)) and rate(results.get(b)):
        print(f"{what}: {rate(results[a]) / rate(results[b]):.2f}x")


def parse_before(text: str) -> tuple[str, Path]:
    """'LABEL=PATH' -> (label, path); a bare PATH is labelled by its folder name."""
    label, _, path = text.rpartition("=")
    path = Path(path).resolve()
    return label or path.name, path


def run_benchmark(args) -> None:
    befores = [parse_before(text) for text in args.before]
    tfrs_python = None if args.skip_tfrs else ensure_tfrs_venv(Path(args.tfrs_venv))
    rows = []  # (table label, library label, config, python, side, extra, library path)
    for library, config, extra in ROWS:
        if args.no_levers and "(default)" not in config:
            continue
        if library == TFRS:
            if tfrs_python is not None:
                rows.append(("tfrs", TFRS, config, tfrs_python, "tfrs", extra, None))
        elif library == BEFORE:
            rows.extend(("tfrs", f"{OURS} {label}", config, sys.executable, "ours", extra, path)
                        for label, path in befores)
        else:
            rows.append(("tfrs", OURS, config, sys.executable, "ours", extra, None))
    defaults = f"defaults, batch {DEFAULTS_BATCH_SIZE}, {args.shape[0]:,} users x {args.shape[1]:,} items"
    extra = ["--shape", ",".join(map(str, args.shape)), "--interactions", str(args.interactions)]
    if args.interactions:
        rows.append(("defaults", OURS, defaults, sys.executable, "defaults", extra, None))
        rows.extend(("defaults", f"{OURS} {label}", defaults, sys.executable, "defaults", extra, path)
                    for label, path in befores)
        rows.extend(("defaults", OURS, f"{defaults}, steps_per_execution {n}", sys.executable, "defaults",
                     extra + ["--spe", str(n)], None) for n in args.steps_per_execution)
    print(
        f"TFRS's configuration: {NUM_INTERACTIONS:,} interactions, {NUM_USERS} users, {NUM_ITEMS} items, "
        f"dim {EMBEDDING_DIM}, batch {args.batch_size}, Adagrad({LEARNING_RATE}), sum loss. "
        f"The defaults: TwoTowerModel(schema), compile(), fit on {args.interactions:,} MovieLens-20M-shaped "
        f"interactions. 1 warm-up epoch + {args.epochs} timed, best of {args.repeats}, {os.cpu_count()} CPUs"
        + "".join(f"; {label}: {path}" for label, path in befores),
        flush=True,
    )
    results = {"tfrs": {}, "defaults": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "interactions.npz"
        write_interactions(data)
        for _ in range(args.repeats):
            for table, library, config, python, side, extra, path in rows:
                started = time.perf_counter()
                result = run_row(python, side, extra, data, args, path)
                results[table][library, config] = faster(results[table].get((library, config)), result)
                print(f"  {library}, {config}: {rate(result) or 0:,.0f} examples/s "
                      f"[{time.perf_counter() - started:.0f} s]", flush=True)
    first = [befores[0][0]] if befores else []
    for table, title in (("tfrs", "TFRS's configuration"), ("defaults", "The defaults")):
        if not results[table]:
            continue
        print(f"\n{title}")
        print_table(results[table])
    print()
    tfrs_default, ours_default = (TFRS, ROWS[1][1]), (OURS, ROWS[0][1])
    print_ratio(results["tfrs"], "TFRS's configuration, ours / TFRS, both defaults", ours_default, tfrs_default)
    for label in first + [label for label, _ in befores[1:]]:
        print_ratio(results["tfrs"], f"TFRS's configuration, ours / ours at {label}, defaults", ours_default,
                    (f"{OURS} {label}", ROWS[0][1]))
        print_ratio(results["defaults"], f"The defaults, ours / ours at {label}", (OURS, defaults),
                    (f"{OURS} {label}", defaults))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs, after 1 warm-up epoch")
    parser.add_argument("--batch-size", type=int, default=8192, help="TFRS's configuration's batch")
    parser.add_argument("--skip-tfrs", action="store_true", help="run our side only")
    parser.add_argument("--tfrs-venv", default=str(TFRS_VENV), help="the TFRS virtual environment (made if missing)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every row; the fastest is shown")
    parser.add_argument("--no-levers", action="store_true",
                        help="only each side's default at TFRS's configuration (no jit_compile / bfloat16 rows)")
    parser.add_argument("--before", action="append", default=[], metavar="[LABEL=]PATH",
                        help="also run our default rows on the library at PATH (e.g. `git archive 725bd11 | "
                             "tar -x -C /tmp/before`); may repeat")
    parser.add_argument("--shape", type=lambda text: tuple(int(v) for v in text.split(",")), default=(138_493, 26_744),
                        metavar="USERS,ITEMS", help="users and items of the defaults' rows (MovieLens-20M's)")
    parser.add_argument("--interactions", type=int, default=64_000, help="rows of an epoch of the defaults' rows (0: no such rows)")
    parser.add_argument("--steps-per-execution", type=lambda text: [int(v) for v in text.split(",")], default=[],
                        metavar="N,...", help="also the defaults' rows with compile(steps_per_execution=N), each N "
                                              "(the default's choice: docs/defaults.md)")
    # Internal: what the parent passes to a worker subprocess.
    parser.add_argument("--worker", choices=["ours", "tfrs", "defaults"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit", choices=["auto", "true", "false"], default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--spe", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        run_worker(arguments)
    else:
        run_benchmark(arguments)
