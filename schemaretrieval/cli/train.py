"""`schemaretrieval train`: TwoTowerModel(schema) trained, reported beside Popularity, saved and exported."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from schemaretrieval.cli import common
from schemaretrieval.progress import Step
from schemaretrieval.training.defaults import DEFAULT_STEPS_PER_EXECUTION

log = logging.getLogger("schemaretrieval")

TRAIN_HELP = """\
Train a two-tower model from a YAML schema and report full-catalog metrics.

The data is a table of interactions (--data: parquet or csv, or the output
directory of `schemaretrieval etl`, whose schema, valid/ and vocabularies come
with it; a random --test-fraction is held out unless --valid is given),
--synthetic N generated rows, a --preset, or a --movielens folder (encoded
by the ETL first). The model is TwoTowerModel(schema); the report puts it
beside a popularity ranking. Parquet too large for memory is streamed.

example:
  schemaretrieval train --schema schemas/synthetic.yaml --synthetic 100000 \\
      --epochs 5 --batch-size 1024 --out runs/synthetic
"""


def add_parser(sub):
    from schemaretrieval.cli.etl import add_movielens_arguments
    from schemaretrieval.training.defaults import (DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, EXAMPLE_BUDGET,
                                                    MAX_DEFAULT_EPOCHS)
    from schemaretrieval.training.optimizers import DEFAULT_EMA_MOMENTUM, DEFAULT_LEARNING_RATE

    p = sub.add_parser("train", help="train a two-tower model", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schema", help="the YAML schema (or merlin schema.pbtxt/json); an ETL output --data or a "
                   "--preset brings its own")
    source = p.add_mutually_exclusive_group(required=True)
    common.add_source_arguments(p, source)
    p.add_argument("--epochs", type=common.positive_int, default=None,
                   help=f"default: {DEFAULT_EPOCHS} to {MAX_DEFAULT_EPOCHS}, by the training data's rows per item, "
                        f"and at most {EXAMPLE_BUDGET:,} rows in all (docs/defaults.md)")
    p.add_argument("--batch-size", type=common.positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"default {DEFAULT_BATCH_SIZE} (docs/defaults.md)")
    p.add_argument("--learning-rate", type=common.positive_float, default=DEFAULT_LEARNING_RATE,
                   help=f"Adam's learning rate (default {DEFAULT_LEARNING_RATE:g})")
    p.add_argument("--ema-momentum", type=common.number(at_least=0, at_most=1), default=DEFAULT_EMA_MOMENTUM,
                   help=f"training ends on the moving average of the weights with this momentum (default "
                        f"{DEFAULT_EMA_MOMENTUM:g}, docs/defaults.md); 0 ends on the last step's weights")
    p.add_argument("--early-stopping", type=common.positive_int, metavar="PATIENCE",
                   help="stop when recall@K (K = the first of --ks), with seen items excluded, on a validation split "
                        "cut from the training data has not risen for PATIENCE epochs, and keep the best epoch; "
                        "--epochs is then the maximum (docs/training.md)")
    p.add_argument("--validation-fraction", type=common.fraction, default=0.1,
                   help="with --early-stopping: the share of training rows in its validation split (default 0.1)")
    p.add_argument("--user-history", action="store_true",
                   help="the query tower reads each user's training items instead of the user-id embedding "
                        "(TwoTowerModel(user_history=True))")
    p.add_argument("--sample-weight", metavar="COLUMN",
                   help="a continuous column of the schema whose value weighs each training row's loss "
                        "(e.g. a play count; fit's sample_weight=)")
    p.add_argument("--ks", type=common.cutoffs, default=[10, 100], help="cut-offs of the report (default 10,100)")
    p.add_argument("--out", required=True, type=common.directory,
                   help="directory for model.keras, schema.yaml, metrics.json, training.csv, "
                   "training.png (loss and recall@k per epoch) and serving/")
    p.add_argument("--checkpoint-dir", type=common.directory,
                   help="save training state here and resume from it when rerun with the same command")
    p.add_argument("--checkpoint-every", type=common.positive_int, metavar="N",
                   help=f"also checkpoint every N steps: after the {DEFAULT_STEPS_PER_EXECUTION}-step call that "
                        "reaches each multiple (default: epoch ends only)")
    p.add_argument("--no-export", action="store_true",
                   help="skip the serving export (DIR/serving; it leaves each user's training items out)")
    p.add_argument("--on-bad-rows", choices=("error", "skip"), default="error",
                   help="rows with NaN/inf or ids outside the schema's domain: end with an error naming the "
                        "column (default) or leave them out and report how many")
    add_movielens_arguments(p, source)
    p.set_defaults(run=train, check=check_train)


def check_train(args):
    """What the parser's types cannot see: arguments that go only with others."""
    from schemaretrieval.cli.etl import check_movielens_arguments

    check_movielens_arguments(args)
    if args.checkpoint_every is not None and args.checkpoint_dir is None:
        raise ValueError("--checkpoint-every N saves into --checkpoint-dir: give --checkpoint-dir too")
    if args.validation_fraction != 0.1 and args.early_stopping is None:
        raise ValueError("--validation-fraction is the share --early-stopping holds out: give --early-stopping too")


