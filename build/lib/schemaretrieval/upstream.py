"""Adaptations to the upstream releases this library is pinned to.

merlin-core, merlin-dataloader and NVTabular 23.8 were written for dask 2023 and
cudf 23.x; the only release under which they meet a cudf wheel from PyPI is
RAPIDS 24.12 (dask 2024.11.2, pandas 2.2.3, cudf-cu12 24.12). Each adaptation
below serves that pairing and says why; delete it when merlin moves.

``apply()`` runs once, from the package's ``__init__``, before anything of
merlin is imported. ``describe()`` is the line the ETL logs at its start.

>>> import schemaretrieval  # applies the adaptations
>>> import dask
>>> dask.config.get("dataframe.query-planning"), dask.config.get("dataframe.convert-string")
(False, False)
"""

from __future__ import annotations

import os
import sys
import warnings

# dask 2024.11 builds dask-expr DataFrames by default; merlin 23.8 assigns
# ``ddf.dask`` (merlin/core/utils.py), which only the legacy DataFrame allows.
# dask reads this once, when dask.dataframe is first imported.
# With pandas 2, dask turns object columns into pyarrow strings by default,
# and a column of lists becomes the text of each list ("['a', 'b']"), which
# Categorify then encodes as one category without an error.
DASK_SETTINGS = {"dataframe.query-planning": False, "dataframe.convert-string": False}

_applied: list[str] = []


class UpstreamError(ImportError):
    """The process imported a dependency in a state merlin 23.8 cannot run under."""


def _legacy_dataframe_in_use() -> bool:
    import dask.dataframe as dd

    return dd.DataFrame.__module__.startswith("dask.dataframe")


def configure_dask() -> None:
    """Sets ``DASK_SETTINGS`` for this process and the processes it starts.

    Raises ``UpstreamError`` when ``dask.dataframe`` was already imported with
    query planning on (merlin imported first without the setting): from there
    merlin's ``fit`` fails, and no setting can undo the import.
    """
    for key, value in DASK_SETTINGS.items():
        # The environment reaches Dask workers and subprocesses this process starts.
        os.environ["DASK_" + key.upper().replace(".", "__").replace("-", "_")] = str(value)
    import dask

    dask.config.set(DASK_SETTINGS)
    # Said once, in the ETL's first log line, rather than at every import.
    warnings.filterwarnings("ignore", message="The legacy Dask DataFrame implementation is deprecated",
                            category=FutureWarning)
    if "dask.dataframe" in sys.modules and not _legacy_dataframe_in_use():
        raise UpstreamError(
            "dask.dataframe was imported with query planning on before schemaretrieval "
            "(importing merlin or nvtabular first does this); merlin 23.8 needs dask's legacy "
            "DataFrame. Import schemaretrieval before merlin, or set "
            "DASK_DATAFRAME__QUERY_PLANNING=False in the environment.")
    _applied.append("dask legacy DataFrame (query-planning off, convert-string off)")


def _missing_build_categorical_column(*args, **kwargs):
    raise NotImplementedError(
        "merlin 23.8 reads hive-partitioned parquet from a remote filesystem through "
        "cudf.core.column.build_categorical_column, which cudf 24.12 removed; copy the data "
        "to a local disk or read it without hive partitions")


def adapt_cudf() -> None:
    """Gives cudf 24.12 the two names merlin 23.8 imports from it, when a GPU and cudf are present.

    - ``cudf.core.column.build_categorical_column``: merlin/io/fsspec_utils.py
      imports it at module level (so ``import nvtabular`` fails without it) and
      calls it only for hive-partitioned remote parquet; here it raises with the reason.
    - ``dask_cudf.from_dask_dataframe``: merlin/io/dataframe_engine.py moves a
      collection to the GPU with it; dask-cudf 24.12 spells it ``to_backend("cudf")``.
    """
    from merlin.core.compat import cudf, dask_cudf

    if cudf is None:
        return
    columns = cudf.core.column
    if not hasattr(columns, "build_categorical_column"):
        columns.build_categorical_column = _missing_build_categorical_column
        _applied.append("cudf.core.column.build_categorical_column (raises: hive-partitioned remote parquet)")
    if dask_cudf is not None and not hasattr(dask_cudf, "from_dask_dataframe"):
        dask_cudf.from_dask_dataframe = lambda ddf: ddf.to_backend("cudf")
        _applied.append("dask_cudf.from_dask_dataframe -> to_backend('cudf')")


MERLIN = ("merlin-core==23.8.0", "merlin-dataloader==23.8.0", "nvtabular==23.8.0")


def check_merlin() -> None:
    """merlin 23.8 declares pandas<1.6, so pip installs it only with --no-deps; say so when it is absent."""
    import importlib.util

    missing = [name for name, module in zip(MERLIN, ("merlin.core", "merlin.dataloader", "nvtabular"))
               if importlib.util.find_spec(module.split(".")[0]) is None
               or importlib.util.find_spec(module) is None]
    if missing:
        raise UpstreamError(
            f"{', '.join(missing)} not installed. They install without their declared dependencies "
            f"(a pandas<1.6 pin this stack replaces; pyproject.toml lists what they import): "
            f"pip install --no-deps {' '.join(MERLIN)}   (setup.sh does this)")


def apply() -> None:
    """Every adaptation, once per process."""
    if _applied:
        return
    check_merlin()
    configure_dask()
    adapt_cudf()


def describe() -> str:
    """What ``apply`` did, for the ETL's first log line."""
    return "; ".join(_applied)
