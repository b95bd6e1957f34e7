"""benchmarks/gpu_check.py: its CPU half runs here; its GPU half on a GPU machine."""

import functools
import importlib.util
from pathlib import Path

import pytest
from merlin.core.compat import HAS_GPU

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_the_cpu_half_runs_and_says_what_it_skipped(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    # The preset's users and items with a fifth of its rows: the script has no size for
    # it, and its ETL, training epoch and export run the same on fewer rows.
    monkeypatch.setattr(gpu_check.sr.data, "movielens_like",
                        functools.partial(gpu_check.sr.data.movielens_like, num_interactions=20_000))
    assert gpu_check.main(["--rows", "5000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "movielens-like" in out and "raw log (5,000 rows)" in out and "CPU (pandas)" in out
    assert "training, 1 epoch on" in out and "examples/s" in out
    if not HAS_GPU:
        assert "GPU half skipped: device='gpu' needs cudf and a visible GPU" in out
    assert (tmp_path / "export" / "saved_model.pb").exists()
