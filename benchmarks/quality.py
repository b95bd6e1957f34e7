"""TwoTowerModel(schema) with its defaults beside Popularity and EASE, on every set at hand.

One command, one table: every real data set the repository can read and the
MovieLens-100K-shaped preset, each split at random 80/20 (seed fixed), with
full-catalog recall@10 and @100 without ("r@k") and with ("x@k") each user's
training items excluded, and each ranker's training seconds.

* MovieLens-100K with `--movielens DIR` (or found at $MOVIELENS_100K,
  ../data/ml-100k or ~/data/ml-100k), taken through the ETL as a user would
  (sr.datasets.movielens, the bundled schema, sr.etl.fit_transform fitted on
  the training part). No copy at hand: benchmarks/movielens_from_recbole.py
  writes one from the copy that the RecBole package ships on PyPI.
* Last.fm 2k with `--lastfm DIR` (default ../shared/data/lastfm-2k beside the
  repository, when it exists), through schemas/lastfm-2k.yaml and the ETL;
  and the same folder's friend graph (`lastfm_friends`: a user's friends as
  the items, ids only), a real set of another kind.
* The preset, sr.data.movielens_like (`--preset small`: 400 users, 700
  items, 30k rows, what tests/test_quality.py runs in CI).

EASE's l2 is chosen per column on a validation split cut from the training
part (a random 20% of its rows), never on the test part; the table names the
chosen l2 and gives the seconds of one fit at the x@10 choice (the search
over the grid is timed apart). docs/defaults.md shows the table and the
evidence behind each default; docs/experiments/movielens-100k-search.md and
docs/experiments/generalisation.md the searches.

    python benchmarks/quality.py [--movielens DIR] [--lastfm DIR] [--sets preset,movielens,lastfm,lastfm-friends]
        [--preset full|small] [--epochs N] [--seed 0] [--ease-l2 30,100,300,1000,3000] [--json PATH]
        [--recipe] [--dense-optimizer]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE, table_epochs  # noqa: E402

COLUMNS = ("r@10", "r@100", "x@10", "x@100")


def preset(seed, num_users=943, num_items=1682, num_interactions=100_000):
    frame, schema = sr.data.movielens_like(num_users, num_items, num_interactions, seed=seed)
    train, test = sr.data.random_split(frame, 0.2, seed=seed)
    default = (num_users, num_items, num_interactions) == (943, 1682, 100_000)
    size = "" if default else f", {num_users} users, {num_items} items, {num_interactions} rows"
    return train, test, schema, f"movielens_like(seed={seed}{size})"


def ecommerce(seed, num_users=2000, num_items=20_000, num_rows=100_000):
    """`sr.data.ecommerce`'s shop log (string ids; each product's brand, category,
    price and tags) through the bundled schema and the ETL fitted on a random 80%.
    Not a set of the table: `generalisation_search.py --data ecommerce` reads it,
    a second generator with item features for the few-users rule."""
    log = sr.data.ecommerce(num_rows, num_users=num_users, num_items=num_items, seed=seed)
    raw_train, raw_test = sr.data.random_split(log, 0.2, seed=seed)
    out = Path(tempfile.mkdtemp(prefix="quality-etl-"))
    return (*encoded(raw_train, raw_test, sr.schemas.schema_path("ecommerce"), out),
            f"ecommerce(seed={seed}, {num_users} users, {num_items} items, {num_rows} rows; ETL)")


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
    extras = ([] if split == "random" else [f"{split} split"]) + (["request week"] if request_week else [])
    extras += [f"timestamp {'+'.join(time_features)}"] if time_features else []
    return (*encoded(raw_train, raw_test, schema_path, out),
            f"{variant} at {path} (ETL, seed {seed}{''.join(', ' + e for e in extras)})")


def encoded(raw_train, raw_test, schema, out):
    """(train, test, schema) after the ETL, fitted on `raw_train`, as a user runs it, written under `out`."""
    result = sr.etl.fit_transform(raw_train, raw_test, schema, out / "etl", device="cpu")
    read = sr.data.read_table
    return read(result.out_dir / "train"), read(result.out_dir / "valid"), sr.load_schema(result.out_dir)


def lastfm(path, seed):
    """The Last.fm 2k folder (sr.datasets.lastfm: every (user, artist) pair a
    positive, the play count in `weight`) through the bundled schema and the
    ETL fitted on a random 80% (held-out artists it never saw go to the OOV id)."""
    raw_train, raw_test = sr.data.random_split(sr.datasets.lastfm(path), 0.2, seed=seed)
    out = Path(tempfile.mkdtemp(prefix="quality-etl-"))
    return (*encoded(raw_train, raw_test, sr.datasets.lastfm_schema_path(), out),
            f"lastfm-2k at {path} (ETL, seed {seed})")


# The friend graph's schema: a user's friends are the items; both ids are encoded by the ETL.
FRIENDS_SCHEMA = {"name": "lastfm-2k-friends", "columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"}}}


def lastfm_friends(path, seed):
    """The Last.fm 2k folder's friend graph as a third real set: one row per
    (user, friend) of user_friends.dat (each friendship is there both ways),
    the friend as the item; ids only. A source of another kind than the
    listening rows, tuned on by nothing, split and put through the ETL as
    `lastfm` is."""
    users = sr.datasets.lastfm(path)[["user_id", "user_friends"]].drop_duplicates("user_id")
    # users without friends have no rows here
    frame = users.explode("user_friends").dropna().rename(columns={"user_friends": "item_id"}).astype("int64")
    raw_train, raw_test = sr.data.random_split(frame.reset_index(drop=True), 0.2, seed=seed)
    out = Path(tempfile.mkdtemp(prefix="quality-etl-"))
    return (*encoded(raw_train, raw_test, sr.schema.schema_from_dict(FRIENDS_SCHEMA), out),
            f"lastfm-2k friends at {path} (ETL, seed {seed})")


def validation_split(train, seed, fraction=0.2):
    """A random `fraction` of the training rows, held out for every choice
    (EASE's l2, the defaults' rule): the test rows are never looked at."""
    return sr.data.random_split(train, fraction, seed=seed + 1000)


# Where a MovieLens-100K folder is looked for when --movielens is not given.
MOVIELENS_PLACES = ("$MOVIELENS_100K", "../data/ml-100k", "~/data/ml-100k")
DEFAULT_LASTFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-2k"
PRESETS = {"full": (943, 1682, 100_000), "small": (400, 700, 30_000)}
DEFAULT_EASE_L2 = "30,100,300,1000,3000"
SETS = ("preset", "movielens", "lastfm", "lastfm-friends")


def find_movielens():
    for place in MOVIELENS_PLACES:
        path = Path(os.path.expandvars(place)).expanduser()
        if "$" not in str(path) and (path / "u.data").is_file():
            return path
    return None


def both(evaluate, test, train):
    """r@10, r@100 (nothing excluded) and x@10, x@100 (each user's training items excluded)."""
    a, b = evaluate(test, None), evaluate(test, train)
    return {"r@10": a["recall@10"], "r@100": a["recall@100"], "x@10": b["recall@10"], "x@100": b["recall@100"]}


def ease_on_validation(train, test, items, grid, seed):
    """EASE with l2 chosen per column on a validation split of `train`:
    ({column: figure on test}, {column: l2}, seconds of one fit at the x@10
    choice, seconds of the search over `grid`, {l2: figures on validation})."""
    start = time.perf_counter()
    inner, valid = validation_split(train, seed)
    known = np.unique(train["item_id"].to_numpy())  # every item known at training time
    on_valid = {}
    for l2 in grid:
        ease = sr.baselines.EASE(l2).fit(inner, "user_id", "item_id")
        on_valid[l2] = both(lambda rows, ex: ease.evaluate_topk(rows, candidate_ids=known, ks=(10, 100), exclude=ex),
                            valid, inner)
        del ease
    search_s = time.perf_counter() - start
    chosen = {c: max(grid, key=lambda l2: on_valid[l2][c]) for c in COLUMNS}
    figures, fit_s = {}, {}
    for l2 in dict.fromkeys(chosen[c] for c in ("x@10", "r@10", "x@100", "r@100")):
        start = time.perf_counter()
        ease = sr.baselines.EASE(l2).fit(train, "user_id", "item_id")
        fit_s[l2] = time.perf_counter() - start
        m = both(lambda rows, ex: ease.evaluate_topk(rows, candidate_ids=items, ks=(10, 100), exclude=ex), test, train)
        figures.update({c: m[c] for c in COLUMNS if chosen[c] == l2})
        del ease
    return figures, chosen, fit_s[chosen["x@10"]], search_s, on_valid


def run_set(train, test, schema, *, epochs=None, seed=0, ease_grid=(30.0, 100.0, 300.0, 1000.0, 3000.0),
            recipe=False, dense_optimizer=False):
    """The rows of one data set: {ranker: {column: recall, "train s": seconds, ...}}."""
    catalog = sr.data.Catalog.from_interactions(pd.concat([train, test], ignore_index=True), schema)
    items = catalog.ids
    rows = {}

    start = time.perf_counter()
    pop = sr.baselines.Popularity().fit(train, "user_id", "item_id")
    fit_s = time.perf_counter() - start
    rows["Popularity"] = {**both(lambda r, ex: pop.evaluate_topk(r, candidate_ids=items, ks=(10, 100), exclude=ex),
                                 test, train), "train s": fit_s}

    figures, chosen, fit_s, search_s, on_valid = ease_on_validation(train, test, items, list(ease_grid), seed)
    l2s = "/".join(f"{chosen[c]:g}" for c in COLUMNS)
    rows[f"EASE, l2 {l2s} (validation)"] = {**figures, "train s": fit_s, "l2 search s": search_s,
                                             "l2": {c: chosen[c] for c in COLUMNS},
                                             "validation": {f"{l2:g}": m for l2, m in on_valid.items()}}

    # what fit takes when none is given (the rule of docs/defaults.md), for the name and the recipe's schedule
    run_epochs = epochs or table_epochs(train, "item_id")
    steps = run_epochs * -(-len(train) // DEFAULT_BATCH_SIZE)
    # compile() with no optimizer: the measured one
    models = [(f"TwoTowerModel(schema) defaults, {run_epochs} epochs", {}, lambda: None)]
    if dense_optimizer:  # every row and the average moved at every step, as before the sparse updates
        models.append(("  the same, dense AveragedAdam", {}, lambda: sr.AveragedAdam(sparse_updates=False)))
    if recipe:  # docs/experiments/movielens-100k-search.md, section 8: the schedule needs the run's length
        models.append(("recipe: query-input dropout 0.4, cosine from 3e-3", {"query_input_dropout": 0.4},
                       lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps))))
    for name, kwargs, optimizer in models:
        keras.utils.set_random_seed(seed)
        model = sr.TwoTowerModel(schema, **kwargs)
        model.compile(optimizer=optimizer())
        start = time.perf_counter()
        model.fit(train, epochs=epochs, seed=seed, verbose=0)  # epochs None: fit's own rule
        fit_s = time.perf_counter() - start
        rows[name] = {**both(lambda r, ex: model.evaluate_topk(r, catalog, ks=(10, 100), exclude=ex), test, train),
                      "train s": fit_s}
    return rows


