"""The one training path as the `train` command: a run killed mid-epoch
resumes with the same command and ends like an uninterrupted one, one seed
gives the same metrics, the runs log to TensorBoard and a csv."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import schemaretrieval as sr

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "synthetic.yaml"
# Small enough for CI, long enough (75 steps an epoch) to be killed mid-epoch.
TRAIN = ["train", "--schema", str(SCHEMA), "--synthetic", "3000", "--epochs", "2", "--batch-size", "32",
         "--seed", "3", "--ks", "10", "--checkpoint-every", "5", "--no-export"]
STEPS = 75


def _cli(out, checkpoints):
    return [sys.executable, "-m", "schemaretrieval", *TRAIN, "--out", str(out), "--checkpoint-dir", str(checkpoints)]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and a run SIGKILLed after its first mid-epoch
    checkpoint then restarted with the same command (both started at once)."""
    root = tmp_path_factory.mktemp("runs")
    reference = subprocess.Popen(_cli(root / "a", root / "a-ckpt"), env=_env(), cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = subprocess.Popen(_cli(root / "b", root / "b-ckpt"), env=_env(), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = root / "b-ckpt" / "latest.json"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] > 0:
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = json.loads(latest.read_text())
    resumed = subprocess.run(_cli(root / "b", root / "b-ckpt"), env=_env(), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    reference_out = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, reference_out[-3000:]
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return {"root": root, "killed": killed.returncode, "at_kill": at_kill, "resumed": resumed.stdout}


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_one(runs):
    assert runs["killed"] == -signal.SIGKILL
    at_kill = runs["at_kill"]
    assert 0 < at_kill["step"] < STEPS and at_kill["epoch"] == 0, at_kill  # killed mid-epoch
    assert (f"resuming from {runs['root'] / 'b-ckpt'} at epoch 1 of 2, step {at_kill['step']} of {STEPS}"
            in runs["resumed"])
    a = sr.load_model(runs["root"] / "a" / "model.keras")
    b = sr.load_model(runs["root"] / "b" / "model.keras")
    assert len(a.variables) == len(b.variables)
    # Tolerance 1e-6 absolute; on CPU with op determinism the runs agree bit for bit.
    # A .keras file does not keep the dropout's seed generator (each load draws
    # a new one); the checkpoint does, and the weights show that it resumed.
    for x, y in zip(a.variables, b.variables):
        if "seed_generator" not in x.path:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-6, err_msg=x.path)
    # The sampler's streaming frequency estimate resumed too (it is a weight).
    assert any("in_batch_sampler" in v.path for v in a.variables)


def test_one_seed_two_cli_runs_give_identical_metrics(runs):
    # The resumed run is a second process from the same seed: split, shuffles,
    # initialisation and the sampler's estimate all repeat.
    a = (runs["root"] / "a" / "metrics.json").read_text()
    assert a == (runs["root"] / "b" / "metrics.json").read_text()
    assert json.loads(a)["two-tower"]["recall@10"] > 0


def test_the_run_writes_tensorboard_logs_and_a_csv_row_per_epoch_with_recall(runs):
    for run in ("a", "b"):
        out = runs["root"] / run
        with open(out / "training.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["epoch"] for r in rows] == ["0", "1"]  # the resumed run neither loses nor repeats a row
        assert {"loss", "val_loss", "val_recall@10", "learning_rate"} <= set(rows[0])
        assert 0 <= float(rows[-1]["val_recall@10"]) <= 1
        assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
        assert list((out / "logs" / "validation").glob("events.out.tfevents.*"))
    a = list(csv.DictReader(open(runs["root"] / "a" / "training.csv")))
    b = list(csv.DictReader(open(runs["root"] / "b" / "training.csv")))
    assert a[1]["val_recall@10"] == b[1]["val_recall@10"]


def test_tensorboard_has_recall_and_learning_rate(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs["root"] / "a" / "logs" / "validation")).Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert "epoch_recall@10" in tags, tags
    train_events = EventAccumulator(str(runs["root"] / "a" / "logs" / "train")).Reload()
    train_tags = set(train_events.Tags()["tensors"]) | set(train_events.Tags()["scalars"])
    assert {"epoch_loss", "epoch_learning_rate"} <= train_tags, train_tags
