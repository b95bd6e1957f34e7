"""Training examples/s and full-catalog recall@10 of every built-in sampler
and output, on the same data, in one run: the skewed synthetic set, or the
e-commerce log (string ids, brand, category, price, tags; `sr.data.ecommerce`
through the ETL).

    python benchmarks/samplers.py [--rows 50000] [--epochs 3] [--skew 1.5]
    python benchmarks/samplers.py --shape ecommerce --rows 100000

Timings from separate runs on a shared machine vary: compare the rows of
one run with each other.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import keras
import pandas as pd

import schemaretrieval as sr

ROOT = Path(__file__).resolve().parents[1]


class EpochClock(keras.callbacks.Callback):
    """Times the epochs after the first (which includes tracing)."""

    def on_train_begin(self, logs=None):
        self.starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.starts.append(time.perf_counter())

    def examples_per_second(self, rows):
        timed = self.starts[1:] if len(self.starts) > 2 else self.starts
        return rows * (len(timed) - 1) / (timed[-1] - timed[0])


def configs(num_samples):
    def contrastive(samplers, logq=1.0):
        return lambda: sr.ContrastiveOutput(None, samplers, logits_temperature=0.1, logq_sampling_correction=logq)

    def pairwise(samplers, loss):
        return lambda: sr.BPROutput(samplers, loss=loss, logits_temperature=0.1, logq_sampling_correction=1.0)

    uniform = lambda: sr.UniformSampler(num_samples, seed=0)  # noqa: E731
    return {
        "contrastive in-batch, no logQ": lambda: contrastive("in-batch", logq=False)(),
        "contrastive in-batch + logQ": lambda: contrastive("in-batch")(),
        "contrastive uniform": lambda: contrastive(uniform())(),
        "contrastive popularity + logQ": lambda: contrastive(sr.PopularitySampler(num_samples, seed=0))(),
        "contrastive cross-batch + logQ": lambda: contrastive("cross-batch")(),
        "contrastive cross-batch, stale bank + logQ": lambda: contrastive(sr.CrossBatchSampler(refresh=False))(),
        "contrastive in-batch + uniform + logQ": lambda: contrastive(["in-batch", uniform()])(),
        **{f"pairwise {loss}, uniform": (lambda loss=loss: pairwise(uniform(), loss)())
           for loss in ("bpr", "bpr-max", "hinge", "logistic", "top1", "top1-max")},
        "pairwise bpr, in-batch + logQ": lambda: pairwise("in-batch", "bpr")(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["synthetic", "ecommerce"], default="synthetic")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skew", type=float, default=1.5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--only", default=None, help="run the configurations whose name contains this")
    args = parser.parse_args(argv)

    if args.shape == "ecommerce":
        raw_train, raw_test = sr.data.random_split(sr.data.ecommerce(args.rows, seed=1), 0.2, seed=1)
        out = sr.etl.fit_transform(raw_train, raw_test, ROOT / "schemas" / "ecommerce.yaml",
                                   tempfile.mkdtemp(prefix="samplers-"), device="cpu")
        schema = out.schema.excluding_by_name(["timestamp"])
        train, test = sr.data.read_table(out.train), sr.data.read_table(out.valid)
        interactions = pd.concat([train, test], ignore_index=True)
        shape = f"e-commerce log, {args.rows} rows"
    else:
        schema = sr.load_schema(ROOT / "schemas" / "synthetic.yaml")
        interactions = sr.data.synthetic(schema, args.rows, seed=1, popularity_skew=args.skew)
        train, test = sr.data.random_split(interactions, 0.2, seed=1)
        shape = f"{args.rows} rows (skew {args.skew})"
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    train_catalog = sr.data.Catalog.from_interactions(train, schema)
    popularity = sr.baselines.Popularity().fit(train, None, "item_id").evaluate_topk(
        test, candidate_ids=catalog.ids, ks=[10]
    )["recall@10"]
    print(f"{shape}, {len(catalog)} items, {args.epochs} epochs, batch {args.batch_size}, {os.cpu_count()} cores")
    print(f"| {'configuration':43s} | recall@10 | train ex/s |")
    print(f"| {'-' * 43} | --------- | ---------- |")
    print(f"| {'most popular items':43s} | {popularity:9.3f} | {'-':>10s} |")
    for name, make in configs(args.num_samples).items():
        if args.only and args.only not in name:
            continue
        keras.utils.set_random_seed(0)
        model = sr.TwoTowerModel(schema, outputs=make())
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        clock = EpochClock()
        # The catalog samplers draw from (and count) the training rows' items.
        model.fit(train, batch_size=args.batch_size, epochs=args.epochs, seed=0, verbose=0, callbacks=[clock],
                  catalog=train_catalog)
        recall = model.evaluate_topk(test, catalog, ks=[10])["recall@10"]
        print(f"| {name:43s} | {recall:9.3f} | {clock.examples_per_second(len(train)):10.0f} |", flush=True)


if __name__ == "__main__":
    main()
