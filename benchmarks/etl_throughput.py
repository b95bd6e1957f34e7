"""Rows/second of the schema's NVTabular workflow on CPU vs the same transforms in pandas, one run.

Generated interactions: user_id and item_id (popularity-skewed ints) -> Categorify,
price -> fill_missing + log + normalize. Both sides fit on the data and transform it
in memory (no parquet writing); the pandas side encodes by frequency like Categorify.

    python benchmarks/etl_throughput.py --rows 10000000 --partitions 4
"""

import argparse
import time

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


def with_nvtabular(frame, partitions):
    import dask

    ddf, _ = etl._read(frame, SCHEMA, "cpu", npartitions=partitions)
    import nvtabular as nvt

    workflow = etl.build_workflow(SCHEMA, stats_path="/tmp/etl_bench_stats")
    dataset = nvt.Dataset(ddf, cpu=True)
    with dask.config.set(scheduler="threads"):
        workflow.fit(dataset)
        return workflow.transform(dataset).to_ddf().compute()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    frame = generate(args.rows)
    results = {}
    for name, run in (("pandas", lambda: with_pandas(frame)),
                      ("nvtabular-cpu", lambda: with_nvtabular(frame, args.partitions))):
        start = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - start
        assert len(out) == args.rows
        results[name] = (seconds, args.rows / seconds)
    print(f"{args.rows:,} rows, {args.partitions} partitions (one run, same process)")
    for name, (seconds, rate) in results.items():
        print(f"  {name:<14} {seconds:7.2f} s  {rate / 1e6:6.2f} M rows/s")
    print(f"  pandas / nvtabular: {results['nvtabular-cpu'][0] / results['pandas'][0]:.1f}x")


if __name__ == "__main__":
    main()
