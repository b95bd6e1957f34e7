"""Serving speed and recall on trained towers: exact brute force (TensorFlow) against
FAISS HNSW and IVF at their default settings (search width chosen at build time).

For each data shape, trains `TwoTowerModel` (the movielens-like preset; the
e-commerce log of `sr.data.ecommerce` through the ETL), scales the catalog to
``--candidates`` items with the shape's catalog generator
(`sr.data.movielens_like_catalog`, `sr.data.ecommerce_catalog`: the trained
items first, then new ones drawn the same way, whose id rows training never
moved), embeds it with the trained candidate tower, and queries with the
trained query tower's user embeddings: the even users tune the approximate
indexes' width, the odd ones are timed and scored. Prints, per index, the
build time, queries/s with p50/p99 latency for single queries and batches of
256, and recall@10 against the exact top-10 (an item counts when its exact
score reaches the exact 10th score, so ties at the 10th place are not misses).

    python benchmarks/serving.py                                  # both shapes, 1M items
    python benchmarks/serving.py --shapes ecommerce --candidates 100000
    python benchmarks/serving.py --inner-product                  # also FAISS's own inner-product HNSW (before)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import schemaretrieval as sr  # noqa: E402
from schemaretrieval.etl.artifacts import read_artifacts  # noqa: E402
from schemaretrieval.serving.indexes import BruteForce, Faiss  # noqa: E402
from schemaretrieval.serving.tuning import exact_threshold, recall_at_k  # noqa: E402


def movielens_like(candidates, epochs, seed):
    """(model, catalog embeddings, user embeddings) of the preset, the item domain widened."""
    frame, _ = sr.data.movielens_like(seed=seed)
    schema = sr.data.movielens_like_schema(943, max(candidates, 1682))
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(schema)
    model.compile()
    model.fit(frame, batch_size=1024, epochs=epochs, verbose=0)
    catalog = sr.data.movielens_like_catalog(frame, candidates, seed=seed)
    users = frame.drop_duplicates("user_id").sort_values("user_id")
    return model.candidate_embeddings(catalog, batch_size=16384), model.query_embeddings(users)


def ecommerce(candidates, epochs, seed):
    """The same for 100k rows of the e-commerce log, encoded by the ETL; the new
    products' ids are unknown to its vocabulary (the OOV id), their features known."""
    log = sr.data.ecommerce(100_000, seed=seed)
    train, valid = sr.data.random_split(log, 0.2, seed=seed)
    out = tempfile.mkdtemp(prefix="serving-bench-")
    etl = sr.etl.fit_transform(train, valid, "schemas/ecommerce.yaml", out, device="cpu")
    keras.utils.set_random_seed(seed)
    model = sr.TwoTowerModel(etl.schema)
    model.compile()
    model.fit(etl.train, batch_size=1024, epochs=epochs, verbose=0)
    art = read_artifacts(out)
    raw = sr.data.ecommerce_catalog(candidates, seed=seed)
    encoded = {name: art.vocabularies[name].encode(raw[name]) for name in ("item_id", "item_brand", "item_category")}
    lengths = raw["item_tags"].map(len).to_numpy()
    codes = art.vocabularies["item_tags"].encode(np.concatenate(raw["item_tags"].to_numpy()))
    encoded["item_tags"] = np.split(codes, np.cumsum(lengths)[:-1])
    encoded["item_price"] = art.continuous["item_price"](raw["item_price"].to_numpy()).numpy()
    # the unknown ids share the OOV id, so this is a table of rows, not a Catalog (ids unique)
    frame = pd.DataFrame(encoded)
    users = sr.data.read_table(etl.train).drop_duplicates("user_id")
    return model.candidate_embeddings(frame, batch_size=16384), model.query_embeddings(users)


