"""Step time against table size: ms per training step of `TwoTowerModel(schema)`
by optimizer, at 10k to 10M embedding rows, in one run (issue #30).

What is measured
    The median wall time of a training step of `sr.TwoTowerModel(schema)`
    with its defaults (towers, in-batch negatives with the logQ correction,
    the user table's record of the rows read), fed by `model.fit` from a
    DataFrame, at two batch sizes, once the step is traced: the time from
    Keras's `on_train_batch_begin` to `on_train_batch_end` over `--steps`
    steps after `WARM_UP_STEPS`. The median, and each row in its own
    process, keep bursts of outside load on a shared machine out of it.

    The data is generated, MovieLens-20M-shaped, and the schema is the ETL's
    encoding of `schemas/raw-log.yaml` (`sr.data.raw_log`): user_id,
    user_score (continuous), item_id, item_genres (a list of 1-4 of 19
    genres). A table size of R embedding rows is split as MovieLens-20M's
    users (138,493, or R / 2 when that is less), 19 genre rows, and the rest
    items: 150k rows is about MovieLens-20M, 1M a catalog of 860k items. Ids
    are drawn as `raw_log` draws them (items Zipf-Mandelbrot, 1 / (rank + 50);
    users log-normal), directly as integers. Every id table is 64 wide at
    every size (the schema's rule would widen the 10M-row item table to 120),
    so that only the number of rows changes.

Rows (optimizers)
    default      `model.compile()`: `sr.default_optimizer()`, AveragedAdam
                 with sparse updates (LazyAdam and the lazy average).
    dense        `sr.AveragedAdam(sparse_updates=False)`: Adam and the average
                 over every weight at every step, the default before issue #30.
    sgd          `keras.optimizers.SGD(0.1)`: the floor, a scatter of the rows read.
    With `--before PATH`, the default optimizer and SGD also run on the library
    at PATH (a checkout of an earlier commit, e.g. `git archive a402fad | tar -x
    -C /tmp/before`), as "before: default" and "before: sgd": the same
    script, data and machine.

Memory
    A table of R rows costs R x 64 x 4 bytes per copy: the default keeps 4
    (weights, Adam's two moments, the average) and 8 bytes a row, the dense
    optimizer 4 and its step's dense temporaries about as many again, SGD 1.
    A row whose estimate is over `--memory-fraction` of the memory available
    when it starts is skipped, and the table says so.

Run
    python benchmarks/scale.py [--rows 10k,150k,1M,10M] [--batch-sizes 128,1024]
        [--optimizers default,dense,sgd] [--steps 30] [--repeats 1] [--before PATH]
    python benchmarks/scale.py --pipeline 1M,5M,20M [--work DIR] [--train-args ARGS]
        the whole pipeline instead, step by step: benchmarks/scale_pipeline.py

Timings on a shared machine drift between runs: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

ML20M_USERS = 138_493
NUM_GENRES = 19
MAX_GENRES = 4
EMBEDDING_DIM = 64
WARM_UP_STEPS = 5
SEED = 0

# name -> (what the table calls it, copies of the tables it keeps, library)
OPTIMIZERS = {
    "default": ("default (AveragedAdam, sparse)", 4.2, "after"),
    "dense": ("AveragedAdam(sparse_updates=False)", 8.0, "after"),
    "sgd": ("SGD", 1.5, "after"),
}
BEFORE = {
    "before-default": ("before: default (AveragedAdam)", 8.0, "before"),
    "before-sgd": ("before: SGD", 1.5, "before"),
}


def parse_count(text: str) -> int:
    """'10k' -> 10000, '1M' -> 1000000, '150000' -> 150000."""
    text = text.strip()
    scale = {"k": 1_000, "K": 1_000, "M": 1_000_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale != 1 else text) * scale)


def split_rows(rows: int) -> tuple[int, int]:
    """(users, items) of a table size (see the module docstring)."""
    users = min(ML20M_USERS, rows // 2)
    return users, rows - users - NUM_GENRES


# --- the worker (one row, in its own process) -----------------------------------


def encoded_schema(num_users: int, num_items: int):
    """The ETL's output schema of raw-log.yaml at these sizes, ids 64 wide."""
    from merlin.schema import ColumnSchema, Schema, Tags

    def ids(name, tags, size, is_list=False):
        properties = {"domain": {"min": 0, "max": size - 1}, "embedding_dim": EMBEDDING_DIM}
        if is_list:
            properties["value_count"] = {"min": 1, "max": MAX_GENRES}
        return ColumnSchema(name, tags=tags + [Tags.CATEGORICAL], dtype="int64", is_list=is_list,
                            is_ragged=is_list, properties=properties)

    return Schema([
        ids("user_id", [Tags.USER_ID], num_users),
        ColumnSchema("user_score", tags=[Tags.USER, Tags.CONTINUOUS], dtype="float32"),
        ids("item_id", [Tags.ITEM_ID], num_items),
        ids("item_genres", [Tags.ITEM], NUM_GENRES, is_list=True),
    ])


