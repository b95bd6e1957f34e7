"""Full-catalog evaluation against a plain numpy matmul + argpartition over the
same embeddings, at 100k and 1M items, in one run (issue tracker "Scale", item 5).

What is measured
    For each catalog size, recall@10 and recall@100 of ``--queries`` query
    users against every item, once over the whole catalog and once with each
    user's training items excluded, by two programs in their own processes:

    ours    `sr.evaluation.evaluate_ranking(embedding_scorer(queries, items), targets,
            ks=(10, 100), exclude=(indptr, positions))`: what `model.evaluate_topk`
            runs once the towers have embedded the queries and the catalog.
    numpy   per chunk of queries (the same 128 MiB of scores), ``queries @ items.T``,
            the excluded items set to -inf, ``np.argpartition`` for the 101 best,
            then the pessimistic tie rule of `sr.evaluation` (a target is a hit at
            k when the k-th best of the other items scores below it).

    The seconds are wall time of each evaluation alone (the embeddings are
    generated before the clock starts); the ratio is ours / numpy. "matmul s"
    is numpy's chunked ``queries @ items.T`` alone, doing nothing with the
    scores: the floor of any exact evaluation on this machine. Peak RSS
    (``ru_maxrss``) is of each process, which generates the same embeddings.
    Both must give the same recall at every k, or the script fails.

Data
    Items fall in clusters (item i in cluster i % 1000); a user's target is an
    item of one cluster, its query embedding lies between the target and the
    cluster's centre, and its 10-50 training items (the exclusions) are other
    items of the same cluster (never the target), so that excluding them
    changes the ranks. Every
    embedding value is an integer in [-256, 256] stored as float32: 64
    products of at most 2**16 sum to less than 2**24, so every dot product is
    exact in float32 in any summation order and the two programs' scores, and
    therefore their recall, can be required to be equal.

The serving export (``--export``)
    In a fresh process: `sr.TwoTowerModel(schema)`, defaults and untrained, on
    a schema of a user id (10k) and an item id over the largest ``--items``,
    the ids encoded as the ETL encodes them (first id 3) with raw-id
    vocabularies for both, then `serving.export_serving(model, catalog, out,
    k=100, artifacts=vocabularies)` as `schemaretrieval train --data ETL_OUT`
    exports, and one request to the loaded SavedModel. Peak RSS
    (``ru_maxrss``) of the whole process, and before the export began; the
    target is under 4 GB.

Run
    python benchmarks/eval_scale.py [--items 100000,1000000] [--queries 10000] [--dim 64] [--export]

Timings on a shared machine drift between runs: compare the rows of one run.
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

import numpy as np

HERE = Path(__file__).resolve().parent
KS = (10, 100)
CLUSTERS = 1000
CHUNK_BYTES = 128 * 2**20  # the library's `retrieval.topk.CHUNK_BYTES`, so both sides hold as many scores


def generate(items: int, queries: int, dim: int, seed: int = 0):
    """(query embeddings, item embeddings, targets, exclusions as CSR (indptr, positions))."""
    rng = np.random.default_rng(seed)
    clusters = min(CLUSTERS, items)
    centres = rng.normal(0.0, 25.0, (clusters, dim))

    def quantize(x):
        return np.clip(np.rint(x), -256, 256).astype(np.float32)

    item_emb = np.empty((items, dim), np.float32)
    for start in range(0, items, 100_000):  # in pieces: no [items, dim] float64 temporary
        stop = min(start + 100_000, items)
        item_emb[start:stop] = quantize(centres[np.arange(start, stop) % clusters]
                                        + rng.normal(0.0, 55.0, (stop - start, dim)))
    cluster = rng.integers(0, clusters, queries)
    per_cluster = (items - cluster - 1) // clusters + 1  # items i with i % clusters == c
    targets = cluster + clusters * rng.integers(0, per_cluster)
    query_emb = quantize(0.4 * item_emb[targets] + 0.6 * centres[cluster] + rng.normal(0.0, 50.0, (queries, dim)))
    counts = rng.integers(10, 51, queries)
    indptr = np.zeros(queries + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    row_cluster = np.repeat(cluster, counts)
    positions = row_cluster + clusters * rng.integers(0, np.repeat(per_cluster, counts))
    own = positions == np.repeat(targets, counts)  # a training item is not the held-out one: the next of its cluster
    positions[own] = np.where(positions[own] + clusters < items, positions[own] + clusters, row_cluster[own])
    return query_emb, item_emb, targets.astype(np.int64), (indptr, positions.astype(np.int64))


def numpy_recall(query_emb, item_emb, targets, exclude, ks=KS):
    """{recall@k}: matmul + argpartition a chunk of queries at a time, pessimistic ties."""
    num_queries, num_items = len(query_emb), len(item_emb)
    top = max(ks) + 1  # the k-th best of the *other* items is among the best max(k) + 1
    items_t = np.ascontiguousarray(item_emb.T)
    rows_per_chunk = max(1, CHUNK_BYTES // (4 * num_items))
    hits = {k: 0 for k in ks}
    for start in range(0, num_queries, rows_per_chunk):
        stop = min(start + rows_per_chunk, num_queries)
        scores = query_emb[start:stop] @ items_t
        target = targets[start:stop]
        excluded_target = np.zeros(stop - start, bool)
        if exclude is not None:
            indptr, positions = exclude
            lo, hi = indptr[start], indptr[stop]
            rows = np.repeat(np.arange(stop - start), np.diff(indptr[start:stop + 1]))
            scores[rows, positions[lo:hi]] = -np.inf
            excluded_target[rows[positions[lo:hi] == target[rows]]] = True
        target_score = scores[np.arange(stop - start), target]
        best = np.argpartition(scores, num_items - top, axis=1)[:, num_items - top:]
        best_scores = np.take_along_axis(scores, best, axis=1)
        best_scores[best == target[:, None]] = -np.inf  # the others only
        best_scores = -np.sort(-best_scores, axis=1)
        valid = np.isfinite(target_score) & ~excluded_target
        for k in ks:
            hits[k] += int(np.sum(valid & (target_score > best_scores[:, k - 1])))
    return {f"recall@{k}": hits[k] / num_queries for k in ks}


def numpy_matmul_only(query_emb, item_emb):
    """The floor: the same chunks of ``queries @ items.T``, nothing done with them."""
    items_t = np.ascontiguousarray(item_emb.T)
    rows_per_chunk = max(1, CHUNK_BYTES // (4 * len(item_emb)))
    for start in range(0, len(query_emb), rows_per_chunk):
        query_emb[start:start + rows_per_chunk] @ items_t


def ours_recall(query_emb, item_emb, targets, exclude, ks=KS):
    from schemaretrieval.evaluation import evaluate_ranking
    from schemaretrieval.retrieval.topk import embedding_scorer

    metrics = evaluate_ranking(embedding_scorer(query_emb, item_emb), targets, ks=ks, exclude=exclude)
    return {f"recall@{k}": metrics[f"recall@{k}"] for k in ks}


def worker(side: str, items: int, queries: int, dim: int) -> dict:
    query_emb, item_emb, targets, exclude = generate(items, queries, dim)
    fn = ours_recall if side == "ours" else numpy_recall
    if side == "ours":  # import and trace on a few queries, outside the clock, as numpy needs no warm-up
        fn(query_emb[:8], item_emb, targets[:8], None)
    out = {"side": side, "items": items, "queries": queries, "dim": dim}
    for name, ex in (("all", None), ("excluded", exclude)):
        start = time.perf_counter()
        out[name] = fn(query_emb, item_emb, targets, ex)
        out[f"{name}_seconds"] = time.perf_counter() - start
    if side == "numpy":
        start = time.perf_counter()
        numpy_matmul_only(query_emb, item_emb)
        out["matmul_seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def export_worker(items: int) -> dict:
    """Peak RSS of `serving.export_serving` over ``items`` items, raw ids in and out, in this process."""
    import tempfile

    import pandas as pd
    import tensorflow as tf

    import schemaretrieval as sr
    from schemaretrieval import serving

    users = 10_000
    first = 3  # the ETL's first id: 0-2 are its padding, null and out-of-vocabulary ids
    schema = sr.schema.schema_from_dict({
        "name": "eval_scale",
        "columns": {
            "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64",
                        "domain": {"min": 0, "max": users + first - 1}},
            "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64",
                        "domain": {"min": 0, "max": items + first - 1}},
        },
    })
    model = sr.TwoTowerModel(schema)
    model.build()
    catalog = sr.data.Catalog(pd.DataFrame({"item_id": np.arange(first, items + first)}), model.schema)
    vocabularies = {"user_id": sr.etl.Vocabulary([f"u{i}" for i in range(users)], np.arange(users) + first),
                    "item_id": sr.etl.Vocabulary([f"i{i}" for i in range(items)], np.arange(items) + first)}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        serving.export_serving(model, catalog, out, k=100, artifacts=vocabularies)
        seconds = time.perf_counter() - start
        loaded = tf.saved_model.load(out)
        result = loaded.signatures["serving_default"](user_id=tf.constant(["u1", "u2"]))
        top = [x.decode() for x in result["ids"].numpy()[0][:3]]
        disk_mb = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) / 2**20
    return {"items": items, "table_rows": items + first, "seconds": seconds,
            "peak_before_mb": before, "disk_mb": disk_mb, "top": top,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def run_worker(args: list[str]) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(args)} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="100000,1000000", help="catalog sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--export", action="store_true", help="also the export's peak RSS (benchmarks/memory.py)")
    parser.add_argument("--side", choices=("ours", "numpy", "export"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "export":
        print(json.dumps(export_worker(int(args.items))))
        return
    if args.side:
        print(json.dumps(worker(args.side, int(args.items), args.queries, args.dim)))
        return

    print(f"{'items':>9} {'queries':>7} {'exclusions':>10} {'ours s':>7} {'numpy s':>7} {'ratio':>6} {'matmul s':>8} "
          f"{'recall@10':>9} {'recall@100':>10} {'ours RSS MB':>11} {'numpy RSS MB':>12}")
    failed = False
    for items in (int(x) for x in args.items.split(",")):
        common = ["--items", str(items), "--queries", str(args.queries), "--dim", str(args.dim)]
        ours = run_worker(["--side", "ours", *common])
        base = run_worker(["--side", "numpy", *common])
        for name in ("all", "excluded"):
            # the same hits: recall is a mean of 0s and 1s, summed in another order by each side
            same = all(round(ours[name][key] * args.queries) == round(base[name][key] * args.queries)
                       for key in base[name])
            failed |= not same
            ratio = ours[f"{name}_seconds"] / base[f"{name}_seconds"]
            recall = "  ".join(f"{ours[name][f'recall@{k}']:.4f}" for k in KS)
            print(f"{items:>9} {args.queries:>7} {'seen' if name == 'excluded' else 'none':>10} "
                  f"{ours[f'{name}_seconds']:>7.1f} {base[f'{name}_seconds']:>7.1f} {ratio:>6.2f} {base['matmul_seconds']:>8.1f} "
                  f"{recall:>20} {ours['peak_rss_mb']:>11.0f} {base['peak_rss_mb']:>12.0f}"
                  + ("" if same else f"  RECALL DIFFERS: ours {ours[name]} numpy {base[name]}"), flush=True)
    if args.export:
        items = max(int(x) for x in args.items.split(","))
        r = run_worker(["--side", "export", "--items", str(items)])
        print(f"\nserving export, sr.TwoTowerModel(schema), {r['items']} items ({r['table_rows']} id rows), "
              f"raw ids in and out: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
              f"({r['peak_before_mb']:.0f} MB before the export), {r['disk_mb']:.0f} MB on disk, "
              f"{'under' if r['peak_rss_mb'] < 4096 else 'OVER'} 4 GB", flush=True)
        failed |= r["peak_rss_mb"] >= 4096
    if failed:
        raise SystemExit("ours and numpy disagree on recall, or the export is over 4 GB")


if __name__ == "__main__":
    main()
