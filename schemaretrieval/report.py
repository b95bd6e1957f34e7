"""`schemaretrieval evaluate`: a saved model and baselines side by side.

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

log = logging.getLogger("schemaretrieval")

CURVE_KS = tuple(range(1, 101))
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


def add_evaluate_parser(sub):
    p = sub.add_parser(
        "evaluate",
        help="recall@k of a model and baselines side by side",
        description=EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="a directory written by `schemaretrieval train --out` (model.keras, schema.yaml)")
    p.add_argument(
        "--baseline", action="append", choices=BASELINES, default=[],
        help="a baseline to put beside the model (repeatable)",
    )
    p.add_argument("--schema", help="the YAML schema (default: the model's schema.yaml, or the preset's)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="interactions: a parquet file or directory, or a csv file")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N interactions from the schema")
    source.add_argument("--preset", choices=PRESETS, help="a generated preset (its own schema)")
    p.add_argument("--valid", help="held-out interactions; default: --test-fraction of the data")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out when --valid is not given (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seeds data generation and the split (as in train)")
    p.add_argument("--exclude-seen", action="store_true", help="remove each user's training items from its ranking")
    p.add_argument("--ease-l2", type=float, default=500.0, help="EASE's regularisation (default 500)")
    p.add_argument("--ks", default="10,100", help="cut-offs of the printed table (default 10,100)")
    p.add_argument("--out", help="directory for recall_at_k.csv, recall_at_k.png and evaluate.json")
    p.set_defaults(run=evaluate)
    return p


PRESETS = ("movielens-like",)


def preset(name: str, seed: int = 0):
    """``(interactions, schema)`` of a named generated preset."""
    from schemaretrieval import data as data_lib

    if name == "movielens-like":
        return data_lib.movielens_like(seed=seed)
    raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")


def _schema(args):
    import schemaretrieval as sr

    if args.schema:
        return sr.load_schema(args.schema)
    if args.model:
        return sr.load_schema(Path(args.model) / "schema.yaml")
    if args.preset:
        return None  # the preset's own
    raise ValueError("give --schema (or --model, whose schema.yaml is used, or --preset)")


def split_data(args, schema):
    """``(train, test, all, source, schema)`` as `train` and `evaluate` make them."""
    import pandas as pd

    from schemaretrieval import data as data_lib

    if getattr(args, "preset", None):
        frame, preset_schema = preset(args.preset, args.seed)
        schema = schema or preset_schema
        source = f"--preset {args.preset}"
    elif args.synthetic is not None:
        frame = data_lib.synthetic(schema, args.synthetic, seed=args.seed)
        source = f"--synthetic {args.synthetic}"
    else:
        frame = data_lib.read_table(args.data)
        source = args.data
    if args.valid:
        # The catalog holds every item of either part: held-out items the
        # training data never saw (the ETL's OOV id among them) are ranked too.
        valid = data_lib.read_table(args.valid)
        return frame, valid, pd.concat([frame, valid], ignore_index=True), source, schema
    train, test = data_lib.random_split(frame, args.test_fraction, seed=args.seed)
    return train, test, frame, source, schema


def rankers(args, schema, train):
    """name -> a function (test, catalog, ks, exclude) -> metrics."""
    import schemaretrieval as sr
    from schemaretrieval.schema import item_id_column, user_id_column

    item_id, user_id = item_id_column(schema), user_id_column(schema)
    out = {}
    if args.model:
        model = sr.load_model(Path(args.model) / "model.keras")
        out["two-tower"] = lambda test, catalog, ks, exclude: model.evaluate_topk(test, catalog, ks=ks, exclude=exclude)
    for name in dict.fromkeys(args.baseline):
        if name == "popularity":
            fitted = sr.baselines.Popularity().fit(train, item_id, user_id_col=user_id)
        else:
            fitted = sr.baselines.EASE(args.ease_l2).fit(train, user_id, item_id)
        out[name] = lambda test, catalog, ks, exclude, fitted=fitted: fitted.evaluate_topk(
            test, candidate_ids=catalog[item_id].to_numpy(), ks=ks, exclude=exclude
        )
    return out


def recall_curves(metrics: dict[str, dict[str, float]], ks=CURVE_KS):
    """A DataFrame: one row per k, one recall@k column per ranker."""
    import pandas as pd

    table = pd.DataFrame({name: [m[f"recall@{k}"] for k in ks] for name, m in metrics.items()}, index=list(ks))
    table.index.name = "k"
    return table


def plot_curves(curves, path, title: str = "") -> None:
    """recall@k against k, one line per ranker, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for name in curves.columns:
        ax.plot(curves.index, curves[name], label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_xlim(1, curves.index.max())
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(args) -> dict:
    import schemaretrieval as sr
    from schemaretrieval.cli import format_table

    if not args.model and not args.baseline:
        raise ValueError("give --model DIR and/or --baseline popularity|ease")
    from schemaretrieval.etl_cli import resolve_train_data

    ks = [int(k) for k in args.ks.split(",")]
    resolve_train_data(args)  # an ETL output directory brings its schema and valid/, as in train
    schema = _schema(args)
    train, test, everything, source, schema = split_data(args, schema)
    log.info("data: %s, %d train and %d test interactions", source, len(train), len(test))
    catalog = sr.data.candidate_table(everything, schema)
    exclude = train if args.exclude_seen else None
    curve_ks = sorted(set(CURVE_KS) | set(ks))
    metrics = {name: fn(test, catalog, curve_ks, exclude) for name, fn in rankers(args, schema, train).items()}
    suffix = " (seen items excluded)" if args.exclude_seen else ""
    print(format_table(metrics, [f"recall@{k}" for k in ks]) + ("\n" + suffix.strip() if suffix else ""))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        curves = recall_curves(metrics)
        curves.to_csv(out / "recall_at_k.csv", float_format="%.6f")
        plot_curves(curves, out / "recall_at_k.png", f"{source}{suffix}, {len(catalog)} items")
        summary = {
            "source": source,
            "exclude_seen": bool(args.exclude_seen),
            "num_train": len(train),
            "num_test": len(test),
            "num_items": len(catalog),
            "metrics": {name: {key: value for key, value in m.items() if int(key.split("@")[1]) in ks} for name, m in metrics.items()},
        }
        (out / "evaluate.json").write_text(json.dumps(summary, indent=2))
        print(f"wrote {out / 'recall_at_k.csv'} and {out / 'recall_at_k.png'}")
    return metrics
