"""`schemaretrieval etl`: raw interactions encoded by the NVTabular workflow built from the schema."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from schemaretrieval.cli.common import directory, fraction, positive_int, seed
from schemaretrieval.progress import Step

log = logging.getLogger("schemaretrieval")

ETL_HELP = """\
Encode raw interactions with an NVTabular workflow built from the YAML schema.

Fits on --train only, transforms --train and --valid, and writes to --out:
train/ and valid/ parquet, schema.yaml + schema.pbtxt (domains filled, ready
for TwoTowerModel), workflow/ (the fitted workflow, for new data),
artifacts/ (vocabularies, continuous steps, item counts: what the serving
export reads to take raw ids) and etl_report.json (OOV counts). See docs/etl.md.

--movielens DIR reads a GroupLens folder instead of --train (the bundled
schema of the variant unless --schema is given) and splits it (--split), or
takes a given split: --train-ids FILE and/or --valid-ids FILE, ids files of
one rating per line whose first two fields are the raw user and item ids
(ml-100k's own u1.base / u1.test are ids files; with one of the two files,
the other part is every rating it does not name). See docs/etl.md.

examples:
  schemaretrieval etl --schema schemas/movielens-100k.yaml --train raw/train.parquet \\
      --valid raw/valid.parquet --out data/ml100k
  schemaretrieval etl --movielens ~/data/ml-100k --split leave-last --out data/ml100k
  schemaretrieval etl --movielens ~/data/ml-100k --train-ids ~/data/ml-100k/u1.base \
      --valid-ids ~/data/ml-100k/u1.test --out data/ml100k-u1
  schemaretrieval train --data data/ml100k --epochs 5 --out runs/ml100k
