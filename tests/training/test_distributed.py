"""fit under MirroredStrategy on two logical CPUs equals one device on the
same global batches (tests/training/distributed_check.py, in a fresh process);
MultiWorkerMirroredStrategy is tested in test_multiworker.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


VARIANTS = ["user-id", "user-history"]
# The default optimizer's variants: a parquet path (the default samplers, a
# compiled metric) and a DataFrame (every sampler). A DataFrame with the
# default samplers adds no case: past reading the table the two inputs take
# one path (the same in-memory Batches), and each is trained on here.
TABLE_VARIANTS = ["default-path", "samplers"]


@pytest.fixture(scope="module")
def results():
    """Every variant's JSON, from one process: its start (TensorFlow's
    import, the strategy's devices) is paid once, not once per test group."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "training" / "distributed_check.py"), "64", "schemas/synthetic.yaml",
         *VARIANTS, *TABLE_VARIANTS],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(params=VARIANTS)
def result(request, results):
    return results[request.param]


def test_two_replicas_give_the_loss_and_gradients_of_one_device_on_the_global_batch(result):
    assert result["replicas"] == 2
    single, mirrored = result["loss"]
    # In-batch negatives are gathered from both replicas: with only the
    # replica's own 32 rows the loss would be about log(32) lower, not equal.
    assert mirrored == pytest.approx(single, abs=1e-5)
    for a, b in zip(*result["gradients"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=0, atol=1e-5)


def test_fit_under_the_strategy_ends_with_the_weights_and_losses_of_one_device(result):
    # The epoch's reported loss differs in the 4th digit: Keras's tracker
    # weights each replica's (rescaled) share by its own row count, which is
    # not the global mean when the last batch splits 17/16. Weights are exact.
    np.testing.assert_allclose(result["history"][1], result["history"][0], rtol=1e-3)
    for path, a, b in zip(result["paths"], *result["weights"]):
        # Ten SGD steps (a last batch split 17/16 included); the sampler's
        # frequency estimate and the user-id table's trained_rows, updated
        # from the gathered ids, are equal too.
        np.testing.assert_allclose(np.array(b, dtype=float), np.array(a, dtype=float), rtol=0, atol=1e-5, err_msg=path)


@pytest.mark.parametrize("variant", TABLE_VARIANTS)
def test_the_default_optimizer_fits_a_table_under_the_strategy_as_on_one_device(variant, results):
    """model.compile() and model.fit(parquet path or DataFrame) inside MirroredStrategy's
    scope: the sparse updates (IndexedSlices all-reduced, scattered into mirrored variables)
    and the lazy moving average end on one device's weights. "samplers": a memory bank
    (CrossBatchSampler, fed the gathered global batch) and catalog draws (UniformSampler,
    PopularitySampler: every replica draws the rows one device draws) beside in-batch
    negatives; the bank's ids, embeddings and position are among the weights compared."""
    result = results[variant]
    assert result["replicas"] == 2
    assert result["optimizer"] == ["AveragedAdam", "AveragedAdam"]
    assert result["steps"] == [10, 10]  # 2 epochs of 4 full batches and one of 33 rows
    # Sparse updates under both: most of the 2000 users' rows were never read,
    # so never updated; a dense update would have touched them all.
    single_untouched, mirrored_untouched = result["never_updated_rows"]
    assert single_untouched > 1000 and mirrored_untouched == single_untouched
    assert all(result["moved"])
    np.testing.assert_allclose(result["history"][1], result["history"][0], rtol=1e-3)
    if variant == "default-path":
        # a compiled ranking metric: Keras builds it from the model's example row, not a
        # batch reduced over the replicas; its per-epoch value is one device's
        single_recall, mirrored_recall = result["recall"]
        assert single_recall is not None and len(single_recall) == 2
        np.testing.assert_allclose(mirrored_recall, single_recall, rtol=1e-6)
    for path, a, b in zip(result["paths"], *result["weights"]):
        np.testing.assert_allclose(np.array(b, dtype=float), np.array(a, dtype=float), rtol=0, atol=1e-5, err_msg=path)
