"""Serving speed: exact brute force (TensorFlow) against approximate FAISS.

1M generated candidates of dim 64 by default (a mixture of 1,000 Gaussian
clusters on the unit sphere, as trained unit-norm towers give; queries drawn
the same way). For each index: queries/s and p50/p99 latency for single
queries and for batches of 256, and the approximate indexes' recall@10
against the exact top-10, in one run.

    python benchmarks/serving.py                      # 1M x 64
    python benchmarks/serving.py --candidates 100000  # smaller, faster
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from schemaretrieval.serving.indexes import BruteForce, Faiss  # noqa: E402


def generate(n, dim, clusters, rng):
    centers = rng.normal(size=(clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32"), centers


def timed(index, queries, batch, k, repeats):
    latencies, results = [], []
    for start in range(0, min(len(queries), batch * repeats), batch):
        q = queries[start : start + batch]
        t = time.perf_counter()
        results.append(index.search(q, k)[1])
        latencies.append(time.perf_counter() - t)
    lat = np.array(latencies)
    return {
        "queries_per_s": round(batch * len(lat) / lat.sum(), 1),
        "p50_ms": round(1e3 * float(np.percentile(lat, 50)), 2),
        "p99_ms": round(1e3 * float(np.percentile(lat, 99)), 2),
        "calls": len(lat),
    }, np.concatenate(results)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--single", type=int, default=200, help="single queries timed")
    p.add_argument("--batches", type=int, default=8, help="batches of 256 timed")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=80)
    p.add_argument("--ef-search", type=int, default=64)
    p.add_argument("--nlist", type=int, default=None)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    candidates, centers = generate(args.candidates, args.dim, args.clusters, rng)
    n_queries = max(args.single, 256 * args.batches)
    queries = centers[rng.integers(0, args.clusters, n_queries)] + 0.5 * rng.normal(size=(n_queries, args.dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype("float32")
    print(f"{args.candidates} candidates x dim {args.dim}, {os.cpu_count()} cpus; k={args.k}")

    indexes = {
        "brute-force (tf)": BruteForce(),
        f"faiss hnsw (M={args.hnsw_m}, efSearch={args.ef_search})": Faiss(
            "hnsw", m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=args.ef_search),
        f"faiss ivf (nprobe={args.nprobe})": Faiss("ivf", nlist=args.nlist, nprobe=args.nprobe),
    }
    results, exact = {}, None
    for name, index in indexes.items():
        t = time.perf_counter()
        index.index(candidates)
        build = time.perf_counter() - t
        index.search(queries[:256], args.k)  # warm-up (tracing)
        single, _ = timed(index, queries, 1, args.k, args.single)
        batch, found = timed(index, queries, 256, args.k, args.batches)
        row = {"build_s": round(build, 1), "single": single, "batch256": batch}
        if exact is None:
            exact = found
        else:
            row["recall@10"] = round(float(np.mean([len(set(a) & set(e)) / args.k for a, e in zip(found, exact)])), 4)
        results[name] = row
        print(name, json.dumps(row), flush=True)
    base = results["brute-force (tf)"]
    print(f"\n{'index':<40} {'build s':>8} {'1q q/s':>9} {'1q p50':>8} {'1q p99':>8} "
          f"{'256 q/s':>9} {'256 p50':>9} {'256 p99':>9} {'recall@10':>9} {'x bf (1q/256)':>14}")
    for name, r in results.items():
        speed = (f"{r['single']['queries_per_s'] / base['single']['queries_per_s']:.0f}/"
                 f"{r['batch256']['queries_per_s'] / base['batch256']['queries_per_s']:.0f}")
        print(f"{name:<40} {r['build_s']:>8} {r['single']['queries_per_s']:>9} {r['single']['p50_ms']:>7}ms "
              f"{r['single']['p99_ms']:>7}ms {r['batch256']['queries_per_s']:>9} {r['batch256']['p50_ms']:>8}ms "
              f"{r['batch256']['p99_ms']:>8}ms {r.get('recall@10', 1.0):>9} {speed:>14}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
