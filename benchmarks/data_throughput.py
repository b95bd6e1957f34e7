"""Batches/second feeding training from processed parquet, every path in one run.

Generated interactions of schemas/synthetic.yaml (ids, continuous values and a
list column, as the ETL writes them) are written as parquet files of
--row-group rows per row group, then read for --epochs epochs, shuffled, by

* in-memory:  ``to_tf_dataset(dir, streaming=False)``: the whole table read and
  converted once (time reported apart), batches sliced from tensors;
* streaming:  ``to_tf_dataset(dir, streaming=True)``: row group by row group,
  shuffle buffer of --shuffle-buffer rows (what ``model.fit(dir)`` does above the
  size threshold);
* merlin:     ``merlin.dataloader.tensorflow.Loader`` on a ``merlin.io.Dataset``
  of the same files (its own batch format: ragged lists as values/offsets,
  the target apart, no range checks), for comparison; --no-merlin skips it.

Each batch is touched (its item ids summed) so that nothing is left lazy. The
first epoch includes the warm-up (tracing, the first reads); later epochs
are the steady state.

    python benchmarks/data_throughput.py --rows 2000000 --batch-size 1024 --epochs 2
"""

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import schemaretrieval as sr
from schemaretrieval.data.batches import to_tf_dataset

ROOT = Path(__file__).resolve().parents[1]


def write(directory, rows, files, row_group, seed=0):
    schema = sr.load_schema(ROOT / "schemas" / "synthetic.yaml")
    frame = sr.data.synthetic(schema, rows, seed=seed)
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for i in range(files):
        frame.iloc[bounds[i]:bounds[i + 1]].to_parquet(
            os.path.join(directory, f"part_{i}.parquet"), row_group_size=row_group, index=False)
    return schema


def epochs_of(make, epochs, touch):
    """(seconds to build, [batches/s per epoch], batches per epoch)."""
    start = time.perf_counter()
    data = make()
    built = time.perf_counter() - start
    rates, count = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        count = 0
        for batch in data:
            touch(batch)
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return built, rates, count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--row-group", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shuffle-buffer", type=int, default=None)
    parser.add_argument("--no-merlin", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    def touch(batch):
        features = batch[0] if isinstance(batch, tuple) else batch
        tf.reduce_sum(features["item_id"]).numpy()

    with tempfile.TemporaryDirectory() as directory:
        schema = write(directory, args.rows, args.files, args.row_group)
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(directory, "*.parquet")))
        print(f"{args.rows:,} rows in {args.files} files ({size / 2**20:.0f} MiB on disk), "
              f"row groups of {args.row_group:,}, batch {args.batch_size}, shuffled, {args.epochs} epochs, "
              f"{os.cpu_count()} cores")
        paths = {
            "in-memory": lambda: to_tf_dataset(directory, schema, args.batch_size, shuffle=True, seed=0,
                                                      streaming=False),
            "streaming": lambda: to_tf_dataset(directory, schema, args.batch_size, shuffle=True, seed=0,
                                                      streaming=True, shuffle_buffer=args.shuffle_buffer),
        }
        if not args.no_merlin:
            def merlin_loader():
                from merlin.dataloader.tensorflow import Loader
                from merlin.io import Dataset

                files = sorted(glob.glob(os.path.join(directory, "*.parquet")))
                return Loader(Dataset(files, engine="parquet", schema=schema, cpu=True),
                              batch_size=args.batch_size, shuffle=True, seed_fn=lambda: 0)

            paths["merlin Loader"] = merlin_loader
        print(f"{'path':<14} {'setup s':>8} " + " ".join(f"{'epoch ' + str(i + 1) + ' b/s':>13}"
                                                         for i in range(args.epochs)) + "  batches")
        for name, make in paths.items():
            built, rates, count = epochs_of(make, args.epochs, touch)
            print(f"{name:<14} {built:>8.2f} " + " ".join(f"{r:>13.0f}" for r in rates) + f"  {count}")


if __name__ == "__main__":
    main()
