"""benchmarks/quality.py on the smaller preset, the run CI can afford: the
defaults beat Popularity by a clear margin and hold their own against EASE,
whose l2 the benchmark chooses on a validation split (full-size figures:
docs/defaults.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemaretrieval.training.defaults import DEFAULT_BATCH_SIZE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 4  # of the default 12: enough for the margin, in a few seconds


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "quality.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--sets", "preset", "--preset", "small",
         "--epochs", str(EPOCHS), "--seed", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "preset (small)  TwoTowerModel(schema) defaults" in done.stdout, done.stdout  # the one table
    rows = json.loads(out.read_text())["results"]["preset (small)"]
    return {("EASE" if name.startswith("EASE") else name.split(" ")[0]): m for name, m in rows.items()}


def test_every_row_has_recalls_and_a_training_time(results):
    assert set(results) == {"Popularity", "EASE", "TwoTowerModel(schema)"}
    for m in results.values():
        assert all(0 <= m[c] <= 1 for c in ("r@10", "r@100", "x@10", "x@100")) and m["train s"] >= 0
    # EASE's l2 came from the grid, chosen on validation rows
    assert set(results["EASE"]["l2"].values()) <= {30.0, 100.0, 300.0, 1000.0, 3000.0}


def test_defaults_beat_popularity_by_a_clear_margin(results):
    model, popularity = results["TwoTowerModel(schema)"], results["Popularity"]
    # Without exclusion, recall@10 is about even on this small preset (users'
    # training items fill the model's top 10), so only @100 is asserted there.
    for c in ("r@100", "x@10", "x@100"):
        assert model[c] > popularity[c] + 0.02, (c, model, popularity)
    # with seen items excluded, popularity wastes its top slots
    assert model["x@10"] > 1.4 * popularity["x@10"], (model, popularity)


def test_defaults_hold_their_own_against_ease(results):
    model, ease = results["TwoTowerModel(schema)"], results["EASE"]
    # At 4 of 12 epochs on 24k rows the model is short of EASE with exclusion
    # (measured: x@10 0.237 against 0.250, x@100 0.736 against 0.757), and
    # ahead at r@100 (0.510 against 0.490): the bars catch a regression.
    assert model["x@10"] > ease["x@10"] - 0.025, (model, ease)
    assert model["x@100"] > ease["x@100"] - 0.035, (model, ease)
    assert model["r@100"] > ease["r@100"], (model, ease)


def test_the_default_batch_size_is_the_measured_one():
    assert DEFAULT_BATCH_SIZE == 128
