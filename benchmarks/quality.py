"""TwoTowerModel(schema) with its defaults beside Popularity and EASE.

On the MovieLens-100K-shaped preset (sr.data.movielens_like), or with
--movielens DIR on a real GroupLens folder taken through the ETL as a user
would (sr.datasets.movielens, the bundled schema, sr.etl.fit_transform fitted
on the training part): a random 80/20 split, full-catalog recall@10 and @100
with and without each user's training items excluded, in one run, and the
recipe of docs/experiments/movielens-100k-search.md section 8 beside them.
docs/experiments/movielens-100k-search.md records the figures and the search that chose the defaults
(benchmarks/quality_search.py).

    python benchmarks/quality.py [--epochs 12] [--seed 0] [--movielens ~/data/ml-100k]

No MovieLens-100K at hand: benchmarks/movielens_from_recbole.py writes one
from the copy that the RecBole package ships on PyPI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from schemaretrieval.models.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS  # noqa: E402

COLUMNS = ("recall@10", "recall@100", "recall@10 excl", "recall@100 excl")


def preset(seed, num_users=943, num_items=1682, num_interactions=100_000):
    frame, schema = sr.data.movielens_like(num_users, num_items, num_interactions, seed=seed)
    train, test = sr.data.random_split(frame, 0.2, seed=seed)
    default = (num_users, num_items, num_interactions) == (943, 1682, 100_000)
    size = "" if default else f", {num_users} users, {num_items} items, {num_interactions} rows"
    return train, test, schema, f"movielens_like(seed={seed}{size})"


# Seconds in a week: `request_week` counts weeks since the Unix epoch.
WEEK = 7 * 24 * 3600


def movielens(path, seed, request_week=False, time_features=(), split="random"):
    """Raw ratings -> the variant's bundled schema -> the ETL fitted on the
    training part (held-out items it never saw go to the OOV id).

    Features of the rating's time join the query tower, as TFRS's
    featurization tutorial gives its query model the timestamp
    (docs/experiments/movielens-100k-search.md, round 10, says why the bundled schemas do not):
    `request_week`, the rating's week (`timestamp // WEEK`) as a categorical
    column, and `time_features`, the ETL's own time transforms of the
    timestamp (docs/etl.md: "hour", "day_of_week", "month", "normalize").
    `split` "time" holds out the last 20% of the ratings in time instead of
    a random 20% (`seed` then changes only the model)."""
    frame = sr.datasets.movielens(path)
    variant = sr.datasets.guess_variant(Path(path))
    schema_path = sr.datasets.movielens_schema_path(variant)
    out = Path(tempfile.mkdtemp(prefix="quality-etl-"))
    if request_week or time_features:
        spec = yaml.safe_load(Path(schema_path).read_text())
        if request_week:
            frame["request_week"] = frame["timestamp"] // WEEK
            spec["columns"]["request_week"] = {"tags": ["user", "categorical"], "dtype": "int64"}
        if time_features:
            spec["columns"]["timestamp"]["transform"] = list(time_features)
        schema_path = out / "schema-with-time-features.yaml"
        schema_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    if split == "time":
        raw_train, raw_test = sr.data.time_split(frame, "timestamp", test_fraction=0.2)
    else:
        raw_train, raw_test = sr.data.random_split(frame, 0.2, seed=seed)
    result = sr.etl.fit_transform(raw_train, raw_test, schema_path, out / "etl", device="cpu")
    schema = sr.load_schema(result.out_dir)
    read = sr.data.read_table
    extras = ([] if split == "random" else [f"{split} split"]) + (["request week"] if request_week else [])
    extras += [f"timestamp {'+'.join(time_features)}"] if time_features else []
    source = f"{variant} at {path} (ETL, seed {seed}{''.join(', ' + e for e in extras)})"
    return read(result.out_dir / "train"), read(result.out_dir / "valid"), schema, source


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--movielens", metavar="DIR", help="a GroupLens MovieLens folder instead of the preset")
    args = p.parse_args(argv)

    train, test, schema, source = (movielens(args.movielens, args.seed) if args.movielens
                                   else preset(args.seed))
    catalog = sr.data.Catalog.from_interactions(pd.concat([train, test], ignore_index=True), schema)
    items = catalog["item_id"].to_numpy()
    rows, seconds = {}, {}

    def both(evaluate):
        a, b = evaluate(None), evaluate(train)
        return {"recall@10": a["recall@10"], "recall@100": a["recall@100"],
                "recall@10 excl": b["recall@10"], "recall@100 excl": b["recall@100"]}

    start = time.perf_counter()
    pop = sr.baselines.Popularity().fit(train, "user_id", "item_id")
    rows["popularity"] = both(lambda ex: pop.evaluate_topk(test, candidate_ids=items, ks=(10, 100), exclude=ex))
    seconds["popularity"] = time.perf_counter() - start

    start = time.perf_counter()
    ease = sr.baselines.EASE().fit(train, "user_id", "item_id")
    rows["EASE (l2=500)"] = both(lambda ex: ease.evaluate_topk(test, candidate_ids=items, ks=(10, 100), exclude=ex))
    seconds["EASE (l2=500)"] = time.perf_counter() - start

    steps = args.epochs * -(-len(train) // DEFAULT_BATCH_SIZE)
    for name, kwargs, optimizer in (
        (f"TwoTowerModel defaults, {args.epochs} epochs", {}, lambda: None),  # compile(): the measured optimizer
        # docs/experiments/movielens-100k-search.md, section 8: the recipe for real data (the schedule needs the run's length)
        ("recipe: query-input dropout 0.4, cosine from 3e-3", {"query_input_dropout": 0.4},
         lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps))),
    ):
        start = time.perf_counter()
        keras.utils.set_random_seed(args.seed)
        model = sr.TwoTowerModel(schema, **kwargs)
        model.compile(optimizer=optimizer())
        model.fit(train, epochs=args.epochs, seed=args.seed, verbose=0)
        rows[name] = both(lambda ex: model.evaluate_topk(test, catalog, ks=(10, 100), exclude=ex))
        seconds[name] = time.perf_counter() - start

    print(f"{source}: {len(train)} train / {len(test)} test interactions, "
          f"{len(items)} items; 'excl' = each user's training items excluded")
    width = max(map(len, rows))
    print(" " * width + "".join(f"{c:>17}" for c in COLUMNS) + "  fit+eval s")
    for name, m in rows.items():
        print(f"{name:<{width}}" + "".join(f"{m[c]:>17.4f}" for c in COLUMNS) + f"  {seconds[name]:>10.1f}")
    return rows


if __name__ == "__main__":
    main()