def interactions(num_rows: int, num_users: int, num_items: int, seed: int):
    """`num_rows` interactions drawn as sr.data.raw_log draws them, as the
    ETL would encode them. An item's genres are a function of its id."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    item_weight = 1.0 / (np.arange(1, num_items + 1) + 50.0)
    user_weight = rng.lognormal(0.0, 1.2, num_users)
    items = rng.permutation(num_items)[rng.choice(num_items, size=num_rows, p=item_weight / item_weight.sum())]
    users = rng.choice(num_users, size=num_rows, p=user_weight / user_weight.sum())
    count = 1 + items % MAX_GENRES
    genres = [((item * 7 + 3 * np.arange(n)) % NUM_GENRES).tolist() for item, n in zip(items, count)]
    return pd.DataFrame({"user_id": users.astype("int64"), "user_score": rng.normal(size=num_rows).astype("float32"),
                         "item_id": items.astype("int64"), "item_genres": genres})


def run_worker(args) -> None:
    """Builds the model at one table size, then times `args.steps` steps at
    each batch size; prints one JSON line."""
    import keras
    import numpy as np

    import schemaretrieval as sr

    keras.utils.set_random_seed(SEED)
    users, items = split_rows(args.rows)
    start = time.perf_counter()
    model = sr.TwoTowerModel(encoded_schema(users, items))
    if args.worker in ("default", "before-default"):
        model.compile()
    elif args.worker in ("sgd", "before-sgd"):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    else:
        model.compile(optimizer=sr.AveragedAdam(sparse_updates=False))
    optimizer = model.optimizer

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    result = {"optimizer": type(optimizer).__name__, "users": users, "items": items,
              "sparse_updates": getattr(optimizer, "sparse_updates", None), "ms": {}}
    for batch_size in args.batch_sizes:
        frame = interactions((WARM_UP_STEPS + args.steps) * batch_size, users, items, SEED + batch_size)
        timer = StepTimer()
        model.fit(frame, batch_size=batch_size, epochs=1, callbacks=[timer], verbose=0)
        timed = np.asarray(timer.seconds[WARM_UP_STEPS:]) * 1000
        result["ms"][str(batch_size)] = {"median": float(np.median(timed)), "min": float(timed.min())}
    result["build_and_run_s"] = time.perf_counter() - start
    print(json.dumps(result), flush=True)


# --- the parent -----------------------------------------------------------------------


def available_bytes() -> int:
    """MemAvailable of /proc/meminfo (Linux); a large number elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


def estimate_bytes(rows: int, copies: float) -> int:
    """Tables x copies, plus 1.5 GB for TensorFlow and the data."""
    return int(rows * EMBEDDING_DIM * 4 * copies + 1.5e9)


def run_row(name: str, rows: int, library: Path, args) -> dict:
    """One worker subprocess: its JSON result, or {"error" | "skipped": why}."""
    _, copies, _ = {**OPTIMIZERS, **BEFORE}[name]
    need, have = estimate_bytes(rows, copies), available_bytes()
    if need > args.memory_fraction * have:
        return {"skipped": f"needs about {need / 1e9:.0f} GB, {have / 1e9:.0f} GB available"}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(library))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-rows", str(rows),
               "--steps", str(args.steps), "--batch-sizes", ",".join(map(str, args.batch_sizes))]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=library)
    results = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not results:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"error": f"exit {done.returncode}: {last[0][:200]}"}
    return json.loads(results[-1])


def print_table(results: dict, sizes: list[int], names: list[str], batch_sizes: list[int], key: str) -> None:
    """One line per optimizer: ms per step (`key`: "median" or "min" of the
    timed steps) at each size and batch size, then each optimizer's ratio
    to SGD of the same library."""
    labels = {**OPTIMIZERS, **BEFORE}
    header = ["optimizer"] + [f"{size:,} rows" for size in sizes]
    lines = [header]

    def cell(result):
        if "skipped" in result:
            return "skipped"
        if "error" in result:
            return "failed"
        return " / ".join(f"{result['ms'][str(b)][key]:.1f}" for b in batch_sizes)

    for name in names:
        lines.append([labels[name][0]] + [cell(results[name, size]) for size in sizes])
    for name in names:
        floor = "before-sgd" if labels[name][2] == "before" else "sgd"
        if name == floor or floor not in names:
            continue
        row = [f"{labels[name][0]} / SGD"]
        for size in sizes:
            a, b = results[name, size], results[floor, size]
            if "ms" in a and "ms" in b:
                row.append(" / ".join(f"{a['ms'][str(k)][key] / b['ms'][str(k)][key]:.2f}x" for k in batch_sizes))
            else:
                row.append("")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"ms per step ({'median' if key == 'median' else 'fastest'} of the timed steps) "
          f"at batch {' / '.join(map(str, batch_sizes))}")
    for n, line in enumerate(lines):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def better(a: dict | None, b: dict) -> dict:
    """Of two runs of one row, the one with the lower median step at the
    first batch size (a failure or skip loses)."""
    if a is None or "ms" not in a:
        return b
    if "ms" not in b:
        return a
    first = next(iter(a["ms"]))
    return b if b["ms"][first]["median"] < a["ms"][first]["median"] else a


