"""The search behind issue #28: which defaults hold on real data they were not tuned on.

Every choice is made on a validation split cut from the training part (a random
20% of its rows, `quality.validation_split`); the test part is read only with
`--stage test`, for the configuration chosen. Data: Last.fm 2k (`--data lastfm`),
its friend graph (`--data lastfm-friends`), real MovieLens-100K (`--data movielens
--movielens DIR`), the preset (`--data preset`) or the generated shop log (`--data
ecommerce`, `quality.ecommerce`). Each config trains once and is read after each of `--epochs`
(fit ends on the optimizer's average of the weights; training goes on from the
weights the epoch ended on), with recall@10/@100 without ("r@k") and with
("x@k") each user's training items excluded, and the seconds spent in `fit`.
EASE runs for each l2 of `--ease-l2`, Popularity once. `--members N` trains N models
of each config (seeds `--seed` to `--seed + N - 1`) and reads their summed
scores: the towers' outputs side by side, one two-tower model again.

    python benchmarks/generalisation_search.py --data lastfm [--lastfm DIR] --configs defaults,temp0.1 \\
        --epochs 4,8,12,16,24 [--stage valid|test] [--seed 0] [--preset-shape USERS,ITEMS,ROWS]

A config is a name of CONFIGS or `TwoTowerModel` keyword arguments written
out, e.g. ``id_embedding_dim=128/logits_temperature=0.15`` (``uniform=256``
adds that many uniform negatives beside the in-batch ones; ``popularity_term=B``
ranks with B times log(1 + training count) added to each logit, `with_popularity_term`;
``learned-prior`` learns B in training, `LearnedPopularity`; ``svd_init=S`` starts the id tables
from the training matrix's SVD at scale S, `init_ids_from_svd`). A config whose model asks for
``item_id_start="svd"`` starts its item-id table as `fit` does, from the rows it trains on
(`sr.training.start_item_ids`).

`--thin FRACTION`, `--users FRACTION` and `--min-item-rows K` derive a set of
another shape from the training part before the validation split is cut
(`derive`): a random share of its rows (sparser in items and users), of its
users (sparser in items, each user's rows kept), or only the items with at
least K rows (denser); with `--users`, `--stage test` reads the test rows of
the users kept. The ETL is fitted before the cut, so a derived set's schema
keeps the whole set's domains: the few-users rule, which reads them, is
measured here through its options written out.
docs/experiments/generalisation.md uses them to ask whether a lever follows
the data's shape or its source.

Output: the set's shape and its popularity share (`popularity_share`), then
one line per (config, epochs), also appended as JSON lines to --out
(default runs/generalisation.jsonl). docs/experiments/generalisation.md has
the figures.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import sparse  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from quality import ecommerce, lastfm, lastfm_friends, movielens, preset, validation_split  # noqa: E402
from schemaretrieval.models.defaults import DEFAULT_LOGQ_CORRECTION, DEFAULT_TEMPERATURE  # noqa: E402
from schemaretrieval.retrieval.outputs.base import PROBABILITY_FLOOR  # noqa: E402
from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE  # noqa: E402
from schemaretrieval.schema import cardinality  # noqa: E402
from schemaretrieval.schema.columns import domain_name  # noqa: E402
from schemaretrieval.training.svd_start import item_id_table, top_singular_vectors  # noqa: E402

DEFAULT_LASTFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-2k"


class TrainingWeights(keras.callbacks.Callback):
    """Keeps the weights each epoch ends on: `fit` with the defaults'
    averaged optimizer ends by writing the average into them, which is what
    each epoch count is read at, and `restore` puts the training weights
    back for the next `fit` to go on from (as sr.training.fit does)."""

    def on_epoch_end(self, epoch, logs=None):
        self.values = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables]

    def restore(self):
        for variable, value in zip(self.model.trainable_variables, self.values):
            variable.assign(value)


def spec(kwargs=None, optimizer=None, batch=None, weight=None, drop=(), popularity_term=0.0, loss=None,
         svd_init=0.0, svd_power=0.5, svd_tables="users:items"):
    """kwargs: schema -> TwoTowerModel kwargs; optimizer: None (the defaults') or a factory;
    loss: None (the output's) or a factory of `compile(loss=)`'s;
    weight: None or a function of the schema's target column (Last.fm's play count, ML-100K's rating):
    the sample weight, scaled to mean 1;
    drop: query/item columns the model does not read; popularity_term: `with_popularity_term`'s beta
    ("learned": the model's `LearnedPopularity` coefficient);
    svd_init, svd_power, svd_tables: `init_ids_from_svd`'s scale (0: Keras's initialiser), power and tables
    (":"-separated)."""
    return {"kwargs": kwargs or (lambda s: {}), "optimizer": optimizer, "loss": loss, "batch": batch, "weight": weight,
            "drop": tuple(drop), "popularity_term": popularity_term,
            "svd_init": svd_init, "svd_power": svd_power, "svd_tables": tuple(svd_tables.split(":"))}


def id_table(tower, column):
    """The embedding table (a Keras variable) that `tower` reads `column` through."""
    block = tower.inputs_block
    return block.tables[domain_name(block.schema[column])].table.embeddings


def init_ids_from_svd(model, train, scale, power=0.5, tables=("users", "items")):
    """Starts the user-id and item-id tables from the truncated SVD of the training rows' user x item
    matrix (ones where a user has an item): the user rows ``U S^power``, the item rows ``V S^power``,
    in the tables' first k = min(widths) columns, scaled to a standard deviation of ``scale`` (Keras's
    uniform initialiser has 0.029); the rest of each table, and a table not in ``tables``, keeps its
    initial values. The item table alone is `sr.training.start_item_ids` at k = the item table's
    width; both come from the library's `top_singular_vectors`. Returns S."""
    users = id_table(model.query_tower, model.query_id_column)
    items = item_id_table(model)
    rows = train[[model.query_id_column, model.candidate_id_column]].drop_duplicates().to_numpy()
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows[:, 0], rows[:, 1])), shape=(users.shape[0], items.shape[0]))
    k = min(users.shape[1], items.shape[1])
    s, vt = top_singular_vectors(matrix, k)
    u = (matrix @ vt.T) / np.where(s > 0, s, 1.0)  # the left vectors: X v = s u
    for name, table, factor in (("users", users, u * s**power), ("items", items, vt.T * s**power)):
        if name not in tables:
            continue
        value = keras.ops.convert_to_numpy(table).copy()
        value[:, :k] = factor * (scale / factor.std())
        table.assign(value)
    return s


