"""The GPU path, checked against the CPU path in one run: the script to run on a GPU machine.

    python benchmarks/gpu_check.py [--rows 10000000] [--out DIR]

1. The ETL of two inputs on every engine this machine has: the movielens-like
   preset (schemas/movielens-like.yaml) and a ``--rows`` raw log of string ids
   (schemas/raw-log.yaml, ``sr.data.raw_log``): on CPU (pandas), on one GPU
   (cudf) and on a ``dask_cuda.LocalCUDACluster`` of every visible GPU.
2. Each GPU output must equal the CPU one exactly: every encoded column,
   row by row, and the filled schema.
3. ``TwoTowerModel(schema)`` trains one epoch on the GPU ETL's output of the
   preset (on the device TensorFlow sees) and is exported with raw ids (on the
   CPU ETL's output when there is no GPU).
4. Prints rows/s of each ETL engine side by side and training examples/s.

Exits 1 on any difference. Without a visible GPU (or without cudf) it runs
the CPU half, says that the GPU half was skipped and why, and exits 0: CI runs
it that way (tests/test_gpu_check.py) at a small ``--rows``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import schemaretrieval as sr
from schemaretrieval import serving

ROOT = Path(__file__).resolve().parents[1]


def gpu_missing() -> str | None:
    """Why the GPU half cannot run here, or None."""
    try:
        sr.etl.select_device("gpu")
    except ValueError as err:  # no cudf or no GPU
        return str(err)
    return None


def run_etl(frame, schema, out, device, dask=None):
    start = time.perf_counter()
    result = sr.etl.fit_transform(frame, None, schema, out, device=device, dask=dask)
    return result, time.perf_counter() - start


def differences(expected, got) -> list[str]:
    """What differs between two ETL outputs: the schema, then each column of train."""
    found = []
    if sr.schema.schema_to_dict(expected.schema) != sr.schema.schema_to_dict(got.schema):
        found.append("the filled schema differs")
    a, b = sr.data.read_table(expected.train), sr.data.read_table(got.train)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return found + [f"train: columns {list(a.columns)} x {len(a)} rows against {list(b.columns)} x {len(b)}"]
    for name in a.columns:
        left, right = a[name].to_numpy(), b[name].to_numpy()
        if left.dtype == object:  # list columns: compare row by row
            same = all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(left, right))
        else:
            same = np.array_equal(left, right, equal_nan=left.dtype.kind == "f")
        if not same:
            found.append(f"train column {name!r} differs")
    return found


def train_and_export(etl_out, out_dir) -> dict:
    import tensorflow as tf

    model = sr.TwoTowerModel(etl_out.schema)
    model.compile()
    train = sr.data.read_table(etl_out.train)
    start = time.perf_counter()
    model.fit(train, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    catalog = sr.data.Catalog.from_interactions(train, etl_out.schema)
    export = serving.export_serving(model, catalog, out_dir / "export", k=10, artifacts=etl_out, exclude=train)
    devices = [d.name for d in tf.config.list_physical_devices("GPU")] or ["CPU"]
    return {"examples/s": len(train) / seconds, "devices": devices, "export": export}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the raw log (default 10M)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    preset, _ = sr.data.movielens_like(seed=0)
    inputs = {
        "movielens-like": (preset, sr.load_schema(ROOT / "schemas" / "movielens-like.yaml")),
        f"raw log ({args.rows:,} rows)": (sr.data.raw_log(args.rows, seed=0),
                                          sr.load_schema(ROOT / "schemas" / "raw-log.yaml")),
    }
    why_not = gpu_missing()
    rates, failures, outputs = [], [], {}
    for i, (name, (frame, schema)) in enumerate(inputs.items()):
        cpu, seconds = run_etl(frame, schema, out / f"{i}-cpu", "cpu")
        rates.append((name, "CPU (pandas)", len(frame) / seconds))
        outputs[name] = cpu
        if why_not is not None:
            continue
        gpu, seconds = run_etl(frame, schema, out / f"{i}-gpu", "gpu")
        rates.append((name, "GPU (cudf, 1 device)", len(frame) / seconds))
        failures += [f"{name}, GPU: {d}" for d in differences(cpu, gpu)]
        outputs[name] = gpu
        from dask_cuda import LocalCUDACluster
        from distributed import Client

        with LocalCUDACluster() as cluster, Client(cluster) as client:
            workers = len(client.scheduler_info()["workers"])
            clustered, seconds = run_etl(frame, schema, out / f"{i}-cluster", "gpu", dask=client)
        rates.append((name, f"LocalCUDACluster ({workers} GPU)", len(frame) / seconds))
        failures += [f"{name}, LocalCUDACluster: {d}" for d in differences(cpu, clustered)]

    print("\nETL rows/s (one run, this machine)")
    for name, engine, rate in rates:
        print(f"  {name:<28} {engine:<28} {rate:>12,.0f}")
    if why_not is not None:
        print(f"\nGPU half skipped: {why_not}")
    # On the GPU ETL's output when there is one; else the CPU's, so that CI runs this path too.
    trained = train_and_export(outputs["movielens-like"], out)
    print(f"\ntraining, 1 epoch on {', '.join(trained['devices'])}: {trained['examples/s']:,.0f} examples/s; "
          f"exported to {trained['export']}")
    if failures:
        print("\nDIFFERENCES:\n  " + "\n  ".join(failures))
        return 1
    print("\nno differences" if why_not is None else "\nCPU half ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
