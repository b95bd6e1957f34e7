"""The `schemaretrieval` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from schemaretrieval.report import PRESETS, add_evaluate_parser, split_data

log = logging.getLogger("schemaretrieval")

TRAIN_HELP = """\
Train a two-tower model from a YAML schema and report full-catalog metrics.

The data is either a table of interactions (--data, parquet or csv; a random
--test-fraction is held out for evaluation unless --valid is given) or
--synthetic N generated rows with planted structure. The model is
TwoTowerModel(schema); the report puts it beside a popularity ranking.

example:
  schemaretrieval train --schema schemas/synthetic.yaml --synthetic 100000 \\
      --epochs 5 --batch-size 1024 --out runs/synthetic
"""


def _train_parser(sub):
    p = sub.add_parser(
        "train", help="train a two-tower model", description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--schema", help="the YAML schema (or merlin schema.pbtxt/json); an ETL output --data or a --preset brings its own")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="interactions: a parquet file or directory, a csv file, "
                        "or the output directory of `schemaretrieval etl` (schema and valid/ included)")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N interactions from the schema")
    source.add_argument("--preset", choices=PRESETS, help="a generated preset with its own schema, e.g. movielens-like")
    p.add_argument("--valid", help="held-out interactions; default: --test-fraction of the data")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out when --valid is not given (default 0.2)")
    from schemaretrieval.models import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS
    from schemaretrieval.optimizers import DEFAULT_EMA_MOMENTUM, DEFAULT_LEARNING_RATE

    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS} (docs/quality.md)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"default {DEFAULT_BATCH_SIZE} (docs/quality.md)")
    p.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE,
                   help=f"Adam's learning rate (default {DEFAULT_LEARNING_RATE:g})")
    p.add_argument("--ema-momentum", type=float, default=DEFAULT_EMA_MOMENTUM,
                   help=f"training ends on the moving average of the weights with this momentum (default "
                        f"{DEFAULT_EMA_MOMENTUM:g}, docs/quality.md); 0 ends on the last step's weights")
    p.add_argument("--seed", type=int, default=0, help="seeds data generation, the split, shuffling and initialisation")
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop when recall@K (K = the first of --ks), with seen items excluded, on a validation split "
                        "cut from the training data has not risen for PATIENCE epochs, and keep the best epoch; "
                        "--epochs is then the maximum (docs/training.md)")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="with --early-stopping: the share of training rows in its validation split (default 0.1)")
    p.add_argument("--user-history", action="store_true",
                   help="the query tower reads each user's training items instead of the user-id embedding "
                        "(TwoTowerModel(user_history=True); docs/quality.md, section 6)")
    p.add_argument("--ks", default="10,100", help="cut-offs of the report (default 10,100)")
    p.add_argument("--out", required=True, help="directory for model.keras, schema.yaml, metrics.json, training.csv, training.png (loss and recall@k per epoch) and serving/")
    p.add_argument("--checkpoint-dir", help="save training state here and resume from it when rerun with the same command")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N steps (default: epoch ends)")
    p.add_argument("--no-export", action="store_true",
                   help="skip the serving export (DIR/serving; it leaves each user's training items out)")
    p.add_argument("--on-bad-rows", choices=("error", "skip"), default="error",
                   help="rows with NaN/inf or ids outside the schema's domain: end with an error naming the "
                        "column (default) or leave them out and report how many")
    from schemaretrieval.etl_cli import add_movielens_arguments

    add_movielens_arguments(p, source)
    p.set_defaults(run=train)


def _serving_parsers(sub):
    p = sub.add_parser("recommend", help="top-k items for a user from an exported model")
    p.add_argument("--model", required=True, help="a `train --out` directory or an export_serving directory")
    p.add_argument("--user", required=True, help="the user id (raw when the export has the ETL's vocabulary)")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--exclude", default="", help="comma-separated item ids to leave out, besides the user's "
                   "training items that a `train --out` export leaves out itself")
    p.set_defaults(run=recommend)
    p = sub.add_parser("similar-items", help="the items nearest an item by candidate embedding")
    p.add_argument("--model", required=True, help="a `train --out` directory or an export_serving directory")
    p.add_argument("--item", required=True, help="the item id")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.set_defaults(run=similar_items)


def _print_items(items):
    print(f"{'rank':>4}  {'item':>12}  {'score':>9}")
    for rank, (item, score) in enumerate(items, 1):
        print(f"{rank:>4}  {item!s:>12}  {score:>9.4f}")


def recommend(args):
    from schemaretrieval import serving

    exclude = [x for x in args.exclude.split(",") if x]
    items = serving.recommend_from_export(args.model, args.user, args.k, exclude=exclude)
    _print_items(items)
    return items


def similar_items(args):
    from schemaretrieval import serving

    items = serving.similar_items(args.model, args.item, args.k)
    _print_items(items)
    return items


def train(args) -> dict:
    import schemaretrieval as sr

    from schemaretrieval import training

    training.set_seed(args.seed)  # and op determinism: the same seed, the same metrics
    ks = [int(k) for k in args.ks.split(",")]
    from schemaretrieval.etl_cli import resolve_train_data

    resolve_train_data(args)  # an ETL output directory brings its schema and valid/
    if not args.schema and not args.preset:
        raise ValueError("give --schema (only an ETL output --data or a --preset brings its own)")
    schema = sr.load_schema(args.schema) if args.schema else None
    train_data, test_data, all_data, source, schema = split_data(args, schema)
    log.info("data: %s, %d train and %d test interactions", source, len(train_data), len(test_data))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.on_bad_rows == "skip":
        skipped = {}
        train_data, skipped["train"] = training.drop_bad_rows(train_data, schema)
        test_data, skipped["test"] = training.drop_bad_rows(test_data, schema)
        all_data, _ = training.drop_bad_rows(all_data, schema)
        for name in ("train", "test"):
            if skipped[name]:
                print(f"skipped {sum(skipped[name].values())} bad {name} rows: {skipped[name]}")
        (out / "skipped_rows.json").write_text(json.dumps(skipped, indent=2))

    catalog = sr.data.candidate_table(all_data, schema)
    model = sr.TwoTowerModel(schema, user_history=args.user_history)
    model.compile(optimizer=sr.default_optimizer(args.learning_rate, ema_momentum=args.ema_momentum or None))
    early_stopping = None
    if args.early_stopping is not None:
        early_stopping = training.EarlyStopping(validation_fraction=args.validation_fraction, monitor=f"recall@{ks[0]}",
                                                patience=args.early_stopping, seed=args.seed)
    training.fit(model, train_data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                 validation_data=test_data, candidates=catalog, ks=ks, checkpoint_dir=args.checkpoint_dir,
                 checkpoint_every=args.checkpoint_every, log_dir=out / "logs", csv_path=out / "training.csv",
                 early_stopping=early_stopping)
    from schemaretrieval.plots import plot_training

    # loss and held-out recall@k per epoch, from the CSV log (resumed epochs included)
    plot_training(out / "training.csv", out / "training.png", f"{source}, {len(train_data):,} training rows")

    item_id = model.candidate_id_column
    popularity = sr.baselines.Popularity().fit(train_data, item_id, user_id_col=model.query_id_column)
    candidate_ids = catalog[item_id].to_numpy()
    # What serving leaves out (a schema without a user id has no way to know).
    seen = train_data if model.query_id_column is not None else None
    rows = {
        "two-tower": model.evaluate_topk(test_data, catalog, ks=ks),
        "popularity": popularity.evaluate_topk(test_data, candidate_ids=candidate_ids, ks=ks),
    }
    if seen is not None:
        rows["two-tower, seen excluded"] = model.evaluate_topk(test_data, catalog, ks=ks, exclude=seen)
        rows["popularity, seen excluded"] = popularity.evaluate_topk(
            test_data, candidate_ids=candidate_ids, ks=ks, exclude=seen)
    print(format_table(rows, [f"recall@{k}" for k in ks]))

    model.save(out / "model.keras")
    sr.save_schema(schema, out / "schema.yaml")
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    if args.no_export:
        print(f"saved the model to {out / 'model.keras'}")
        return rows
    from schemaretrieval import serving

    # A user asking for recommendations should not get what they already rated.
    serving.export_serving(model, catalog, out / "serving", k=min(100, len(catalog)), users=all_data, exclude=seen)
    print(f"saved the model to {out / 'model.keras'} and its serving export to {out / 'serving'}")
    return rows


def format_table(rows: dict[str, dict[str, float]], columns: list[str]) -> str:
    """A plain-text table: one row per model, one column per metric."""
    width = max(len(name) for name in rows)
    lines = [" ".join([" " * width] + [f"{c:>11}" for c in columns])]
    for name, metrics in rows.items():
        lines.append(" ".join([f"{name:<{width}}"] + [f"{metrics[c]:>11.4f}" for c in columns]))
    return "\n".join(lines)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The library's own INFO (the ETL device, what was written) and every
    # library's warnings; TensorFlow's INFO (the SavedModel's renamed captured
    # inputs, "Assets written to") says nothing a user can act on.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("schemaretrieval").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(prog="schemaretrieval", description="Schema-first two-tower retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    from schemaretrieval.etl_cli import add_etl_parser

    add_etl_parser(sub)
    add_evaluate_parser(sub)
    _serving_parsers(sub)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, KeyError, FileNotFoundError) as error:
        # Bad input is the user's to fix: the message, not a traceback.
        parser.exit(2, f"schemaretrieval {args.command}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