class LearnedPopularity(sr.ContrastiveOutput):
    """The defaults' output with one trainable coefficient ``beta`` (from 0) of each candidate's log
    sampling probability: training subtracts ``(w - beta) log q`` where the defaults subtract
    ``w log q``, and the search ranks with ``beta log(1 + count)`` added (`with_popularity_term`),
    so that the prior a set wants is learned from its rows rather than set by the weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.beta = self.add_weight(shape=(), initializer="zeros", name="beta")

    def _corrected(self, scores, probability, shape, weight):  # the one place the correction is applied
        if probability is None or not weight:
            return scores
        probability = keras.ops.maximum(keras.ops.reshape(keras.ops.cast(probability, "float32"), shape),
                                        PROBABILITY_FLOOR)
        return scores - (weight - self.beta * self.logits_temperature) * keras.ops.log(probability)


def mixed(n):
    return lambda s: {"negative_samplers": [sr.InBatchSampler(num_items=cardinality(s["item_id"])),
                                            sr.UniformSampler(num_samples=n)]}


CONFIGS = {
    "defaults": spec(),
    # the point nearest EASE's (docs/experiments/generalisation.md), through the library's own options
    "candidate-point": spec(lambda s: {"candidate_input_dropout": 0.3, "logq_sampling_correction": 1.35,
                                       "item_id_start": "svd"}),
    "ids-only": spec(drop=("user_friends",)),
    **{f"temp{t}": spec((lambda t: lambda s: {"logits_temperature": t})(t)) for t in (0.05, 0.1, 0.15, 0.3)},
    **{f"qdrop{d}": spec((lambda d: lambda s: {"query_input_dropout": d})(d)) for d in (0.0, 0.25, 0.7)},
    **{f"logq{w}": spec((lambda w: lambda s: {"logq_sampling_correction": w})(w)) for w in (1.0, 1.25)},
    **{f"ids{d}": spec((lambda d: lambda s: {"id_embedding_dim": d})(d)) for d in (32, 96, 128, 192, 256)},
    "history": spec(lambda s: {"user_history": True}),
    "history-ids-only": spec(lambda s: {"user_history": True}, drop=("user_friends",)),
    # the history tower at the id tower's temperature (its own default is 0.1)
    "history-ids-only-temp0.2": spec(lambda s: {"user_history": True, "logits_temperature": 0.2},
                                     drop=("user_friends",)),
    "weight-log1p": spec(weight=np.log1p),
    "weight-linear": spec(weight=lambda target: target),
    "weight-square": spec(weight=lambda target: target ** 2),
    # MovieLens's ratings of 4 and 5 five times the others, as a filter of the liked would keep them alone
    "weight-liked": spec(weight=lambda target: 0.25 + (target >= 4)),
    # Keras's label smoothing in compile(loss=), spread over the columns that are candidates
    **{f"smooth{e}": spec(loss=(lambda e: lambda: keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=e))(e)) for e in (0.05, 0.1, 0.2)},
    "mixed-uniform256": spec(mixed(256)),
    "learned-prior": spec(lambda s: {"outputs": LearnedPopularity(
        negative_samplers=sr.InBatchSampler(num_items=cardinality(s["item_id"])),
        logits_temperature=DEFAULT_TEMPERATURE, logq_sampling_correction=DEFAULT_LOGQ_CORRECTION)},
        popularity_term="learned"),
    "lr2e-3": spec(optimizer=lambda: sr.AveragedAdam(2e-3)),
    "batch256": spec(batch=256),
    "batch256-lr2e-3": spec(optimizer=lambda: sr.AveragedAdam(2e-3), batch=256),
    # combinations of the levers that won alone
    "lr2e-3-weight-log1p": spec(optimizer=lambda: sr.AveragedAdam(2e-3), weight=np.log1p),
    "lr2e-3-logq1.25": spec(lambda s: {"logq_sampling_correction": 1.25}, optimizer=lambda: sr.AveragedAdam(2e-3)),
    "lr2e-3-weight-log1p-logq1.25": spec(lambda s: {"logq_sampling_correction": 1.25},
                                         optimizer=lambda: sr.AveragedAdam(2e-3), weight=np.log1p),
}
COLUMNS = ("r@10", "r@100", "x@10", "x@100")


def config(name):
    """A named config, or TwoTowerModel keyword arguments written out:
    ``id_embedding_dim=128/logits_temperature=0.15`` (drop= names columns to leave out, svd_tables= the
    tables `init_ids_from_svd` starts, both separated by ":")."""
    if name in CONFIGS:
        return CONFIGS[name]
    if "=" not in name:
        raise SystemExit(f"unknown config {name!r}: one of {', '.join(CONFIGS)}, or key=value/key=value")
    kwargs = dict(part.split("=", 1) for part in name.split("/"))
    drop = tuple(d for d in kwargs.pop("drop", "").split(":") if d)
    svd_tables = kwargs.pop("svd_tables", "users:items")
    kwargs = {k: ast.literal_eval(v) for k, v in kwargs.items()}
    uniform, term = kwargs.pop("uniform", None), kwargs.pop("popularity_term", 0.0)
    options = {"drop": drop, "popularity_term": term, "svd_init": kwargs.pop("svd_init", 0.0),
               "svd_power": kwargs.pop("svd_power", 0.5), "svd_tables": svd_tables}
    if uniform:
        return spec(lambda s: {**kwargs, **mixed(uniform)(s)}, **options)
    return spec(lambda s: dict(kwargs), **options)


def derive(train, thin=1.0, users=1.0, min_item_rows=0, seed=0):
    """The training part thinned to a random ``thin`` share of its rows and to
    the rows of a random ``users`` share of its users, then kept to the items
    with at least ``min_item_rows`` rows in what is left."""
    for flag, share in (("--thin", thin), ("--users", users)):
        if not 0 < share <= 1:
            raise SystemExit(f"{flag} must be in (0, 1], got {share}")
    if thin < 1:
        train = train.sample(frac=thin, random_state=seed)
    if users < 1:
        kept = pd.Series(train["user_id"].unique()).sample(frac=users, random_state=seed)
        train = train[train["user_id"].isin(kept)]
    if min_item_rows > 1:
        counts = train["item_id"].value_counts()
        train = train[train["item_id"].map(counts) >= min_item_rows]
    if train.empty:
        raise SystemExit(f"--thin {thin} --users {users} --min-item-rows {min_item_rows} leave no training rows")
    return train.reset_index(drop=True)


def popularity_share(rest, cut, k=10):
    """How much popularity explains the rows of `cut`: Popularity's recall@k with each user's items
    excluded, and a cosine item-item model's, both fitted on `rest`. Returns (Popularity's,
    item-item's, their ratio); `cut`'s users that `rest` lacks are left out."""
    users = pd.Index(rest["user_id"].unique())
    items = pd.Index(np.unique(np.concatenate([rest["item_id"].to_numpy(), cut["item_id"].to_numpy()])))
    cut = cut[cut["user_id"].isin(users)]
    if cut.empty:
        return float("nan"), float("nan"), float("nan")  # too few rows to cut from: the header says nan
    seen = sparse.csr_matrix((np.ones(len(rest), "float32"), (users.get_indexer(rest["user_id"]),
                              items.get_indexer(rest["item_id"]))), shape=(len(users), len(items)))
    seen.data[:] = 1.0  # a pair that repeats counts once
    counts = np.asarray(seen.sum(axis=0)).ravel()
    cosine = seen @ sparse.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))  # (X N)^T (X N): the cosine item-item matrix
    queries = seen[users.get_indexer(cut["user_id"])]
    targets = items.get_indexer(cut["item_id"])
    exclude = (queries.indptr, queries.indices)
    pop = sr.baselines.Popularity().fit(rest, "user_id", "item_id").evaluate_topk(
        cut, candidate_ids=items, ks=(k,), exclude=rest)[f"recall@{k}"]
    knn = sr.evaluation.evaluate_ranking(lambda a, b: (queries[a:b] @ cosine.T @ cosine).toarray(), targets,
                                         ks=(k,), exclude=exclude, num_candidates=len(items))[f"recall@{k}"]
    return pop, knn, pop / knn if knn else float("nan")


def with_popularity_term(model, catalog, train, beta):
    """`model.evaluate_topk` with ``beta * log(1 + training count)`` added to each candidate's logit
    (``beta`` times the temperature to its cosine): the popularity prior added at serving time."""
    counts = train["item_id"].value_counts().reindex(catalog.ids, fill_value=0).to_numpy("float32")
    candidates = np.hstack([model.candidate_embeddings(catalog), np.log1p(counts)[:, None]])
    term = beta * model.output_layer.logits_temperature

    def evaluate(rows, exclude):
        queries = model.query_embeddings(rows)
        queries = np.hstack([queries, np.full((len(queries), 1), term, "float32")])
        return ranked(queries, candidates, catalog, rows, exclude)
    return evaluate


def ranked(queries, candidates, catalog, rows, exclude):
    """recall@10 and @100 of ``rows`` by the scores ``queries @ candidates.T``, with each
    user's items of ``exclude`` (interactions) left out when given."""
    if exclude is not None:
        exclude = sr.data.Exclusions.from_interactions(exclude, "user_id", "item_id").for_queries(
            rows["user_id"].to_numpy(), catalog.ids)
    return sr.evaluation.evaluate_ranking(
        sr.retrieval.topk.embedding_scorer(queries, candidates),
        pd.Index(catalog.ids).get_indexer(rows["item_id"]), ks=(10, 100), exclude=exclude)


