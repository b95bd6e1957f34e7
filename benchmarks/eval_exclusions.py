"""Evaluation with each user's training items excluded, at a query per held-out row:
the exclusions bound to the queries and read a chunk at a time
(`Exclusions.for_queries`, what `evaluate_topk` and the baselines pass) beside
the CSR of every query built at once (`Exclusions.positions`), in one run.

What is measured
    Training pairs over ``--users`` users and ``--items`` items (``--history``
    distinct items per user on average), ``--queries`` held-out rows (users
    drawn at random, so a user's exclusions repeat once per row of theirs, as
    in evaluation), 16-wide random embeddings. Each way runs in its own
    process: `Exclusions` built from the pairs, then `evaluate_ranking` over
    the whole catalog with them. "s" is that wall time; "peak RSS" is the
    process's ``ru_maxrss``. Both ways must give the same recall@10 and
    @100, or the script fails.

    python benchmarks/eval_exclusions.py [--users 138000] [--items 26744]
        [--history 115] [--queries 1000000]

The defaults are MovieLens-20M's users, items and training rows per user,
with a million of its four million held-out rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAYS = {"chunks": "bound to the queries, a chunk at a time (for_queries)",
        "at once": "every query's CSR at once (positions)"}


def one(way, users, items, history, queries):
    import numpy as np

    import schemaretrieval as sr
    from schemaretrieval.retrieval.topk import embedding_scorer

    rng = np.random.default_rng(0)
    pairs = users * history
    train_users, train_items = rng.integers(0, users, pairs), rng.integers(0, items, pairs)
    query_users, targets = rng.integers(0, users, queries), rng.integers(0, items, queries)
    user_vectors = rng.standard_normal((users, 16)).astype("float32")
    item_vectors = rng.standard_normal((items, 16)).astype("float32")
    start = time.perf_counter()
    seen = sr.data.Exclusions(train_users, train_items)
    catalog = np.arange(items)
    exclude = seen.for_queries(query_users, catalog) if way == "chunks" else seen.positions(query_users, catalog)
    metrics = sr.evaluation.evaluate_ranking(embedding_scorer(user_vectors[query_users], item_vectors), targets,
                                             ks=(10, 100), exclude=exclude)
    seconds = time.perf_counter() - start
    return {"s": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "recall@10": metrics["recall@10"], "recall@100": metrics["recall@100"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=138_000)
    p.add_argument("--items", type=int, default=26_744)
    p.add_argument("--history", type=int, default=115)
    p.add_argument("--queries", type=int, default=1_000_000)
    p.add_argument("--one", choices=tuple(WAYS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shape = [str(v) for v in (args.users, args.items, args.history, args.queries)]
    if args.one:
        print(json.dumps(one(args.one, args.users, args.items, args.history, args.queries)))
        return
    print(f"{args.users:,} users x {args.history} items each over {args.items:,} items; {args.queries:,} queries")
    print(f"{'exclusions':<58} {'s':>7} {'peak RSS':>9} {'r@10':>7} {'r@100':>7}")
    results = {}
    for way, label in WAYS.items():
        done = subprocess.run([sys.executable, __file__, "--one", way, "--users", shape[0], "--items", shape[1],
                               "--history", shape[2], "--queries", shape[3]], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label}: {done.stderr[-2000:]}")
        r = results[way] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{label:<58} {r['s']:>7.1f} {r['peak_gb']:>7.2f} GB {r['recall@10']:>7.4f} {r['recall@100']:>7.4f}",
              flush=True)
    a, b = results["chunks"], results["at once"]
    if (a["recall@10"], a["recall@100"]) != (b["recall@10"], b["recall@100"]):
        raise SystemExit("the two ways disagree on recall")
    print(f"chunks / at once: {a['s'] / b['s']:.2f}x the time, {a['peak_gb'] / b['peak_gb']:.2f}x the peak memory")


if __name__ == "__main__":
    main()
