"""Nothing a caller sends ends a served model's process: malformed requests to every
exported signature (raw and encoded inputs, with and without the ETL's artifacts and
seen-item exclusion, the query tower alone), to every index kind and to
`similar_items`, each in a subprocess (tests/serving/request_fuzz.py). Each gets
an error that names the input and what it expects, or a well-formed answer."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import serving
from schemaretrieval.etl import Artifacts, ContinuousTransform, Vocabulary
from schemaretrieval.schema import schema_from_dict

SCRIPT = Path(__file__).with_name("request_fuzz.py")
SEED = 0

SCHEMA = {"columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 39}},
    "user_age": {"tags": ["user", "continuous"], "dtype": "float32"},
    "user_spend": {"tags": ["user", "continuous"], "dtype": "float32"},
    "user_tags": {"tags": ["user", "categorical", "list"], "dtype": "int64", "domain": {"min": 0, "max": 9},
                  "value_count": {"min": 1, "max": 3}},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 49}},
    "item_category": {"tags": ["item", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 4}},
}}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Four exports of one (untrained) model: encoded or raw inputs, with or without
    the seen items of ``train`` left out."""
    schema = schema_from_dict(SCHEMA)
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "user_id": rng.integers(3, 40, 300), "user_age": rng.random(300).astype("float32"),
        "user_spend": rng.random(300).astype("float32"),
        "user_tags": [rng.integers(0, 10, rng.integers(1, 4)) for _ in range(300)],
        "item_id": rng.integers(0, 50, 300), "item_category": rng.integers(0, 5, 300),
    })
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    catalog = sr.data.Catalog.from_interactions(train, schema)
    artifacts = Artifacts(
        vocabularies={"user_id": Vocabulary([f"u{i}" for i in range(3, 40)], np.arange(3, 40)),
                      "user_tags": Vocabulary([f"t{i}" for i in range(3, 10)], np.arange(3, 10)),
                      "item_id": Vocabulary([f"i{i}" for i in range(50)], np.arange(50))},
        continuous={
            # a missing age is filled and clipped; spend has no fill and no clip, so NaN and inf are errors
            "user_age": ContinuousTransform("user_age", (("fill_missing", {"value": 30.0}),
                                                         ("clip", {"min": 18.0, "max": 65.0}),
                                                         ("normalize", {"mean": 40.0, "std": 12.0}))),
            "user_spend": ContinuousTransform("user_spend", (("log", {}),
                                                             ("normalize_minmax", {"min": 0.0, "max": 5.0}))),
        })
    root = tmp_path_factory.mktemp("fuzz")
    return [str(serving.export_serving(model, catalog, root / name, k=5, artifacts=art, exclude=ex))
            for name, art, ex in [("encoded", None, None), ("encoded-seen", None, train),
                                  ("raw", artifacts, None), ("raw-seen", artifacts, train)]]


def fuzz(kind, exports, tmp_path):
    """Runs every case of ``kind``; a process that ends mid-way is restarted after the
    case it died on, which is reported as lost. Returns (results, lost, seconds)."""
    results = tmp_path / f"{kind}.jsonl"
    start, lost, began = 0, [], time.perf_counter()
    while True:
        done = subprocess.run([sys.executable, str(SCRIPT), kind, str(results), str(start), str(SEED), *exports],
                              capture_output=True, text=True, timeout=600)
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        total = rows[0]["total"]
        last = max([row["i"] for row in rows[1:]], default=-1)
        if done.returncode == 0 and last == total - 1:
            return rows[1:], lost, time.perf_counter() - began
        lost.append(f"case {last + 1} ended the process with exit code {done.returncode}: {done.stderr[-2000:]}")
        start = last + 2
        if start >= total:
            return rows[1:], lost, time.perf_counter() - began


def judge(rows):
    """The cases whose outcome is not what was expected."""
    wrong = []
    for row in rows:
        expect = row["expect"]
        if expect == "ok":
            if row["outcome"] != "ok":
                wrong.append(f"{row['case']}: expected an answer, got {row['type']}: {row['message'][:300]}")
        elif row["outcome"] == "ok":
            wrong.append(f"{row['case']}: expected an error matching {expect!r}, got an answer {row['out']}")
        elif row["type"] not in ("InvalidArgumentError", "TypeError", "ValueError") or not re.search(
                expect, row["message"]):
            wrong.append(f"{row['case']}: expected {expect!r}, got {row['type']}: {row['message'][:400]}")
    return wrong


def test_no_request_ends_a_served_model(exports, tmp_path):
    rows, lost, seconds = fuzz("savedmodel", exports, tmp_path)
    print(f"\nrequest fuzz: {len(rows)} requests to {len(exports)} exports in {seconds:.1f} s, "
          f"{len(lost)} processes lost")
    assert not lost, lost
    wrong = judge(rows)
    assert not wrong, "\n".join(wrong[:30])
    assert len(rows) > 1000
    # the answers have the declared shapes: k results per row, for the empty and the 1e5-row batch too
    shapes = {row["case"]: row["out"] for row in rows if row["outcome"] == "ok"}
    assert shapes["raw-seen signature:serving_default empty batch"] == {"ids": [0, 5], "scores": [0, 5]}
    assert shapes["raw-seen signature:serving_default 100000 rows"] == {"ids": [100000, 5], "scores": [100000, 5]}
    assert shapes["encoded signature:recommend k=50 (the catalog)"]["ids"] == [3, 50]


def test_no_call_to_an_index_or_similar_items_ends_the_process(exports, tmp_path):
    rows, lost, seconds = fuzz("python", exports[2:3], tmp_path)
    print(f"\nindex fuzz: {len(rows)} calls in {seconds:.1f} s, {len(lost)} processes lost")
    assert not lost, lost
    wrong = judge(rows)
    assert not wrong, "\n".join(wrong[:30])
    assert {row["case"].split(".")[0] for row in rows} >= {"brute", "flat", "hnsw", "ivf"}