def recalls(evaluate, rows, seen):
    a, b = evaluate(rows, None), evaluate(rows, seen)
    return {"r@10": a["recall@10"], "r@100": a["recall@100"], "x@10": b["recall@10"], "x@100": b["recall@100"]}


def fmt(name, m, extra=""):
    return f"{name:<34} " + " ".join(f"{m[c]:>7.4f}" for c in COLUMNS) + extra


def shape(train, schema):
    users, items = train["user_id"].nunique(), train["item_id"].nunique()
    return {"rows": len(train), "users": users, "items": items, "density": len(train) / (users * items),
            "rows_per_item": len(train) / items, "rows_per_user": len(train) / users}


def weighted_batches(rows, schema, batch, seed, weight):
    """`rows` batched from the schema, each batch with its rows' sample weights (`weight` of the
    schema's target column, scaled to mean 1) as `fit(..., sample_weight=COLUMN)` gives them."""
    targets = [col.name for col in schema if sr.Tags.TARGET in col.tags]
    if len(targets) != 1:
        raise SystemExit(f"a weight config needs one target column in the schema, found {targets}")
    w = weight(rows[targets[0]].to_numpy(dtype="float64"))
    rows = rows.assign(**{targets[0]: (w / w.mean()).astype("float32")})
    return sr.training.weights.weighted(sr.data.to_tf_dataset(rows, schema, batch, shuffle=True, seed=seed),
                                        targets[0])


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=("lastfm", "lastfm-friends", "movielens", "preset", "ecommerce"), required=True)
    p.add_argument("--lastfm", default=str(DEFAULT_LASTFM))
    p.add_argument("--movielens", metavar="DIR")
    p.add_argument("--configs", default="defaults")
    p.add_argument("--epochs", default="4,8,12,16,24")
    p.add_argument("--stage", choices=("valid", "inner", "test"), default="valid",
                   help="valid: train on the training part less a validation split, read the validation split; "
                        "inner: train on that less a 10%% cut of it, read the cut (what a choice made inside fit "
                        "would see); test: train on the whole training part, read the test part (once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset-shape", metavar="USERS,ITEMS,ROWS",
                   help="--data preset or ecommerce: the generator's users, items and interactions (default "
                        "943,1682,100000 and 2000,20000,100000; e.g. 6040,3706,1000000 for MovieLens-1M's shape)")
    p.add_argument("--ease-l2", default="", help="comma-separated EASE regularisations to print")
    p.add_argument("--members", type=int, default=1, metavar="N",
                   help="train N models of each config (seeds --seed, --seed + 1, ...) and read their summed scores")
    p.add_argument("--out", default="runs/generalisation.jsonl")
    p.add_argument("--thin", type=float, default=1.0, metavar="FRACTION",
                   help="keep a random share of the training part's rows (a sparser set)")
    p.add_argument("--users", type=float, default=1.0, metavar="FRACTION",
                   help="keep the rows of a random share of the training part's users (sparser in items)")
    p.add_argument("--min-item-rows", type=int, default=0, metavar="K",
                   help="keep only the items with at least K training rows (a denser set)")
    args = p.parse_args(argv)
    configs = [(name, config(name)) for name in args.configs.split(",") if name]
    if args.members < 1:
        p.error(f"--members must be at least 1, got {args.members}")
    if args.members > 1 and any(c["popularity_term"] for _, c in configs):
        p.error("--members reads the members' summed scores; a popularity_term config ranks one model's")

    if args.data == "movielens":
        train, test, schema, source = movielens(args.movielens, args.seed)
    elif args.data in ("preset", "ecommerce"):
        size = [int(n) for n in args.preset_shape.split(",")] if args.preset_shape else []
        train, test, schema, source = {"preset": preset, "ecommerce": ecommerce}[args.data](args.seed, *size)
    else:
        train, test, schema, source = {"lastfm": lastfm, "lastfm-friends": lastfm_friends}[args.data](
            args.lastfm, args.seed)
    train = derive(train, thin=args.thin, users=args.users, min_item_rows=args.min_item_rows, seed=args.seed)
    if args.users < 1:  # the test part of the users kept: the others have no training rows
        test = test[test["user_id"].isin(train["user_id"])].reset_index(drop=True)
    catalog_rows = pd.concat([train, test], ignore_index=True)
    if args.stage != "test":
        catalog_rows = train  # every item known at training time
        train, test = validation_split(train, args.seed)
    if args.stage == "inner":
        catalog_rows = train
        train, test = sr.data.random_split(train, 0.1, seed=args.seed + 2000)
    print(f"{source}, stage {args.stage}: {len(train)} train / {len(test)} read rows; {shape(train, schema)}")
    pop, knn, share = popularity_share(*validation_split(train, args.seed, fraction=0.1))
    print(f"popularity share (x@10 on a 10% cut of the training rows): Popularity {pop:.4f} / item-item "
          f"{knn:.4f} = {share:.2f}")
    print(f"{'config':<34} " + " ".join(f"{c:>7}" for c in COLUMNS))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def record(name, m, **extra):
        with out.open("a") as f:
            f.write(json.dumps({"data": args.data, "stage": args.stage, "seed": args.seed, "config": name, **m,
                                **extra}) + "\n")

    items = sr.data.Catalog.from_interactions(catalog_rows, schema).ids
    baselines = [("popularity", lambda: sr.baselines.Popularity().fit(train, "user_id", "item_id"))]
    baselines += [(f"EASE (l2 {l2})",
                   (lambda l2: lambda: sr.baselines.EASE(float(l2)).fit(train, "user_id", "item_id"))(l2))
                  for l2 in args.ease_l2.split(",") if l2]
    for name, make in baselines:
        start = time.perf_counter()
        baseline = make()
        fit_s = time.perf_counter() - start
        m = recalls(lambda rows, ex: baseline.evaluate_topk(rows, candidate_ids=items, ks=(10, 100), exclude=ex),
                    test, train)
        print(fmt(name, m, f"  (fit {fit_s:.0f} s)"), flush=True)
        record(name, m, train_s=fit_s)
        del baseline

    for name, c in configs:
        run_schema = schema.excluding_by_name([d for d in c["drop"] if d in schema.column_names])
        catalog = sr.data.Catalog.from_interactions(catalog_rows, run_schema)
        trained = sr.data.Catalog.from_interactions(train, run_schema)  # what the samplers draw and count
        members = [member(c, run_schema, train, trained, args.seed + i) for i in range(args.members)]
        done, seconds = 0, 0.0
        for epochs in [int(e) for e in args.epochs.split(",")]:
            start = time.perf_counter()
            for model, x, training_weights in members:
                model.fit(x, epochs=epochs, initial_epoch=done, catalog=trained, verbose=0,
                          callbacks=[training_weights])
            seconds += time.perf_counter() - start
            done = epochs
            extra = {}
            model = members[0][0]
            if c["popularity_term"]:
                term = c["popularity_term"]
                if term == "learned":
                    term = extra["beta"] = float(keras.ops.convert_to_numpy(model.output_layer.beta))
                m = recalls(with_popularity_term(model, catalog, train, term), test, train)
            elif len(members) > 1:
                m = recalls(ensemble([model for model, _, _ in members], catalog), test, train)
            else:
                m = recalls(lambda rows, ex: model.evaluate_topk(rows, catalog, ks=(10, 100), exclude=ex), test,
                            train)
            for _, _, training_weights in members:
                training_weights.restore()
            print(fmt(f"{name} ep{epochs}", m, f"  ({seconds:.0f} s)" + "".join(
                f", {k} {v:.3f}" for k, v in extra.items())), flush=True)
            record(name, m, epochs=epochs, train_s=seconds, members=len(members), **extra)