def table(results):
    """One table: a row per (data set, ranker)."""
    width = max(len(name) for rows in results.values() for name in rows)
    data_width = max(len(d) for d in results)
    lines = [f"{'data':<{data_width}}  {'ranker':<{width}}" + "".join(f"{c:>8}" for c in COLUMNS) + "  train s"]
    for data, rows in results.items():
        for name, m in rows.items():
            lines.append(f"{data:<{data_width}}  {name:<{width}}" + "".join(f"{m[c]:>8.4f}" for c in COLUMNS)
                         + f"  {m['train s']:>7.1f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help="the model's epochs (default: fit's own, by the rows per item)")
    p.add_argument("--seed", type=int, default=0, help="the 80/20 split's seed and the model's")
    p.add_argument("--movielens", metavar="DIR", help="a GroupLens MovieLens folder (default: found at "
                                                       + ", ".join(MOVIELENS_PLACES) + ")")
    p.add_argument("--lastfm", metavar="DIR", help=f"the Last.fm 2k folder (default: {DEFAULT_LASTFM} if there)")
    p.add_argument("--sets", default=",".join(SETS), help="which of " + ", ".join(SETS) + " to run, when at hand")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--ease-l2", default=DEFAULT_EASE_L2, help="EASE's l2 grid, searched on the validation split")
    p.add_argument("--recipe", action="store_true", help="add docs/experiments/movielens-100k-search.md section 8's recipe row")
    p.add_argument("--dense-optimizer", action="store_true",
                   help="add the defaults trained with AveragedAdam(sparse_updates=False): every row moved at every step")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        p.error(f"--sets: unknown {unknown}; choose from {', '.join(SETS)}")

    loaders = {}
    if "preset" in sets:
        loaders["preset"] = lambda: preset(args.seed, *PRESETS[args.preset])
    movielens_dir = args.movielens or find_movielens()
    if "movielens" in sets:
        if movielens_dir is not None:
            loaders["movielens"] = lambda: movielens(movielens_dir, args.seed)
        else:
            print("MovieLens-100K: not run (no --movielens DIR, none found at " + ", ".join(MOVIELENS_PLACES) + ")")
    lastfm_dir = args.lastfm or (DEFAULT_LASTFM if DEFAULT_LASTFM.is_dir() else None)
    for key, load in (("lastfm", lastfm), ("lastfm-friends", lastfm_friends)):
        if key in sets:
            if lastfm_dir is not None:
                loaders[key] = (lambda load: lambda: load(lastfm_dir, args.seed))(load)
            else:
                print(f"{key}: not run (no --lastfm DIR, and {DEFAULT_LASTFM} does not exist)")

    results, sources = {}, {}
    grid = [float(x) for x in args.ease_l2.split(",") if x]
    for key, load in loaders.items():
        train, test, schema, source = load()
        name = {"preset": "preset" + ("" if args.preset == "full" else " (small)"), "movielens": "ML-100K",
                "lastfm": "Last.fm 2k",
                "lastfm-friends": "Last.fm friends"}[key]
        sources[name] = f"{source}: {len(train)} train / {len(test)} test rows"
        print(sources[name], flush=True)
        results[name] = run_set(train, test, schema, epochs=args.epochs, seed=args.seed, ease_grid=grid,
                                recipe=args.recipe, dense_optimizer=args.dense_optimizer)
    print("\nr@k: recall@k over the whole catalog; x@k: each user's training items excluded; "
          "train s: one fit (EASE: at the x@10 l2; its search over the grid is in the JSON)")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"sources": sources, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
