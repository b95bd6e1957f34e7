"""ContrastiveOutput's `downscore_false_negatives`, on and off, measured on a
validation split of the training data (the test split is not read).

Merlin Models' default is on: a negative with the row's own item id (an
in-batch duplicate of a popular item) gets `false_negative_score` and so
leaves the softmax. This library shipped it off, as TFRS's default
(`remove_accidental_hits=False`). Two configurations, each with the option on
and off: `TwoTowerModel(schema)`'s defaults (in-batch + logQ, temperature
0.2, batch 128), and the two MLP towers of Merlin's retrieval notebook
(examples/07: `MLPBlock([128, 64])`, in-batch, temperature 1, Adam, batch
1024). Full-catalog recall@10 / @100 on the validation split, with and
without each user's training items excluded, averaged over seeds.

    python benchmarks/false_negatives.py [--movielens ~/data/ml-100k] [--seeds 0 1] [--epochs 12]

Without --movielens: the MovieLens-100K-shaped preset (sr.data.movielens_like).
docs/migrating.md records the figures and the decision.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from benchmarks.quality import movielens, preset  # noqa: E402
from schemaretrieval.models.defaults import DEFAULT_LOGQ_CORRECTION, DEFAULT_TEMPERATURE  # noqa: E402


def defaults_model(schema, downscore):
    items = sr.schema.cardinality(schema[sr.schema.item_id_column(schema)])
    output = sr.ContrastiveOutput(
        None, sr.InBatchSampler(num_items=items), logits_temperature=DEFAULT_TEMPERATURE,
        downscore_false_negatives=downscore, logq_sampling_correction=DEFAULT_LOGQ_CORRECTION)
    return sr.TwoTowerModel(schema, outputs=output), None, 128


def notebook_model(schema, downscore):
    def tower(columns):
        return sr.Encoder(columns, sr.MLPBlock([128, 64], no_activation_last_layer=True))

    output = sr.ContrastiveOutput(None, "in-batch", downscore_false_negatives=downscore)
    model = sr.TwoTowerModelV2(tower(sr.schema.query_schema(schema)), tower(sr.schema.candidate_schema(schema)),
                               outputs=output, schema=schema)
    return model, "adam", 1024


CONFIGS = {"TwoTowerModel defaults": defaults_model, "Merlin notebook towers": notebook_model}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--movielens", metavar="DIR")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=12)
    args = p.parse_args(argv)

    results = []
    for seed in args.seeds:
        train, _test, schema, source = movielens(args.movielens, seed) if args.movielens else preset(seed)
        fit, valid = sr.data.random_split(train, 0.1, seed=seed + 100)
        catalog = sr.data.Catalog.from_interactions(train, schema)
        for config, build in CONFIGS.items():
            for downscore in (True, False):
                start = time.perf_counter()
                keras.utils.set_random_seed(seed)
                model, optimizer, batch_size = build(schema, downscore)
                model.compile(optimizer=optimizer)
                model.fit(fit, batch_size=batch_size, epochs=args.epochs, seed=seed, verbose=0)
                plain = model.evaluate_topk(valid, catalog, ks=(10, 100))
                excl = model.evaluate_topk(valid, catalog, ks=(10, 100), exclude=fit)
                results.append({"config": config, "downscore_false_negatives": downscore, "seed": seed,
                                "recall@10": plain["recall@10"], "recall@100": plain["recall@100"],
                                "recall@10 excl": excl["recall@10"], "recall@100 excl": excl["recall@100"],
                                "seconds": time.perf_counter() - start})
                print(source, results[-1], flush=True)
    table = pd.DataFrame(results)
    mean = table.groupby(["config", "downscore_false_negatives"], sort=False).mean(numeric_only=True)
    print(f"\n{source}; validation = 10% of the training split, {len(args.seeds)} seeds, {args.epochs} epochs")
    print(mean.drop(columns=["seed"]).round(4).to_string())
    return table


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
