"""benchmarks/eval_exclusions.py: the two ways of passing exclusions run in their own
processes on one generated set and must agree on recall, or the script fails."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_both_ways_run_and_agree_on_a_small_set():
    done = subprocess.run([sys.executable, ROOT / "benchmarks" / "eval_exclusions.py", "--users", "300",
                           "--items", "500", "--history", "20", "--queries", "3000"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("bound to", "every query"))]
    assert len(rows) == 2 and rows[0].split()[-2:] == rows[1].split()[-2:]  # the same recall@10 and @100
    assert "chunks / at once:" in done.stdout
