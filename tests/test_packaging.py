"""What a user installs: the GPU extra resolves to RAPIDS 24.12 beside the pinned stack."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_extra_resolves_to_rapids_24_12(tmp_path):
    # A dry run against the package index: resolves, downloads no wheel, installs nothing.
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
         "--report", str(report), "-c", "constraints.txt", ".[gpu]"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    chosen = {p["metadata"]["name"].lower(): p["metadata"]["version"]
              for p in json.loads(report.read_text())["install"]}
    assert chosen["cudf-cu12"] == "24.12.0"
    assert chosen["dask-cudf-cu12"] == "24.12.0"
    assert chosen["cupy-cuda12x"].startswith("13.")
    assert (chosen["pandas"], chosen["dask"], chosen["numpy"]) == ("2.2.3", "2024.11.2", "1.26.4")
    assert chosen["tensorflow"] == "2.21.0"
    assert "nvidia-cudnn-cu12" in chosen  # tensorflow[and-cuda]: training on the GPU too
