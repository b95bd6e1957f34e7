import os
import sys

import pytest
import tensorflow as tf

import schemaretrieval  # noqa: F401  (first: it sets dask up before merlin is imported)

# The tests mirror the package in subfolders; their shared helpers live here.
sys.path.insert(0, os.path.dirname(__file__))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share two cores (README's test command). With TensorFlow's
    # default pools, two threads each, four threads contend for the cores:
    # one thread each ran the suite in 7 min 28 s against 8 min 8 s.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

from helpers import synthetic_schema  # noqa: E402


@pytest.fixture(scope="module")
def schema():
    """The bundled schemas/synthetic.yaml (a module may override it)."""
    return synthetic_schema()


def pytest_collection_modifyitems(session, config, items):
    """Files with a test marked slow run first. The README's command gives each of two
    workers a file at a time (``--dist loadfile``): with the longest files last, in
    collection order, one worker ran alone for minutes at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: order within each part kept
