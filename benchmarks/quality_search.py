"""The measured search behind TwoTowerModel's defaults (docs/quality.md).

On the MovieLens-100K-shaped preset (random 80/20 split, seed 0), trains
TwoTowerModel(schema) with one option changed at a time from the defaults and
reports full-catalog recall@10/@100, with and without each user's training
items excluded, after several epoch counts (one run per config, evaluated as
it trains). Popularity and EASE are printed beside it.

    python benchmarks/quality_search.py [--configs name,...] [--epochs 1,2,3,5,8]

Output: one line per (config, epochs), also appended as JSON lines to
--out (default runs/quality_search.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import schemaretrieval as sr  # noqa: E402

# name -> (TwoTowerModel kwargs, learning rate, batch size)
CONFIGS = {
    "default": ({}, 1e-3, 1024),
    "temp0.05": ({"logits_temperature": 0.05}, 1e-3, 1024),
    "temp0.2": ({"logits_temperature": 0.2}, 1e-3, 1024),
    "no-logq": ({"logq_correction": False}, 1e-3, 1024),
    "dims128": ({"query_units": (128,), "candidate_units": (128,)}, 1e-3, 1024),
    "mlp128-64": ({"query_units": (128, 64), "candidate_units": (128, 64)}, 1e-3, 1024),
    "lr3e-3": ({}, 3e-3, 1024),
    "batch256": ({}, 1e-3, 256),
    "temp0.05-lr3e-3": ({"logits_temperature": 0.05}, 3e-3, 1024),
    # second round, around the best of the first
    "temp0.3": ({"logits_temperature": 0.3}, 1e-3, 1024),
    "temp0.5": ({"logits_temperature": 0.5}, 1e-3, 1024),
    "temp0.2-lr3e-3": ({"logits_temperature": 0.2}, 3e-3, 1024),
    "temp0.2-dims128": ({"logits_temperature": 0.2, "query_units": (128,), "candidate_units": (128,)}, 1e-3, 1024),
    "batch256-temp0.2": ({"logits_temperature": 0.2}, 1e-3, 256),
    "batch128": ({}, 1e-3, 128),
    "batch128-temp0.2": ({"logits_temperature": 0.2}, 1e-3, 128),
    "batch256-dims128": ({"query_units": (128,), "candidate_units": (128,)}, 1e-3, 256),
}


def baselines(train, test, candidates, ks=(10, 100)):
    rows = {}
    for name, model in (
        ("popularity", sr.baselines.Popularity().fit(train, "item_id", user_id_col="user_id")),
        ("ease", sr.baselines.EASE(500.0).fit(train, "user_id", "item_id")),
    ):
        a = model.evaluate_topk(test, candidate_ids=candidates, ks=ks)
        b = model.evaluate_topk(test, candidate_ids=candidates, ks=ks, exclude=train)
        rows[name] = {**{f"recall@{k}": a[f"recall@{k}"] for k in ks}, **{f"recall@{k} excl": b[f"recall@{k}"] for k in ks}}
    return rows


def fmt(name, m):
    return f"{name:<22} " + " ".join(f"{m[c]:.3f}" for c in ("recall@10", "recall@100", "recall@10 excl", "recall@100 excl"))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--epochs", default="1,2,3,5,8,12")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/quality_search.jsonl")
    args = p.parse_args(argv)
    frame, schema = sr.data.movielens_like(seed=args.seed)
    train, test = sr.data.random_split(frame, 0.2, seed=args.seed)
    catalog = sr.data.candidate_table(frame, schema)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    print("config                 r@10  r@100 r@10x r@100x  (x: training items excluded)")
    for name, m in baselines(train, test, catalog["item_id"].to_numpy()).items():
        print(fmt(name, m), flush=True)
    checkpoints = [int(e) for e in args.epochs.split(",")]
    for name in args.configs.split(","):
        kwargs, lr, batch = CONFIGS[name]
        keras.utils.set_random_seed(args.seed)
        model = sr.TwoTowerModel(schema, **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(lr))
        done, seconds = 0, 0.0
        for epochs in checkpoints:
            start = time.perf_counter()
            model.fit(train, batch_size=batch, epochs=epochs, initial_epoch=done, seed=args.seed, verbose=0)
            seconds += time.perf_counter() - start
            done = epochs
            a = model.evaluate_topk(test, catalog, ks=[10, 100])
            b = model.evaluate_topk(test, catalog, ks=[10, 100], exclude=train)
            m = {"recall@10": a["recall@10"], "recall@100": a["recall@100"],
                 "recall@10 excl": b["recall@10"], "recall@100 excl": b["recall@100"]}
            print(fmt(f"{name} ep{epochs}", m) + f"  ({seconds:.0f} s)", flush=True)
            with out.open("a") as f:
                f.write(json.dumps({"config": name, "epochs": epochs, "lr": lr, "batch": batch, **kwargs, **m, "train_s": seconds}, default=list) + "\n")


if __name__ == "__main__":
    main()
