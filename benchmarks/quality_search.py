"""The measured search behind TwoTowerModel's defaults (docs/experiments/movielens-100k-search.md).

Trains TwoTowerModel(schema) with one option changed at a time and reports
full-catalog recall@1/@5/@10/@100 without exclusion and recall@1/@10/@100
with each user's training items excluded ("x@k"), after several epoch counts
(one run per config, evaluated as it trains), with Popularity and EASE
printed beside it. Data: the MovieLens-100K-shaped preset (random 80/20
split), or with --movielens DIR a real GroupLens folder through the ETL, as
benchmarks/quality.py takes it.

Round 1 (preset) varied the first defaults (in-batch negatives with logQ,
temperature 0.1, batch 1024, Merlin's embedding widths); round 2 (real
MovieLens-100K) varied round 1's result: dropout on the query input,
towers, the negatives and the id embedding width; round 3 (real
MovieLens-100K) the query tower reading the user's training history
(`user_history=True`), with `--drop` taking query features out of the schema;
round 4 (real data and the preset) the logQ probability of in-batch
negatives and weight decay (AdamW); round 5 (real data over three split
seeds, and the preset) a cosine learning-rate schedule and the weight of the
logQ correction; round 7 L2 normalisation and tower depth, and the preset
at ML-1M's size (`--preset-size 1m`); round 8 (real data over three splits, and the preset) ending
training on a moving average of the weights (the defaults' `default_optimizer()`); round 9 (real data,
`--model-seed` apart from the split's `--seed`) earlier rounds' levers with the average; round 10 (real
data) the loss's transpose, accidental hits and Adam's betas, and with `--request-week` and
`--time-features` the rating's time as query features, also on a split by time (`--split time`);
round 11 (real data split by time, whose users are mostly new: "cold r@k" is recall over their
ratings alone) the mean trained user for a user id training never read.

    python benchmarks/quality_search.py [--movielens DIR [--request-week] [--time-features f,...] [--split time]]
        [--configs name,...] [--epochs 4,8,12,16] [--drop col,...]

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import pandas as pd  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from quality import movielens, preset  # noqa: E402
from schemaretrieval.models.defaults import DEFAULT_BATCH_SIZE, DEFAULT_LOGQ_CORRECTION, DEFAULT_TEMPERATURE  # noqa: E402
from schemaretrieval.schema import cardinality  # noqa: E402
from schemaretrieval.training.callbacks import EpochWeights  # noqa: E402


# Round 1's towers: ids at Merlin's width (16 for 1k-5k ids), no dropout.
ROUND1 = {"id_embedding_dim": None, "query_input_dropout": 0.0}


def in_batch(schema, **kwargs):
    """The defaults' negatives: in-batch, with the streaming frequency estimate."""
    return {"negative_samplers": sr.InBatchSampler(num_items=cardinality(schema["item_id"])), **ROUND1, **kwargs}


def full_catalog(schema, **kwargs):
    """Every item of the catalog at every step."""
    return {"negative_samplers": sr.UniformSampler(num_samples=cardinality(schema["item_id"])), **ROUND1, **kwargs}


def round1(**kwargs):
    return lambda schema: in_batch(schema, **kwargs)


class OneOverInterval(sr.InBatchSampler):
    """Yi et al.'s streaming estimate as the defaults had it before round 4:
    `1 / interval`, the chance that a batch holds the item at all."""

    def call(self, positive_ids, positive_embeddings, candidate_encoder=None, training=False):
        negatives = super().call(positive_ids, positive_embeddings, candidate_encoder, training)
        ids = keras.ops.cast(negatives.ids, "int32")
        return negatives._replace(probability=1.0 / keras.ops.take(self.interval, ids))


