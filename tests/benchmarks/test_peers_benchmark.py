"""benchmarks/peers.py end to end on the ml-100k fixture (our side and keras-rs;
TFRS and Merlin Models need their own venvs, so they are skipped here).

The parent runs in this process (each system still trains in a subprocess of
its own, as the script runs them): a process of its own would pay
TensorFlow's import once more."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_peers_on_the_ml100k_fixture_writes_table_json_and_png(tmp_path, capsys, monkeypatch):
    # what the script sets for itself on import, undone after the test
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    rows = peers.run_benchmark(peers.parse_args(
        ["--movielens", str(ROOT / "tests/fixtures/ml-100k"), "--epochs", "2", "--defaults-epochs", "1",
         "--skip-tfrs", "--skip-merlin", "--out", str(tmp_path)]))
    assert not [row["error"] for row in rows if "error" in row and "skipped" not in row["error"]], rows
    assert "not run: skipped (--skip-merlin)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "peers.json").read_text())
    assert summary["source"].startswith("GroupLens ml-100k")
    rows = {row["worker"] if "worker" in row else row["system"]: row for row in summary["rows"]}
    for name in ("ours-tutorial", "keras-rs", "ours-defaults", "most popular"):
        metrics = rows[name]["metrics"]
        for part in ("all", "excl"):
            curve = [metrics[part][f"recall@{k}"] for k in range(1, 101)]
            assert all(0 <= a <= b <= 1 for a, b in zip(curve, curve[1:])), (name, part)
            # the fixture has fewer than 100 items: every test item is in the top 100 unless excluded
            assert curve[-1] > 1 - 1e-9 or part == "excl"
    assert rows["keras-rs"]["brute_force_top10_agreement"] == 1.0
    assert rows["ours-tutorial"]["examples_per_second"] > 0
    assert (tmp_path / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