def member(c, schema, train, trained, seed):
    """One model of a config, its batches and its `TrainingWeights`, its initial weights from `seed`."""
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(schema, **c["kwargs"](schema))
    if c["svd_init"]:
        model.build()
        init_ids_from_svd(model, train, c["svd_init"], c["svd_power"], c["svd_tables"])
    elif model.item_id_start == "svd":  # what fit does on a first training; these batches are Keras's fit's
        sr.training.start_item_ids(model, train)
    model.compile(optimizer=c["optimizer"]() if c["optimizer"] else None, loss=c["loss"]() if c["loss"] else None)
    batch = c["batch"] or DEFAULT_BATCH_SIZE
    # batches of our own, so that successive fits go on from an epoch (initial_epoch)
    if c["weight"] is not None:
        x = weighted_batches(train, schema, batch, seed, c["weight"])
    else:
        x = sr.data.to_tf_dataset(train, schema, batch, shuffle=True, seed=seed)
    if getattr(model.query_tower, "history", None) is not None:
        model.set_history(train)
    return model, x, TrainingWeights()


def ensemble(models, catalog):
    """An `evaluate(rows, exclude)` of the models' summed scores: their towers' outputs side
    by side, one query vector and one candidate vector, which a single two-tower export
    would serve."""
    candidates = np.concatenate([np.asarray(m.candidate_embeddings(catalog)) for m in models], axis=1)

    def evaluate(rows, exclude):
        queries = np.concatenate([np.asarray(m.query_embeddings(rows)) for m in models], axis=1)
        return ranked(queries, candidates, catalog, rows, exclude)
    return evaluate


if __name__ == "__main__":
    main()
