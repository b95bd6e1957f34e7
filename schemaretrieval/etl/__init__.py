"""ETL through NVTabular, built from the YAML schema.

* ``options``: the ``transform:`` key of each column, checked.
* ``workflow``: the ``nvtabular.Workflow`` built from the schema (`plan_workflow`)
  and the schema of its output.
* ``time``: the time features a time column derives.
* ``inputs``: raw data as dask DataFrames, checked as they are read.
* ``artifacts``: what the fitted ETL learned (vocabularies, continuous steps,
  item counts), written for serving and training to read.
* ``engine``: where the ETL runs (CPU, GPU, a Dask cluster) and the settings it runs under.
* ``run``: `fit_transform` and `transform`.
"""

from schemaretrieval.etl.artifacts import Artifacts, ContinuousTransform, Vocabulary, read_artifacts
from schemaretrieval.etl.options import CONTINUOUS_STEPS, TIME_FEATURES, ETLError
from schemaretrieval.etl.engine import describe_engine, select_device
from schemaretrieval.etl.run import ETLOutput, fit_transform, transform
from schemaretrieval.etl.workflow import build_workflow, output_schema, plan_workflow

__all__ = [
    "Artifacts",
    "ContinuousTransform",
    "Vocabulary",
    "read_artifacts",
    "CONTINUOUS_STEPS",
    "TIME_FEATURES",
    "ETLError",
    "ETLOutput",
    "describe_engine",
    "fit_transform",
    "select_device",
    "transform",
    "build_workflow",
    "output_schema",
    "plan_workflow",
]
