"""Peak resident memory of full-catalog evaluation and of the serving export
over a large catalog (default 1M items at dim 64; the target is < 4 GB).

Each measurement runs in its own process (peak RSS, ru_maxrss, only grows):

* `evaluate_topk`: 10k held-out queries ranked against every item, with
  recall/ndcg/... at 10 and 100;
* `export`: `serving.export_serving` (brute-force top-k SavedModel holding
  every candidate embedding, plus the query tower and the embeddings
  parquet), then one query through the loaded SavedModel.

The model is `TwoTowerModel` on a schema of ids only (user id, item id,
embedding_dim 64, towers of 64 units), untrained: memory does not depend on
the weights' values. Usage:

    python benchmarks/memory.py [--items 1000000] [--queries 10000] [--dim 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _schema(items, users, dim):
    import schemaretrieval as sr

    return sr.schema.schema_from_dict({
        "name": "memory",
        "columns": {
            "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": users - 1},
                        "embedding_dim": dim},
            "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": items - 1},
                        "embedding_dim": dim},
        },
    })


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def run(mode, items, queries, dim):
    import numpy as np
    import pandas as pd

    import schemaretrieval as sr

    users = 10_000
    schema = _schema(items, users, dim)
    model = sr.TwoTowerModel(schema, query_units=(dim,), candidate_units=(dim,))
    model.build()
    rng = np.random.default_rng(0)
    held_out = pd.DataFrame({"user_id": rng.integers(0, users, queries), "item_id": rng.integers(0, items, queries)})
    catalog = sr.data.Catalog(pd.DataFrame({"item_id": np.arange(items)}), model.schema)
    baseline = _peak_mb()
    start = time.perf_counter()
    if mode == "evaluate":
        result = model.evaluate_topk(held_out, catalog, ks=[10, 100])
        detail = {"recall@100": result["recall@100"]}
    else:
        import tensorflow as tf

        from schemaretrieval import serving

        with tempfile.TemporaryDirectory() as out:
            serving.export_serving(model, catalog, out, k=100)
            loaded = tf.saved_model.load(out)
            outputs = loaded.signatures["serving_default"](user_id=tf.constant([1, 2], tf.int64))
            detail = {"outputs": sorted(outputs)}
    return {"mode": mode, "items": items, "dim": dim, "queries": queries, "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(_peak_mb()), "peak_before_mb": round(baseline), **detail}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--mode", choices=("evaluate", "export"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run(args.mode, args.items, args.queries, args.dim)))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    print(f"{'what':<16} {'items':>9} {'dim':>4} {'seconds':>8} {'peak RSS MB':>12} {'(before) MB':>12}")
    for mode in ("evaluate", "export"):
        done = subprocess.run([sys.executable, __file__, "--mode", mode, "--items", str(args.items),
                               "--queries", str(args.queries), "--dim", str(args.dim)],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        name = "evaluate_topk" if mode == "evaluate" else "export_serving"
        print(f"{name:<16} {r['items']:>9} {r['dim']:>4} {r['seconds']:>8} {r['peak_rss_mb']:>12} {r['peak_before_mb']:>12}"
              f"  {'OK' if r['peak_rss_mb'] < 4096 else 'OVER 4 GB'}")


if __name__ == "__main__":
    main()
