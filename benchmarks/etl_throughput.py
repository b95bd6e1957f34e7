"""Rows/second of the ETL on CPU beside the same transforms in pandas: one process, one run.

Generated interactions: user_id and item_id (popularity-skewed ints) -> Categorify,
price -> fill_missing + log + normalize. Two measurements on the same frame, each
timed for pandas and then for NVTabular:

* in memory: fit and transform into a DataFrame, nothing written. NVTabular:
  ``etl.inputs.read_input``, ``etl.build_workflow``, ``Workflow.fit`` and
  ``Workflow.transform(...).to_ddf().compute()``, under the settings
  ``fit_transform`` runs with (dask's threaded scheduler, ``etl.engine.copy_on_write``).
  pandas: vocabularies by ``value_counts`` (most frequent first, as Categorify),
  a lookup, log1p and the normalisation.
* to parquet: ``sr.etl.fit_transform(frame, None, schema, out_dir)`` as users run it
  (fit, transform, write the parquet, save the workflow, scan the output for the
  OOV and item counts, write the schema and the report) beside the pandas
  transforms above followed by ``DataFrame.to_parquet``.

Both sides run once on 10,000 rows first, untimed, so that imports and first calls
count for neither. Times are wall-clock seconds; the process's CPU seconds are
printed beside them, a check for a machine shared with other work, where wall
time drifts.

    python benchmarks/etl_throughput.py --rows 10000000
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from schemaretrieval import etl
from schemaretrieval.schema import schema_from_dict

SCHEMA = schema_from_dict({"name": "bench", "columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
    "price": {"tags": ["item", "continuous"], "dtype": "float32", "transform": ["fill_missing", "log", "normalize"]},
}})


def generate(rows, seed=0):
    rng = np.random.default_rng(seed)
    price = rng.lognormal(2.0, 1.0, rows)
    price[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame({"user_id": rng.integers(0, 100_000, rows),
                         "item_id": np.minimum(rng.zipf(1.3, rows), 50_000),
                         "price": price})


def with_pandas(frame):
    out = {}
    for name in ("user_id", "item_id"):
        counts = frame[name].value_counts()  # most frequent first, as Categorify
        codes = pd.Series(np.arange(3, 3 + len(counts)), index=counts.index)
        out[name] = codes.reindex(frame[name].to_numpy()).fillna(2).to_numpy(np.int64)
    x = np.log1p(frame["price"].fillna(0).clip(lower=0))
    out["price"] = ((x - x.mean()) / x.std()).astype("float32").to_numpy()
    return pd.DataFrame(out)


def with_nvtabular(frame, partitions, stats_path):
    import dask
    import nvtabular as nvt

    workflow = etl.build_workflow(SCHEMA, stats_path=stats_path)
    with dask.config.set(scheduler="threads"), warnings.catch_warnings(), \
            pd.option_context("mode.copy_on_write", etl.engine.copy_on_write(SCHEMA, workflow)):
        warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
        dataset = nvt.Dataset(etl.inputs.read_input(frame, SCHEMA, "cpu", npartitions=partitions)[0], cpu=True)
        workflow.fit(dataset)
        return workflow.transform(dataset).to_ddf().compute()


def pandas_to_parquet(frame, out_dir):
    with_pandas(frame).to_parquet(Path(out_dir) / "train.parquet", index=False)
    return len(frame)


def nvtabular_to_parquet(frame, partitions, out_dir):
    return etl.fit_transform(frame, None, SCHEMA, out_dir, device="cpu", npartitions=partitions).report[
        "train"]["rows"]


def timed(run):
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=None,
                        help="partitions of the frame (default: fit_transform's, one per 500k rows, at most 8)")
    args = parser.parse_args()
    frame = generate(args.rows)
    parts = args.partitions or max(1, min(8, args.rows // 500_000 + 1))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {
            "in memory (fit + transform, nothing written)": {
                "pandas": lambda data: len(with_pandas(data)),
                "nvtabular-cpu": lambda data: len(with_nvtabular(data, args.partitions, tmp / "stats")),
            },
            "to parquet (sr.etl.fit_transform beside pandas + DataFrame.to_parquet)": {
                "pandas": lambda data: pandas_to_parquet(data, tmp / "pandas"),
                "nvtabular-cpu": lambda data: nvtabular_to_parquet(data, args.partitions, tmp / "nvtabular"),
            },
        }
        (tmp / "pandas").mkdir()
        for runs in cases.values():  # warm up: imports and first calls, untimed
            for run in runs.values():
                run(frame.head(10_000))
        results = {}
        for case, runs in cases.items():
            for name, run in runs.items():
                rows, wall, cpu = timed(lambda: run(frame))
                assert rows == args.rows, (case, name, rows)
                results[case, name] = (wall, cpu)
    print(f"{args.rows:,} rows, {parts} partitions (one process, one run; wall seconds, CPU seconds)")
    for case in cases:
        print(f"  {case}")
        for name in ("pandas", "nvtabular-cpu"):
            wall, cpu = results[case, name]
            print(f"    {name:<14} {wall:7.2f} s  {args.rows / wall / 1e6:6.2f} M rows/s   CPU {cpu:7.2f} s")
        (pw, pc), (nw, nc) = results[case, "pandas"], results[case, "nvtabular-cpu"]
        print(f"    nvtabular / pandas: {nw / pw:.1f}x wall, {nc / pc:.1f}x CPU")


if __name__ == "__main__":
    main()
