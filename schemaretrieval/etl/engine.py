"""Where the ETL runs: the device (GPU with cudf, or CPU with pandas), one
process or a Dask cluster, and the settings it runs under.

``engine_context`` is what `run.fit_transform` and `run.transform` run
inside: merlin's Dask client (none: dask's threaded scheduler), the dask
settings merlin 23.8 needs (`upstream.DASK_SETTINGS`, checked on a
cluster's workers), pandas' copy-on-write where it is safe
(`copy_on_write`), and the first log line naming the engine
(`describe_engine`). `TaskProgress` shows each Dask computation's tasks.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import pandas as pd
from merlin.schema import Schema

from schemaretrieval import upstream
from schemaretrieval.etl.options import ETLError, categorical_options, etl_kind
from schemaretrieval.etl.workflow import LookupCategorify
from schemaretrieval.progress import Progress

log = logging.getLogger("schemaretrieval.etl")

__all__ = ["select_device", "describe_engine", "copy_on_write", "engine_context", "TaskProgress"]


def select_device(device: str = "auto") -> str:
    """'gpu' or 'cpu': ``auto`` picks the GPU when cudf imports and a GPU is visible.

    >>> select_device("cpu")
    'cpu'
    >>> select_device("auto") in ("cpu", "gpu")
    True
    >>> select_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu' or 'gpu', got 'tpu'
    """
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    from merlin.core.compat import HAS_GPU

    try:
        import cudf  # noqa: F401
        has_cudf = True
    except Exception:  # ImportError, or a CUDA error on import
        has_cudf = False
    if device == "gpu" and not (has_cudf and HAS_GPU):
        raise ValueError("device='gpu' needs cudf and a visible GPU "
                           f"(cudf importable: {has_cudf}, GPU visible: {bool(HAS_GPU)})")
    return "gpu" if device == "gpu" or (device == "auto" and has_cudf and HAS_GPU) else "cpu"


def describe_engine(device: str, client=None) -> str:
    """The ETL's first log line: the device, the library doing the work, and where.

    >>> describe_engine("cpu").startswith("ETL on CPU (pandas ")
    True
    """
    if device == "gpu":
        import cudf

        engine = f"ETL on GPU (cudf {cudf.__version__}"
        where = "1 device" if client is None else None
    else:
        engine = f"ETL on CPU (pandas {pd.__version__}"
        where = None
    if client is not None:
        workers = len(client.scheduler_info().get("workers", {}))
        where = f"Dask cluster at {client.scheduler.address}, {workers} worker(s)"
    return engine + (f", {where})" if where else ")")




def copy_on_write(schema: Schema, workflow=None) -> bool:
    """Whether the ETL of ``schema`` runs with pandas' copy-on-write on: when every
    column that Categorify encodes is scalar and without ``num_buckets``, and the
    ``workflow`` (default: `plan_workflow`'s) encodes them with ``LookupCategorify``.

    merlin's executor selects and concatenates the columns around every node of the
    workflow, and without copy-on-write pandas copies them each time: a third of
    the CPU ETL's time on 10M rows. With it, nothing is copied until it changes.
    NVTabular's own ``Categorify.transform``, which encodes list columns, hashes
    OOV values into ``num_buckets`` and is the op of workflows saved before
    ``LookupCategorify``, writes into arrays that copy-on-write makes read-only
    (``ValueError: assignment destination is read-only``) and fills a column
    through a chained assignment that it makes a no-op, so those run without it.

    >>> import schemaretrieval as sr
    >>> copy_on_write(sr.load_schema("schemas/synthetic.yaml"))  # item_tags is a list
    False
    >>> copy_on_write(sr.schema.schema_from_dict({"columns": {
    ...     "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
    ...     "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"}}}))
    True
    """
    encoded = [col for col in schema if etl_kind(col) == "categorical"
               and categorical_options(col)["kind"] == "categorify"]
    if any(col.is_list or categorical_options(col).get("num_buckets") for col in encoded):
        return False
    if workflow is not None:
        from merlin.dag import Graph
        from nvtabular.ops import Categorify

        nodes = Graph.get_nodes_by_op_type([workflow.output_node], Categorify)
        return all(isinstance(node.op, LookupCategorify) for node in nodes)
    return True


@contextlib.contextmanager
def engine_context(dask, device, cow=False):
    """(client or None) with merlin's client and ``upstream.DASK_SETTINGS`` set for the
    duration, and pandas' copy-on-write with ``cow`` (see `copy_on_write`); logs the
    engine once and closes a client it opened.

    ``dask``: None (dask's threaded scheduler in this process), a
    ``distributed.Client``, or a scheduler's address to open one at.

    >>> import dask
    >>> with engine_context(None, "cpu") as client:
    ...     client is None, dask.config.get("scheduler"), pd.get_option("mode.copy_on_write")
    (True, 'threads', False)
    """
    import dask as dask_lib
    from merlin.core import utils as merlin_utils

    opened = None
    client = None
    if dask is not None:
        if isinstance(dask, str):
            from distributed import Client

            client = opened = Client(dask)
        else:
            client = dask
        _check_workers(client)
    log.info("%s; %s", describe_engine(device, client), upstream.describe())
    token = merlin_utils._merlin_dask_client.set(client)
    # A distributed client lying around in the process is not ours to use.
    local = {} if client is not None else {"scheduler": "threads"}
    try:
        with dask_lib.config.set(upstream.DASK_SETTINGS, **local), warnings.catch_warnings(), \
                pd.option_context("mode.copy_on_write", bool(cow)):
            # The engine line above says it in the library's words, once.
            warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
            yield client
    finally:
        merlin_utils._merlin_dask_client.reset(token)
        if opened is not None:
            opened.close()


class TaskProgress:
    """Each Dask computation while it is entered as a `Progress` of its tasks, named ``what``
    (the local scheduler's callbacks; a cluster's computations show on its dashboard).

    >>> import dask
    >>> with TaskProgress("ETL: adding"):
    ...     dask.delayed(sum)([1, 2]).compute(scheduler="threads")
    3
    """

    def __init__(self, what: str):
        from dask.callbacks import Callback

        self.what = what
        self.progress = None
        self.callback = Callback(start_state=self._start_state, posttask=self._posttask, finish=self._finish)

    def __enter__(self):
        self.callback.__enter__()
        return self

    def __exit__(self, *exc):
        self.callback.__exit__(*exc)
        self._finish()

    def _start_state(self, dsk, state):
        self._finish()
        total = sum(len(state[key]) for key in ("ready", "waiting", "running", "finished"))
        self.progress = Progress(self.what, total, unit="tasks")

    def _posttask(self, key, result, dsk, state, worker_id):
        if self.progress is not None:
            self.progress.update()

    def _finish(self, *args):
        if self.progress is not None:
            self.progress.close()
            self.progress = None


def _workers_settings():
    import dask as dask_lib

    return {key: dask_lib.config.get(key, None) for key in upstream.DASK_SETTINGS}


def _check_workers(client) -> None:
    """Workers started elsewhere must run dask as merlin 23.8 needs (upstream.DASK_SETTINGS)."""
    for worker, settings in client.run(_workers_settings).items():
        wrong = {k: v for k, v in settings.items() if v != upstream.DASK_SETTINGS[k]}
        if wrong:
            raise ETLError(
                f"Dask worker {worker}: {wrong} but merlin 23.8 needs {upstream.DASK_SETTINGS}; start the "
                "workers with DASK_DATAFRAME__QUERY_PLANNING=False DASK_DATAFRAME__CONVERT_STRING=False "
                "in their environment (or install schemaretrieval in their environment)")