class SymmetricContrastive(sr.ContrastiveOutput):
    """The defaults' softmax plus, weighted, its transpose: each positive
    item against the batch's queries (CLIP's symmetric loss). The item's own
    logQ term is the same down a column, so the transpose needs none."""

    def __init__(self, column_weight, **kwargs):
        super().__init__(**kwargs)
        self.column_weight = column_weight

    def row_losses(self, query, positive, positive_ids, candidate_sampling_probability=None,
                   candidate_encoder=None, training=False):
        ops = keras.ops
        logits, labels = self.logits_and_labels(query, positive, positive_ids, candidate_sampling_probability,
                                                candidate_encoder, training)
        rows = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        # The in-batch block, transposed: row j is item j against every query.
        in_batch = ops.transpose(logits[:, : ops.shape(query)[0]])
        columns = ops.sparse_categorical_crossentropy(labels, in_batch, from_logits=True)
        return rows + self.column_weight * columns


def defaults_output(schema, output=None, **kwargs):
    """The defaults' output (in-batch, T 0.2, logQ weight 1.1), as a class of its own or with options."""
    return {"outputs": (output or sr.ContrastiveOutput)(
        negative_samplers=sr.InBatchSampler(num_items=cardinality(schema["item_id"])),
        logits_temperature=DEFAULT_TEMPERATURE, logq_sampling_correction=DEFAULT_LOGQ_CORRECTION, **kwargs)}


def averaged_adam(**kwargs):
    """The defaults' optimizer with other Adam options."""
    return lambda steps: sr.AveragedAdam(**kwargs)


def adamw(weight_decay):
    """Adam 1e-3 with decoupled weight decay on every weight (Keras's AdamW)."""
    return lambda steps: keras.optimizers.AdamW(1e-3, weight_decay=weight_decay)


def cosine(learning_rate):
    """Adam from `learning_rate` down to 0 over the run's steps (cosine)."""
    return lambda steps: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps))


def measured(steps):
    """The defaults' optimizer, `sr.default_optimizer()` (round 8's average of the weights)."""
    return sr.default_optimizer()


