"""fit under MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1,
equals one process on the same global batches (tests/training/multiworker_check.py).
A file apart from test_distributed.py so that `--dist loadfile` runs the two
sets of processes on both workers."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_worker_processes_end_with_one_process_weights(tmp_path):
    """MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1 (a TF_CONFIG each), the
    default optimizer, fit from a DataFrame (tests/training/multiworker_check.py): both workers
    end on the same weights, those of one process on the same global batches; in-batch negatives
    are gathered from both workers (with a worker's own half the gradients would differ)."""
    ports = f"{_free_port()},{_free_port()}"
    script = str(ROOT / "tests" / "training" / "multiworker_check.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    commands = [[sys.executable, script, "worker", str(i), ports, str(tmp_path)] for i in (0, 1)]
    commands.append([sys.executable, script, "reference", str(tmp_path)])
    runs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in commands]
    try:
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for command, run, (_, stderr) in zip(commands, runs, outputs):
        assert run.returncode == 0, f"{command[2]}: {stderr[-4000:]}"
    reference, *workers = (np.load(tmp_path / f"{name}.npz") for name in ("reference", "worker-0", "worker-1"))
    assert int(reference["replicas"]) == 1 and [int(w["replicas"]) for w in workers] == [2, 2]
    assert int(reference["steps"]) == 6 and [int(w["steps"]) for w in workers] == [6, 6]
    paths = list(reference["paths"])
    assert any("embedding_user_id" in p for p in paths) and len(paths) == len(workers[0]["paths"])
    for i, path in enumerate(paths):
        # the workers hold one model: bit for bit
        np.testing.assert_array_equal(workers[1][f"weight_{i}"], workers[0][f"weight_{i}"], err_msg=path)
        np.testing.assert_allclose(workers[0][f"weight_{i}"].astype(float), reference[f"weight_{i}"].astype(float),
                                   rtol=0, atol=1e-5, err_msg=path)
    # The logged loss is Keras's mean over the workers of each one's tracker: close, not equal.
    np.testing.assert_allclose(workers[0]["loss"], reference["loss"], rtol=5e-3)
