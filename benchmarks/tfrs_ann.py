"""The approximate top-k layer of schemaretrieval.tfrs (`ScaNN`, a FAISS-trained
partition searched in TensorFlow ops) against exact `BruteForce` and FAISS's
own indexes: build time, query latency and recall@10.

What is measured
    A catalog of N candidate embeddings (dim 32, a mixture of 1000 Gaussian
    clusters, as trained embeddings cluster) and 1000 queries from the same
    mixture. For each index: the seconds `index()` takes; the milliseconds
    per call for one query and for a batch of 100 (fastest of --repeats
    runs, after one warm-up call); recall@10 against the exact top 10.
    Rows:
      - tfrs.BruteForce: exact, one matmul and top_k in TensorFlow;
      - tfrs.ScaNN at TFRS's defaults (100 leaves, 10 searched) and at
        sqrt(N) leaves with 1% and 3% of them searched;
      - faiss IndexIVFFlat with the same centroids and nprobe (what ScaNN's
        TensorFlow search reproduces, in FAISS's C++), and faiss HNSW
        (schemaretrieval.index.Faiss("hnsw")) for reference.
    Google's scann is not a row: it does not import beside TensorFlow 2.21
    (docs/migrating.md).

Run
    python benchmarks/tfrs_ann.py [--sizes 100000 1000000] [--repeats 5] [--threads N] [--hnsw-max 200000]

Timings on a shared machine drift: compare rows of one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

import schemaretrieval.tfrs as tfrs
from schemaretrieval.serving.indexes import Faiss

DIM = 32
NUM_QUERIES = 1000
K = 10


def mixture(n, seed, clusters=1000):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(size=(clusters, DIM))
    return (centers[rng.integers(clusters, size=n)] + 0.5 * rng.normal(size=(n, DIM))).astype("float32")


def fastest_ms(fn, repeats):
    fn()  # warm-up: tracing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def recall(ids, exact):
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / K for a, b in zip(ids, exact)]))


def run(n, repeats, hnsw_max):
    catalog, queries = mixture(n, seed=1), mixture(NUM_QUERIES, seed=2)
    rows = []

    def tf_layer(name, make):
        start = time.perf_counter()
        layer = make().index(catalog)
        build = time.perf_counter() - start
        search = tf.function(lambda q: layer(q, k=K), reduce_retracing=True)
        ids = np.concatenate([search(queries[i:i + 100])[1].numpy() for i in range(0, NUM_QUERIES, 100)])
        rows.append((name, build, fastest_ms(lambda: search(queries[:1])[1].numpy(), repeats),
                     fastest_ms(lambda: search(queries[:100])[1].numpy(), repeats), ids, layer))

    tf_layer("tfrs.BruteForce (exact)", lambda: tfrs.layers.factorized_top_k.BruteForce(k=K))
    exact = rows[0][4]
    leaves = int(np.sqrt(n))
    settings = [(100, 10), (leaves, max(1, leaves // 100)), (leaves, max(1, 3 * leaves // 100))]
    for num_leaves, searched in settings:
        tf_layer(f"tfrs.ScaNN leaves={num_leaves} search={searched}",
                 lambda: tfrs.layers.factorized_top_k.ScaNN(k=K, num_leaves=num_leaves, num_leaves_to_search=searched))
        layer = rows[-1][5]
        import faiss

        quantizer = faiss.IndexFlatIP(DIM)
        quantizer.add(layer._centroids.numpy())
        ivf = faiss.IndexIVFFlat(quantizer, DIM, num_leaves, faiss.METRIC_INNER_PRODUCT)
        ivf.is_trained = True
        start = time.perf_counter()
        ivf.add(catalog)
        build = time.perf_counter() - start
        ivf.nprobe = searched
        ids = ivf.search(queries, K)[1]
        rows.append((f"faiss IVFFlat same centroids, nprobe={searched}", build,
                     fastest_ms(lambda: ivf.search(queries[:1], K), repeats),
                     fastest_ms(lambda: ivf.search(queries[:100], K), repeats), ids, None))
    if n <= hnsw_max:  # HNSW's build grows fastest: minutes at a million on two cores
        start = time.perf_counter()
        hnsw = Faiss("hnsw").index(catalog)
        build = time.perf_counter() - start
        rows.append(("faiss HNSW m=32 ef_search=64", build, fastest_ms(lambda: hnsw.search(queries[:1], K), repeats),
                     fastest_ms(lambda: hnsw.search(queries[:100], K), repeats), hnsw.search(queries, K)[1], None))

    print(f"\ncatalog of {n:,} x {DIM}, {NUM_QUERIES} queries, k={K}")
    print(f"{'index':48s} {'build s':>8s} {'1 query ms':>11s} {'100 queries ms':>15s} {'recall@10':>10s}")
    for name, build, one, hundred, ids, _ in rows:
        print(f"{name:48s} {build:8.2f} {one:11.2f} {hundred:15.2f} {recall(ids, exact):10.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow and FAISS threads (default: theirs)")
    parser.add_argument("--hnsw-max", type=int, default=200_000, help="largest catalog that gets an HNSW row")
    args = parser.parse_args()
    if args.threads:
        import faiss

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    for n in args.sizes:
        run(n, args.repeats, args.hnsw_max)


if __name__ == "__main__":
    main()