# name -> (schema -> TwoTowerModel kwargs, Adam's learning rate or a factory of the optimizer from the
# run's total steps, batch size)
CONFIGS = {
    # round 1, on the preset, from the first defaults
    "first-defaults": (round1(logits_temperature=0.1), 1e-3, 1024),
    "temp0.05": (round1(logits_temperature=0.05), 1e-3, 1024),
    "temp0.2": (round1(logits_temperature=0.2), 1e-3, 1024),
    "temp0.3": (round1(logits_temperature=0.3), 1e-3, 1024),
    "no-logq": (round1(logits_temperature=0.1, logq_sampling_correction=False), 1e-3, 1024),
    "dims128": (round1(logits_temperature=0.1, query_units=(128,), candidate_units=(128,)), 1e-3, 1024),
    "mlp128-64": (round1(logits_temperature=0.1, query_units=(128, 64), candidate_units=(128, 64)), 1e-3, 1024),
    "lr3e-3": (round1(logits_temperature=0.1), 3e-3, 1024),
    "temp0.05-lr3e-3": (round1(logits_temperature=0.05), 3e-3, 1024),
    "batch256": (round1(logits_temperature=0.1), 1e-3, 256),
    "batch256-temp0.2": (round1(logits_temperature=0.2), 1e-3, 256),
    "batch128": (round1(logits_temperature=0.1), 1e-3, 128),
    "batch128-temp0.2": (round1(logits_temperature=0.2), 1e-3, 128),
    # round 2, on real MovieLens-100K, from round 1's result (batch128-temp0.2)
    "r1-query-dropout0.3": (round1(query_input_dropout=0.3), 1e-3, 128),
    "r1-query-dropout0.5": (round1(query_input_dropout=0.5), 1e-3, 128),
    "r1-temp0.1": (round1(logits_temperature=0.1), 1e-3, 128),
    "r1-batch256": (round1(), 1e-3, 256),
    "r1-towers128": (round1(query_units=(128,), candidate_units=(128,)), 1e-3, 128),
    "r1-towers32": (round1(query_units=(32,), candidate_units=(32,)), 1e-3, 128),
    "r1-ids32": (lambda s: in_batch(s, id_embedding_dim=32), 1e-3, 128),
    "r1-ids64": (lambda s: in_batch(s, id_embedding_dim=64), 1e-3, 128),
    "r1-mixed": (lambda s: {"negative_samplers": [sr.InBatchSampler(num_items=cardinality(s["item_id"])),
                                                  sr.UniformSampler(num_samples=256)], **ROUND1},
                 1e-3, 128),
    "full-catalog-ids16": (lambda s: full_catalog(s), 1e-3, 128),
    "full-catalog-ids16-temp0.1": (lambda s: full_catalog(s, logits_temperature=0.1), 1e-3, 128),
    "full-catalog-ids16-query-dropout0.5": (lambda s: full_catalog(s, query_input_dropout=0.5), 1e-3, 128),
    "full-catalog-ids64": (lambda s: full_catalog(s, id_embedding_dim=64), 1e-3, 128),
    "full-catalog-ids64-batch256": (lambda s: full_catalog(s, id_embedding_dim=64), 1e-3, 256),
    "full-catalog-ids64-batch512-lr2e-3": (lambda s: full_catalog(s, id_embedding_dim=64), 2e-3, 512),
    "ids64-query-dropout0.5": (lambda s: in_batch(s, id_embedding_dim=64, query_input_dropout=0.5), 1e-3, 128),
    # the recipe for seen-excluded retrieval on a small catalog (docs/experiments/movielens-100k-search.md)
    "full-catalog-ids64-query-dropout0.5": (lambda s: full_catalog(s, id_embedding_dim=64, query_input_dropout=0.5),
                                            1e-3, 128),
    "defaults": (lambda s: {}, measured, None),
    # the defaults of rounds 2-7, before round 8's average of the weights (the rows of those rounds'
    # "defaults" and their one-change configs: every config below with a float rate is plain Adam)
    "defaults-round7": (lambda s: {}, 1e-3, None),
    # round 3, on real MovieLens-100K: the user's training history instead of the user-id embedding
    "history": (lambda s: {"user_history": True}, 1e-3, None),
    "history-length128": (lambda s: {"user_history": True, "history_max_length": 128}, 1e-3, None),
    # round 4: the logQ probability as expected copies per batch (the defaults now), against
    # the chance of holding the item at all (the defaults before), and exact training counts
    "yi-estimate": (lambda s: {"negative_samplers": OneOverInterval(num_items=cardinality(s["item_id"]))},
                    1e-3, None),
    "exact-counts": (lambda s: {"negative_samplers": sr.InBatchSampler()}, 1e-3, None),
    # round 4: weight decay, the knob between the unexcluded and the excluded figures
    "adamw0.1": (lambda s: {}, adamw(0.1), None),
    "adamw0.3": (lambda s: {}, adamw(0.3), None),
    "adamw1": (lambda s: {}, adamw(1.0), None),
    # round 5: a cosine learning-rate schedule over the run (to the last of --epochs)
    "cosine2e-3": (lambda s: {}, cosine(2e-3), None),
    "cosine3e-3": (lambda s: {}, cosine(3e-3), None),
    "cosine3e-3-query-dropout0.4": (lambda s: {"query_input_dropout": 0.4}, cosine(3e-3), None),
    # round 5: the weight of log(probability) in the logQ correction (1 is the defaults')
    **{f"logq{w}": ((lambda w: lambda s: {"logq_sampling_correction": w})(w), 1e-3, None) for w in (0.75, 1.1, 1.25, 1.5, 2.0)},
    # round 7: the two defaults round 1 kept without a row of their own, L2 normalisation and tower depth
    "no-l2": (lambda s: {"l2_normalize": False, "logits_temperature": 1.0}, 1e-3, None),
    "no-l2-temp0.2": (lambda s: {"l2_normalize": False}, 1e-3, None),
    "towers128-64": (lambda s: {"query_units": (128, 64), "candidate_units": (128, 64)}, 1e-3, None),
    # round 7, the preset at ML-1M's size: wider, or larger batches
    "towers128-ids128": (lambda s: {"query_units": (128,), "candidate_units": (128,), "id_embedding_dim": 128},
                         1e-3, None),
    "batch512-lr2e-3": (lambda s: {}, 2e-3, 512),
    # round 8: training ends on a moving average of the weights; Keras's own (momentum from step one)
    # against the library's AveragedAdam, whose momentum warms up as t / (t + warm_up)
    "keras-ema0.99": (lambda s: {}, lambda steps: keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=0.99), None),
    "keras-ema0.999": (lambda s: {}, lambda steps: keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=0.999), None),
    "keras-ema0.9995": (lambda s: {}, lambda steps: keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=0.9995),
                        None),
    "averaged-warm-up4": (lambda s: {}, lambda steps: sr.AveragedAdam(warm_up=4), None),
    # round 9 (real data, several model seeds a split): the levers of earlier rounds again, now with the average
    "batch64": (lambda s: {}, measured, 64),
    "full-catalog-averaged": (lambda s: {"negative_samplers": sr.UniformSampler(num_samples=cardinality(s["item_id"]))},
                              measured, None),
    "history-averaged": (lambda s: {"user_history": True}, measured, None),
    **{f"averaged-logq{w}": ((lambda w: lambda s: {"logq_sampling_correction": w})(w), measured, None)
       for w in (1.2, 1.3)},
    # round 10 (real data): the loss's transpose, accidental hits, Adam's betas (and, with --request-week,
    # the defaults on a schema with the request's week as a query column)
    "symmetric0.5": (lambda s: defaults_output(s, SymmetricContrastive, column_weight=0.5), measured, None),
    "accidental-hits-removed": (lambda s: defaults_output(s, downscore_false_negatives=True), measured, None),
    "beta1-0.8": (lambda s: {}, averaged_adam(beta_1=0.8), None),
    "beta1-0.95": (lambda s: {}, averaged_adam(beta_1=0.95), None),
    "beta2-0.99": (lambda s: {}, averaged_adam(beta_2=0.99), None),
    # round 11 (real data split by time): a user id no training batch read keeps its own random row,
    # as before the defaults read the mean trained user there
    "untrained-users-own-rows": (lambda s: {"untrained_user_ids": None}, measured, None),
}
# --preset-size: the preset's counts (users, items, interactions); 1m is ML-1M's
PRESET_SIZES = {"100k": (943, 1682, 100_000), "1m": (6040, 3706, 1_000_000)}
COLUMNS = ("r@1", "r@5", "r@10", "r@100", "x@1", "x@10", "x@100")
# with users new in the test data (--split time): recall over their rows alone
COLD_COLUMNS = ("cold r@10", "cold r@100")