def run_benchmark(args) -> None:
    names = list(args.optimizers) + (list(BEFORE) if args.before else [])
    libraries = {"after": ROOT, "before": Path(args.before).resolve() if args.before else None}
    print(f"TwoTowerModel(schema) defaults, ids {EMBEDDING_DIM} wide; {WARM_UP_STEPS} warm-up + {args.steps} "
          f"timed steps per batch size; {os.cpu_count()} CPUs" + (f"; before: {args.before}" if args.before else ""),
          flush=True)
    results = {}
    # Repeats go round every row before the next, so that a burst of outside
    # load hits one run of a row rather than all of it.
    for _ in range(args.repeats):
        for size in args.rows:
            users, items = split_rows(size)
            for name in names:
                started = time.perf_counter()
                result = run_row(name, size, libraries[{**OPTIMIZERS, **BEFORE}[name][2]], args)
                results[name, size] = better(results.get((name, size)), result)
                summary = result.get("skipped") or result.get("error") or ", ".join(
                    f"batch {b}: {result['ms'][str(b)]['median']:.1f} ms" for b in args.batch_sizes)
                print(f"  {size:,} rows ({users:,} users, {items:,} items), {name}: {summary} "
                      f"[{time.perf_counter() - started:.0f} s]", flush=True)
    for key in ("median", "min"):
        print()
        print_table(results, args.rows, names, args.batch_sizes, key)
    labels = {**OPTIMIZERS, **BEFORE}
    for (name, size), result in results.items():
        for reason in ("skipped", "error"):
            if reason in result:
                print(f"{labels[name][0]}, {size:,} rows: {reason}: {result[reason]}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: [parse_count(x) for x in s.split(",")],
                        default=[10_000, 150_000, 1_000_000, 10_000_000], help="table sizes, e.g. 10k,150k,1M,10M")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[128, 1024])
    parser.add_argument("--optimizers", type=lambda s: s.split(","), default=list(OPTIMIZERS),
                        help=f"some of {','.join(OPTIMIZERS)}")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per batch size")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of every row, interleaved; the one with the lower median is shown")
    parser.add_argument("--before", metavar="PATH", help="also run the default and SGD on the library at PATH")
    parser.add_argument("--memory-fraction", type=float, default=0.8,
                        help="skip a row whose estimated memory is over this share of the memory available")
    parser.add_argument("--pipeline", type=lambda s: [parse_count(x) for x in s.split(",")], metavar="SIZES",
                        help="instead: the whole pipeline (ETL, train, evaluate, export) at these numbers of "
                             "interactions, e.g. 1M,5M,20M (benchmarks/scale_pipeline.py)")
    parser.add_argument("--work", default="/tmp/schemaretrieval-scale", help="--pipeline: where its files go")
    parser.add_argument("--resume", action="store_true", help="--pipeline: keep the steps an earlier run finished")
    parser.add_argument("--taste", type=float, default=3.0,
                        help="--pipeline: how much users prefer their group's items (sr.data.raw_log)")
    parser.add_argument("--train-args", default="", help="--pipeline: more arguments of `schemaretrieval train`")
    parser.add_argument("--generate", type=parse_count, help=argparse.SUPPRESS)
    parser.add_argument("--generate-out", help=argparse.SUPPRESS)
    # Internal: what the parent passes to a worker subprocess.
    parser.add_argument("--worker", choices=[*OPTIMIZERS, *BEFORE], help=argparse.SUPPRESS)
    parser.add_argument("--worker-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.optimizers) - set(OPTIMIZERS)
    if unknown:
        parser.error(f"--optimizers: unknown {sorted(unknown)}; expected some of {list(OPTIMIZERS)}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        arguments.rows = arguments.worker_rows
        run_worker(arguments)
    elif arguments.generate:
        import scale_pipeline
        scale_pipeline.generate(arguments.generate, Path(arguments.generate_out), arguments.taste)
    elif arguments.pipeline:
        import scale_pipeline
        scale_pipeline.run_pipeline(arguments)
    else:
        run_benchmark(arguments)