def timed(index, queries, batch, repeats, k=10):
    latencies, found = [], []
    for start in range(0, min(len(queries), batch * repeats), batch):
        q = queries[start:start + batch]
        began = time.perf_counter()
        _, positions = index.search(q, k)
        latencies.append(time.perf_counter() - began)
        found.append(positions)
    lat = np.array(latencies)
    return batch * len(lat) / lat.sum(), 1e3 * np.percentile(lat, 50), 1e3 * np.percentile(lat, 99), \
        np.concatenate(found)


class InnerProductHNSW(Faiss):
    """FAISS's own inner-product HNSW at ef_search 64: what the library did before."""

    def _add(self, embeddings):
        import faiss

        index = faiss.IndexHNSWFlat(embeddings.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.add(embeddings)
        self.faiss_index = index

    def index(self, candidate_embeddings, ids=None, queries=None):
        return super(Faiss, self).index(candidate_embeddings, ids)

    def _raw_search(self, queries, k, width=None):
        import faiss

        return self.faiss_index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=max(64, k)))

    def describe(self):
        return {"kind": "faiss-hnsw inner product", "ef_search": 64}


def run(shape, args):
    began = time.perf_counter()
    vectors, users = {"movielens-like": movielens_like, "ecommerce": ecommerce}[shape](
        args.candidates, args.epochs, args.seed)
    vectors, users = vectors.astype(np.float32), users.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    print(f"\n{shape}: {len(vectors):,} items x {vectors.shape[1]}, {len(users):,} users; trained and embedded in "
          f"{time.perf_counter() - began:.0f} s; item norms {norms.min():.2f}..{norms.max():.2f} "
          f"(median {np.median(norms):.2f})", flush=True)
    tune, test = users[0::2], users[1::2]
    rng = np.random.default_rng(args.seed)
    single = test[rng.choice(len(test), min(args.single, len(test)), replace=False)]
    batched = test[rng.choice(len(test), 256 * args.batches, replace=len(test) < 256 * args.batches)]
    threshold = exact_threshold(single, vectors, 10)
    indexes = [("BruteForce (TF)", BruteForce()), ("Faiss hnsw, defaults", Faiss("hnsw")),
               ("Faiss ivf, defaults", Faiss("ivf"))]
    if args.inner_product:
        indexes.append(("Faiss hnsw inner product, ef 64 (before)", InnerProductHNSW("hnsw")))
    print("| index | build | settings | 1 query: q/s, p50, p99 | batch 256: q/s, p50, p99 | recall@10 | "
          "vs brute force (1q / 256) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = None
    for name, index in indexes:
        began = time.perf_counter()
        if isinstance(index, Faiss):
            index.index(vectors, queries=tune)
        else:
            index.index(vectors)
        build = time.perf_counter() - began
        q1, p50, p99, found = timed(index, single, 1, len(single))
        qb, b50, b99, _ = timed(index, batched, 256, args.batches)
        recall = recall_at_k(single, vectors, found, threshold)
        base = base or (q1, qb)
        info = index.describe()
        settings = ", ".join(f"{key}={value}" for key, value in info.items()
                             if key in ("ef_search", "nprobe", "nlist", "m", "ef_construction"))
        tuned = info.get("recall@10")
        settings += f" (tuned recall {tuned:.3f})" if isinstance(tuned, float) and not info.get("exact") else ""
        print(f"| {name} | {build:.1f} s | {settings or '-'} | {q1:,.0f}, {p50:.2f} ms, {p99:.2f} ms | "
              f"{qb:,.0f}, {b50:.0f} ms, {b99:.0f} ms | {recall:.3f} | {q1 / base[0]:.0f}x / {qb / base[1]:.0f}x |",
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["movielens-like", "ecommerce"],
                   choices=["movielens-like", "ecommerce"])
    p.add_argument("--candidates", type=int, default=1_000_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--single", type=int, default=200, help="single queries timed")
    p.add_argument("--batches", type=int, default=4, help="batches of 256 timed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inner-product", action="store_true", help="also time FAISS's inner-product HNSW")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} cores; k=10")
    for shape in args.shapes:
        run(shape, args)


if __name__ == "__main__":
    main()
