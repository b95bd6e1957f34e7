"""`schemaretrieval evaluate`: a saved model and baselines side by side on held-out interactions.

Recall@k for k = 1..100 of every ranker on the same held-out interactions,
printed as a table at a few cut-offs and written to ``--out`` as a CSV table
(``recall_at_k.csv``: one row per k, one column per ranker), a PNG plot
(``recall_at_k.png``) and ``evaluate.json`` (every metric at the printed
cut-offs).

"Seen" items are the training interactions of the split the command makes
(or ``--data`` itself when ``--valid`` is given); ``--exclude-seen`` passes
them as ``exclude=`` to every ranker, model and baselines alike.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from schemaretrieval.cli import common
from schemaretrieval.progress import Step

log = logging.getLogger("schemaretrieval")

BASELINES = ("popularity", "ease")

EVALUATE_HELP = """\
Evaluate a trained model (the --out directory of `schemaretrieval train`)
and/or baselines on held-out interactions, ranking the whole catalog.

The data and the split are made as `train` makes them: give the same --data,
--synthetic N or --preset, --test-fraction and --seed as when training, so
that the model is evaluated on interactions it has not seen.

example:
  schemaretrieval train --preset movielens-like --epochs 10 --out runs/ml
  schemaretrieval evaluate --model runs/ml --preset movielens-like \\
      --baseline popularity --baseline ease --exclude-seen --out runs/ml/report
"""


def add_parser(sub):
    p = sub.add_parser("evaluate", help="recall@k of a model and baselines side by side", description=EVALUATE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a directory written by `schemaretrieval train --out` (model.keras, schema.yaml)")
    p.add_argument("--baseline", action="append", choices=BASELINES, default=[],
                   help="a baseline to put beside the model (repeatable)")
    p.add_argument("--schema", help="the YAML schema (default: the model's schema.yaml, or the preset's)")
    source = p.add_mutually_exclusive_group(required=True)
    common.add_source_arguments(p, source)
    p.add_argument("--exclude-seen", action="store_true", help="remove each user's training items from its ranking")
    p.add_argument("--ease-l2", type=common.positive_float, default=500.0, help="EASE's regularisation (default 500)")
    p.add_argument("--ks", type=common.cutoffs, default=[10, 100], help="cut-offs of the printed table (default 10,100)")
    p.add_argument("--out", type=common.directory,
                   help="directory for recall_at_k.csv, recall_at_k.png and evaluate.json")
    p.set_defaults(run=evaluate)
    return p


def _schema(args):
    from schemaretrieval.schema import load_schema

    if args.model:
        folder = Path(args.model)
        missing = [name for name in ("schema.yaml", "model.keras") if not (folder / name).is_file()]
        if missing:  # else "[Errno 20] Not a directory: 'afile/schema.yaml'", naming no option
            what = "is not a directory" if not folder.is_dir() else f"lacks {' and '.join(missing)}"
            raise ValueError(f"--model {args.model}: {what}; give a directory written by `schemaretrieval train "
                             "--out` (model.keras, schema.yaml)")
    if args.schema:
        return load_schema(args.schema)
    if args.model:
        return load_schema(Path(args.model) / "schema.yaml")
    return None  # the preset's, or the ETL output's


def rankers(args, schema, train):
    """name -> a function (test, catalog, ks, exclude) -> metrics."""
    import schemaretrieval as sr
    from schemaretrieval.schema import item_id_column, user_id_column

    item_id, user_id = item_id_column(schema), user_id_column(schema)
    out = {}
    if args.model:
        model = sr.load_model(Path(args.model) / "model.keras")
        out["two-tower"] = lambda test, catalog, ks, exclude: model.evaluate_topk(test, catalog, ks=ks, exclude=exclude)
    table = common.interactions_table(train, [c for c in (user_id, item_id) if c]) if args.baseline else None
    for name in dict.fromkeys(args.baseline):
        if name == "popularity":
            fitted = sr.baselines.Popularity().fit(table, user_id, item_id)
        else:
            fitted = sr.baselines.EASE(args.ease_l2).fit(table, user_id, item_id)
        out[name] = lambda test, catalog, ks, exclude, fitted=fitted: fitted.evaluate_topk(
            test, candidate_ids=catalog.ids, ks=ks, exclude=exclude)
    return out


def evaluate(args) -> dict:
    import schemaretrieval as sr
    from schemaretrieval.evaluation.report import CURVE_KS, plot_curves, recall_curves

    if not args.model and not args.baseline:
        raise ValueError("give --model DIR and/or --baseline popularity|ease")
    ks = args.ks  # common.cutoffs parsed them
    data = common.sources(args, _schema(args))
    schema = data.schema
    log.info("data: %s", data.source)
    catalog = sr.data.Catalog.from_interactions(data.everything, schema)
    test = sr.data.read_table(data.test) if not hasattr(data.test, "columns") else data.test
    exclude = None
    if args.exclude_seen:
        exclude = sr.data.Exclusions.from_interactions(data.train, sr.schema.user_id_column(schema),
                                                       sr.schema.item_id_column(schema))
    curve_ks = sorted(set(CURVE_KS) | set(ks))
    with Step("evaluation") as step:
        metrics = {name: fn(test, catalog, curve_ks, exclude) for name, fn in rankers(args, schema, data.train).items()}
        step.rows = len(test) * len(metrics)
    suffix = " (seen items excluded)" if args.exclude_seen else ""
    print(common.format_table(metrics, [f"recall@{k}" for k in ks]) + ("\n" + suffix.strip() if suffix else ""))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        curves = recall_curves(metrics)
        curves.to_csv(out / "recall_at_k.csv", float_format="%.6f")
        plot_curves(curves, out / "recall_at_k.png", f"{data.source}{suffix}, {len(catalog)} items")
        summary = {
            "source": data.source,
            "exclude_seen": bool(args.exclude_seen),
            "num_train": common.num_rows(data.train),
            "num_test": len(test),
            "num_items": len(catalog),
            "metrics": {name: {key: value for key, value in m.items() if int(key.split("@")[1]) in ks}
                        for name, m in metrics.items()},
        }
        (out / "evaluate.json").write_text(json.dumps(summary, indent=2))
        print(f"wrote {out / 'recall_at_k.csv'} and {out / 'recall_at_k.png'}")
    return metrics