"""

SPLITS = ("random", "time", "leave-last")


def add_movielens_arguments(p, group=None):
    """--movielens and the ETL options; --movielens goes into `group` (a data-source group) when given."""
    (group or p).add_argument("--movielens", metavar="DIR", help="a GroupLens MovieLens folder (ml-100k, ml-1m, ml-latest-small, ml-25m ...)")
    p.add_argument("--variant", help="the MovieLens variant; default: the folder's name or its files")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="how --movielens data is split (default random; time: global cutoff; "
                        "leave-last: each user's last --leave-out ratings)")
    p.add_argument("--leave-out", type=positive_int, default=None,
                   help="ratings per user held out by --split leave-last (default 1)")
    p.add_argument("--train-ids", metavar="FILE", help="--movielens: the training ratings, one per line, its first two "
                   "fields the raw user and item ids (e.g. ml-100k's u1.base); replaces --split")
    p.add_argument("--valid-ids", metavar="FILE", help="--movielens: the held-out ratings, in the same format "
                   "(e.g. ml-100k's u1.test); replaces --split")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="ETL device (default auto)")
    p.add_argument("--dask-scheduler", metavar="ADDR", help="run the ETL on the Dask cluster at this address")


def add_etl_parser(sub):
    p = sub.add_parser("etl", help="encode raw data with NVTabular from the schema", description=ETL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schema", help="the YAML schema of the raw columns (default with --movielens: the bundled one)")
    p.add_argument("--train", help="raw training interactions: csv, parquet file or directory")
    p.add_argument("--valid", help="raw held-out interactions (encoded with the training vocabulary)")
    p.add_argument("--out", required=True, type=directory, help="output directory")
    p.add_argument("--test-fraction", type=fraction, default=0.2, help="held out by --split random/time (default 0.2)")
    p.add_argument("--seed", type=seed, default=0, help="seeds --split random and leave-last")
    p.add_argument("--on-bad-rows", choices=("error", "skip"), default="error",
                   help="raw rows that cannot be encoded as the schema says (a missing id or list, a scalar in a "
                        "list column, text in a number or time column, ...): end with an error naming the file, "
                        "column and row (default), or leave them out and count them in etl_report.json")
    add_movielens_arguments(p)
    p.set_defaults(run=run_etl, check=check_etl)


def check_movielens_arguments(args):
    """--split, --leave-out and --variant split and read --movielens data: without it they would
    be ignored, so they are errors; with it they get their defaults. --train-ids and --valid-ids
    replace --split."""
    ids = [flag for flag, path in (("--train-ids", args.train_ids), ("--valid-ids", args.valid_ids)) if path]
    if ids and not getattr(args, "movielens", None):
        raise ValueError("--train-ids and --valid-ids select ratings of a --movielens folder; give --movielens DIR")
    if ids and (args.split is not None or args.leave_out is not None):
        raise ValueError(f"{' and '.join(ids)} replace --split and --leave-out: give one way to split")
    if not getattr(args, "movielens", None):
        given = [f"--{name.replace('_', '-')}" for name in ("split", "leave_out", "variant")
                 if getattr(args, name, None) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --movielens "
                             "data only; split your own data beforehand (sr.data.time_split, random_split, "
                             "leave_last_n_out) and give both parts as --train and --valid")
        return
    if args.leave_out is not None and args.split != "leave-last":
        raise ValueError(f"--leave-out is the number --split leave-last holds out; --split is {args.split or 'random'}")
    args.split = args.split or "random"
    args.leave_out = args.leave_out or 1


def check_etl(args):
    check_movielens_arguments(args)
    if args.movielens and args.train:
        raise ValueError("give --movielens or --train, not both")
    if not args.movielens and not (args.train and args.schema):
        raise ValueError("give --schema and --train (or --movielens DIR)")
    if args.valid and args.movielens:
        raise ValueError("--valid goes with --train; --movielens data is split by --split")


def _split(frame, args):
    from schemaretrieval import data

    if args.split == "time":
        return data.time_split(frame, "timestamp", test_fraction=args.test_fraction)
    if args.split == "leave-last":
        return data.leave_last_n_out(frame, args.leave_out, seed=args.seed)
    return data.random_split(frame, args.test_fraction, seed=args.seed)


def run_etl(args):
    """Runs the ETL for `schemaretrieval etl` (and for `train --movielens`)."""
    from schemaretrieval import datasets
    from schemaretrieval import etl as etl_lib

    if args.movielens:
        if args.train:
            raise ValueError("give --movielens or --train, not both")
        frame = datasets.movielens(args.movielens, args.variant)
        variant = args.variant or datasets.guess_variant(args.movielens)
        schema = args.schema or datasets.movielens_schema_path(variant)
        given = [f"{flag} {path}" for flag, path in (("--train-ids", args.train_ids), ("--valid-ids", args.valid_ids))
                 if path]
        if given:
            train, valid = datasets.split_by_ids(frame, args.train_ids, args.valid_ids, folder=args.movielens)
            how = " and ".join(given)
        else:
            train, valid = _split(frame, args)
            how = f"--split {args.split}"
        log.info("MovieLens %s from %s: %d ratings, split by %s into %d train and %d valid", variant,
                 args.movielens, len(frame), how, len(train), len(valid))
        if len(train) + len(valid) < len(frame):
            log.info("%d ratings named by neither file left out", len(frame) - len(train) - len(valid))
    else:
        if not (args.train and args.schema):
            raise ValueError("give --schema and --train (or --movielens DIR)")
        schema, train, valid = args.schema, args.train, getattr(args, "valid", None)
    with Step("ETL") as step:
        result = etl_lib.fit_transform(train, valid, schema, args.out, device=args.device, dask=args.dask_scheduler,
                                       on_bad_rows=getattr(args, "on_bad_rows", "error"))
        report = result.report
        step.rows = sum(report.get(split, {}).get("rows", 0) for split in ("train", "valid"))
    for split in ("train", "valid"):
        if report.get(split, {}).get("skipped"):
            print(f"left out {report[split]['skipped']} bad {split} rows: {report[split]['bad_rows']}")
    print(f"wrote {report['train']['rows']} train"
          + (f" and {report['valid']['rows']} valid" if "valid" in report else "")
          + f" rows to {result.out_dir} (device {report['device']})")
    # Values of valid/ outside the training vocabulary: the ETL's warnings name them, column by column.
    return result