def _skip_bad_rows(data, out):
    from schemaretrieval.data.read import read_frame
    from schemaretrieval.data.validate import drop_bad_rows

    skipped = {}
    for name in ("train", "test"):
        frame, _ = read_frame(getattr(data, name), f"--on-bad-rows skip ({name})")
        frame, skipped[name] = drop_bad_rows(frame, data.schema)
        setattr(data, name, frame)
        if skipped[name]:
            print(f"skipped {sum(skipped[name].values())} bad {name} rows: {skipped[name]}")
    data.everything = [data.train, data.test]
    (out / "skipped_rows.json").write_text(json.dumps(skipped, indent=2))


def _report(model, data, catalog, ks, seen) -> dict:
    """Full-catalog recall of the model and of popularity on the held-out rows, and with
    ``seen`` (each user's training items) excluded."""
    import schemaretrieval as sr

    item_id, user_id = model.candidate_id_column, model.query_id_column
    popularity = sr.baselines.Popularity().fit(common.interactions_table(data.train, [c for c in (user_id, item_id) if c]),
                                               user_id, item_id)
    test = sr.data.read_table(data.test) if not hasattr(data.test, "columns") else data.test
    rows = {
        "two-tower": model.evaluate_topk(test, catalog, ks=ks),
        "popularity": popularity.evaluate_topk(test, candidate_ids=catalog.ids, ks=ks),
    }
    if seen is not None:
        rows["two-tower, seen excluded"] = model.evaluate_topk(test, catalog, ks=ks, exclude=seen)
        rows["popularity, seen excluded"] = popularity.evaluate_topk(test, candidate_ids=catalog.ids, ks=ks,
                                                                     exclude=seen)
    return rows


def train(args) -> dict:
    import schemaretrieval as sr
    from schemaretrieval import training
    from schemaretrieval.serving import export_serving
    from schemaretrieval.training.plots import plot_training

    training.set_seed(args.seed)  # and op determinism: the same seed, the same metrics
    ks = args.ks  # common.cutoffs parsed them
    out = Path(args.out)
    for flag, directory in (("--out", out), ("--checkpoint-dir", args.checkpoint_dir)):
        if directory is not None:  # made before the data is read, so that a path that cannot be is named first
            try:
                Path(directory).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ValueError(f"{flag} {str(directory)!r}: cannot make the directory ({err.strerror})") from None
    data = common.sources(args, sr.load_schema(args.schema) if args.schema else None)
    schema = data.schema
    if args.sample_weight is not None:  # named before the data is read through
        training.weights.check_weight_column(schema, args.sample_weight)
    if args.on_bad_rows == "skip":
        _skip_bad_rows(data, out)
    log.info("data: %s", data.source)

    catalog = sr.data.Catalog.from_interactions(data.everything, schema)
    model = sr.TwoTowerModel(schema, user_history=args.user_history)
    if args.user_history:
        model.set_history(data.train)
    model.compile(optimizer=sr.default_optimizer(args.learning_rate, ema_momentum=args.ema_momentum or None))
    early_stopping = None
    if args.early_stopping is not None:
        early_stopping = training.EarlyStopping(validation_fraction=args.validation_fraction, monitor=f"recall@{ks[0]}",
                                                patience=args.early_stopping, seed=args.seed)
    with Step("training") as step:
        history = model.fit(data.train, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                            validation_data=data.test, catalog=catalog, ks=ks, checkpoint_dir=args.checkpoint_dir,
                            checkpoint_every=args.checkpoint_every, log_dir=out / "logs",
                            csv_path=out / "training.csv", early_stopping=early_stopping,
                            sample_weight=args.sample_weight)
        step.rows = common.num_rows(data.train) * len(history.history.get("loss", ()))
    if (out / "training.csv").is_file():
        # loss and held-out recall@k per epoch, from the CSV log (resumed epochs included)
        plot_training(out / "training.csv", out / "training.png", data.source)

    user_id = model.query_id_column
    # What serving leaves out (a schema without a user id has no way to know).
    seen = sr.data.Exclusions.from_interactions(data.train, user_id, model.candidate_id_column) if user_id else None
    with Step("evaluation") as step:
        rows = _report(model, data, catalog, ks, seen)
        step.rows = common.num_rows(data.test) * len(rows)
    print(common.format_table(rows, [f"recall@{k}" for k in ks]))

    with Step("save" if args.no_export else "save and export", rows=None if args.no_export else len(catalog)):
        model.save(out / "model.keras")
        sr.save_schema(schema, out / "schema.yaml")
        (out / "metrics.json").write_text(json.dumps(rows, indent=2))
        if args.no_export:
            print(f"saved the model to {out / 'model.keras'}")
            return rows
        # A user asking for recommendations should not get what they already rated.
        users = common.users_table(data.everything, model.query_tower.column_names, user_id)
        export_serving(model, catalog, out / "serving", k=min(100, len(catalog)), artifacts=data.etl_dir,
                       users=users, exclude=seen)
    print(f"saved the model to {out / 'model.keras'} and its serving export to {out / 'serving'}")
    return rows