def recalls(evaluate, test, train, cold=None):
    """`evaluate(rows, exclude)`'s recalls on `test`; with `cold` (a mask of
    the rows whose user has no training rows), also on those rows alone."""
    a, b = evaluate(test, None), evaluate(test, train)
    out = {**{f"r@{k}": a[f"recall@{k}"] for k in (1, 5, 10, 100)},
           **{f"x@{k}": b[f"recall@{k}"] for k in (1, 10, 100)}}
    if cold is not None and cold.any():
        c = evaluate(test[cold], None)
        out.update({f"cold r@{k}": c[f"recall@{k}"] for k in (10, 100)})
    return out


def fmt(name, m):
    return f"{name:<44} " + " ".join(f"{m[c]:>{max(6, len(c))}.4f}" for c in COLUMNS + COLD_COLUMNS if c in m)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--movielens", metavar="DIR", help="a GroupLens MovieLens folder instead of the preset")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--epochs", default="4,8,12,16")
    p.add_argument("--seed", type=int, default=0, help="the 80/20 split's seed, and the model's by default")
    p.add_argument("--model-seed", type=int, help="the model's initialisation and data order (default: --seed)")
    p.add_argument("--out", default="runs/quality_search.jsonl")
    p.add_argument("--drop", default="", help="comma-separated feature columns the models do not read")
    p.add_argument("--preset-size", choices=sorted(PRESET_SIZES), default="100k")
    p.add_argument("--ease-l2", default="500", help="comma-separated EASE regularisations to print")
    p.add_argument("--request-week", action="store_true",
                   help="with --movielens: each rating's week joins the query tower (round 10)")
    p.add_argument("--time-features", default="",
                   help="with --movielens: comma-separated ETL time features of the timestamp for the query tower "
                        "(hour, day_of_week, month, normalize; round 10)")
    p.add_argument("--split", choices=("random", "time"), default="random",
                   help="with --movielens: hold out a random 20%% of the ratings, or the last 20%% in time")
    args = p.parse_args(argv)
    model_seed = args.seed if args.model_seed is None else args.model_seed
    if args.movielens:
        train, test, schema, source = movielens(args.movielens, args.seed, request_week=args.request_week,
                                                time_features=[f for f in args.time_features.split(",") if f],
                                                split=args.split)
    elif args.request_week or args.time_features or args.split != "random":
        p.error("--request-week, --time-features and --split: the preset has no timestamps; give --movielens DIR")
    else:
        train, test, schema, source = preset(args.seed, *PRESET_SIZES[args.preset_size])
    dropped = [c for c in args.drop.split(",") if c]
    unknown = sorted(set(dropped) - set(schema.column_names))
    if unknown:
        p.error(f"--drop: no column(s) {unknown} in the schema; it has {schema.column_names}")
    if dropped:
        schema = schema.excluding_by_name(dropped)
        source += f", without {dropped}"
    catalog = sr.data.Catalog.from_interactions(pd.concat([train, test], ignore_index=True), schema)
    items = catalog["item_id"].to_numpy()
    if args.request_week:
        # What a request after the training period can give the model: the latest week it saw.
        at_last_week = test.assign(request_week=int(train.loc[train["timestamp"].idxmax(), "request_week"]))
    ks = [1, 5, 10, 100]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cold = ~test["user_id"].isin(set(train["user_id"]))
    shown = COLUMNS + (COLD_COLUMNS if cold.any() else ())
    print(f"{source}\n{'config':<44} " + " ".join(f"{c:>6}" for c in shown))
    baselines = [("popularity", sr.baselines.Popularity().fit(train, "user_id", "item_id"))]
    baselines += [(f"EASE (l2 {l2})", sr.baselines.EASE(float(l2)).fit(train, "user_id", "item_id"))
                  for l2 in args.ease_l2.split(",")]
    for name, baseline in baselines:
        print(fmt(name, recalls(lambda rows, ex: baseline.evaluate_topk(rows, candidate_ids=items, ks=ks, exclude=ex),
                                test, train, cold)), flush=True)
    for name in args.configs.split(","):
        make, lr, batch = CONFIGS[name]
        keras.utils.set_random_seed(model_seed)
        model = sr.TwoTowerModel(schema, **make(schema))
        epoch_counts = [int(e) for e in args.epochs.split(",")]
        steps = epoch_counts[-1] * -(-len(train) // (batch or DEFAULT_BATCH_SIZE))
        model.compile(optimizer=lr(steps) if callable(lr) else keras.optimizers.Adam(lr))
        done, seconds = 0, 0.0
        # fit ends on the optimizer's average of the weights (when it keeps one): it is what each
        # epoch count is read at, and the next fit trains on from the weights the epoch ended on
        training_weights = EpochWeights()
        for epochs in epoch_counts:
            start = time.perf_counter()
            model.fit(train, batch_size=batch, epochs=epochs, initial_epoch=done, seed=model_seed, verbose=0,
                      callbacks=[training_weights])
            seconds += time.perf_counter() - start
            done = epochs
            evaluate = lambda rows, ex: model.evaluate_topk(rows, catalog, ks=ks, exclude=ex)  # noqa: E731
            m = recalls(evaluate, test, train, cold)
            if args.request_week:
                m_last = recalls(evaluate, at_last_week, train)
            training_weights.restore()
            print(fmt(f"{name} ep{epochs}", m) + f"  ({seconds:.0f} s)", flush=True)
            if args.request_week:
                print(fmt(f"{name} ep{epochs}, every query at the last week", m_last), flush=True)
                m = {**m, **{f"last week {c}": v for c, v in m_last.items()}}
            with out.open("a") as f:
                f.write(json.dumps({"data": source, "config": name, "model_seed": model_seed, "epochs": epochs, "lr": lr if isinstance(lr, float) else name, "batch": batch,
                                    **m, "train_s": seconds}) + "\n")


if __name__ == "__main__":
    main()
