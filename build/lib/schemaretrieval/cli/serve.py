"""`schemaretrieval recommend` and `schemaretrieval similar-items`: answers from an exported model."""

from __future__ import annotations

from schemaretrieval.cli import common

__all__ = ["add_parsers", "recommend", "similar_items"]


def add_parsers(sub):
    p = sub.add_parser("recommend", help="top-k items for a user from an exported model")
    p.add_argument("--model", required=True, help="a `train --out` directory or an export_serving directory")
    p.add_argument("--user", required=True, help="the user id (raw when the export has the ETL's vocabulary)")
    p.add_argument("-k", type=common.positive_int, default=10, help="number of items (default 10)")
    p.add_argument("--exclude", default="", help="comma-separated item ids to leave out, besides the user's "
                   "training items that a `train --out` export leaves out itself")
    p.set_defaults(run=recommend)
    p = sub.add_parser("similar-items", help="the items nearest an item by candidate embedding")
    p.add_argument("--model", required=True, help="a `train --out` directory or an export_serving directory")
    p.add_argument("--item", required=True, help="the item id (raw when the export has the ETL's vocabulary)")
    p.add_argument("-k", type=common.positive_int, default=10, help="number of items (default 10)")
    p.set_defaults(run=similar_items)


def _print_items(items):
    print(f"{'rank':>4}  {'item':>12}  {'score':>9}")
    for rank, (item, score) in enumerate(items, 1):
        print(f"{rank:>4}  {item!s:>12}  {score:>9.4f}")


def recommend(args):
    from schemaretrieval.serving.client import recommend_from_export

    exclude = [x for x in args.exclude.split(",") if x]
    items = recommend_from_export(args.model, args.user, args.k, exclude=exclude)
    _print_items(items)
    return items


def similar_items(args):
    from schemaretrieval.serving.client import similar_items as neighbours

    items = neighbours(args.model, args.item, args.k)
    _print_items(items)
    return items
