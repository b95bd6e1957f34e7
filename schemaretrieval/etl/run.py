"""Running the ETL: ``fit_transform`` on training data, ``transform`` on new data.

* ``fit_transform(train, valid, schema, out_dir)``: fits the schema's
  workflow on ``train`` only, transforms both, writes parquet, the output
  schema (merlin ``schema.pbtxt`` and ``schema.yaml`` with domains filled),
  the fitted workflow, the artifacts serving and training read
  (`artifacts`: vocabularies, continuous steps, item counts) and a report
  with the out-of-vocabulary counts.
* ``transform(data, workflow_dir)``: new data through a saved workflow.

It runs on the GPU (cudf) when one is visible, else on the CPU (pandas), in
the calling process or on a Dask cluster (``dask=``), inside
`engine.engine_context`; the first log line names the engine. Output
directory::

    out_dir/
      train/*.parquet, valid/*.parquet   encoded data (each with NVTabular's schema.pbtxt)
      schema.yaml, schema.pbtxt          the output schema; sr.load_schema(out_dir) reads it
      workflow/                          the fitted nvtabular.Workflow (Workflow.load)
      artifacts/                         vocabularies, continuous steps, item counts (artifacts.py)
      etl_report.json                    engine, rows, OOV counts per split and column

Categorify reserves ids 0 (padding), 1 (null) and 2 (out of vocabulary; 2..2+num_buckets-1
with ``num_buckets``); the values seen in training start at 3 (2 + num_buckets). The
output domain is ``{min: 0, max: cardinality - 1}``, so embedding tables built from it
cover every id the ETL can emit. See docs/etl.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from merlin.schema import Schema

from schemaretrieval import schema as schema_lib
from schemaretrieval.data.read import parquet_files
from schemaretrieval.etl.artifacts import write_artifacts
from schemaretrieval.etl.engine import TaskProgress, copy_on_write, engine_context, select_device
from schemaretrieval.etl.inputs import read_input
from schemaretrieval.etl.options import ETLError, categorical_options, check_transforms, etl_kind
from schemaretrieval.etl.workflow import fill_passthrough_domains, flat_values, output_schema, plan_workflow
from schemaretrieval.schema import SchemaError
from schemaretrieval.schema.columns import OOV_INDEX

log = logging.getLogger("schemaretrieval.etl")

__all__ = ["ETLOutput", "fit_transform", "transform", "check_list_columns", "WORKFLOW_DIR", "REPORT_FILE"]

#: The fitted workflow's directory inside an ETL output directory.
WORKFLOW_DIR = "workflow"
#: The report's file inside an ETL output directory.
REPORT_FILE = "etl_report.json"


def _dataset(data, schema, device, npartitions=None, on_bad_rows="error"):
    import nvtabular as nvt

    ddf, source, rows = read_input(data, schema, device, npartitions, on_bad_rows)
    if rows["skipped"]:
        log.warning("%s: left out %d bad row(s): %s", source, rows["skipped"], rows["problems"])
    return nvt.Dataset(ddf, cpu=device == "cpu"), source, rows


def _scan(directory: Path, schema: Schema, item_id: str | None):
    """(rows, {column: OOV count}, item counts or None) of an encoded parquet directory."""
    import pyarrow.dataset as pads

    cats = {}
    for col in schema:
        if etl_kind(col) == "categorical" and categorical_options(col)["kind"] == "categorify":
            cats[col.name] = categorical_options(col).get("num_buckets") or 1
    oov = {name: 0 for name in cats}
    rows = 0
    counts = None
    if item_id is not None:
        counts = np.zeros(schema_lib.cardinality(schema[item_id]), dtype=np.int64)
    names = list(cats) + ([item_id] if item_id and item_id not in cats else [])
    dataset = pads.dataset([str(p) for p in parquet_files(directory)], format="parquet")
    check_list_columns(directory, dataset.schema, schema)
    for batch in dataset.to_batches(columns=names or None):
        rows += batch.num_rows
        for name, buckets in cats.items():
            values = flat_values(batch.column(name))
            oov[name] += int(((values >= OOV_INDEX) & (values < OOV_INDEX + buckets)).sum())
        if counts is not None:
            ids = flat_values(batch.column(item_id)).astype(np.int64)
            counts += np.bincount(ids, minlength=len(counts))[: len(counts)]
    return rows, oov, counts


def check_list_columns(directory: Path, written, schema: Schema) -> None:
    """``written`` (the pyarrow schema of the parquet in ``directory``) has every list column of the schema is a list in the written parquet.

    Guards the silent corruption of ``dataframe.convert-string`` (upstream.py):
    a list column turned into its text would be encoded as one category per row.

    >>> import pyarrow as pa
    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"tags": {"tags": ["item", "categorical", "list"], "dtype": "int64"}}})
    >>> check_list_columns(Path("out/train"), pa.schema([("tags", pa.string())]), schema)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemaretrieval.etl.options.ETLError: out/train: column 'tags' is a list in the schema but was written as string; ...
    """
    import dask as dask_lib
    import pyarrow as pa

    for col in schema:
        if col.is_list and col.name in written.names:
            kind = written.field(col.name).type
            if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                raise ETLError(f"{directory}: column {col.name!r} is a list in the schema but was "
                               f"written as {kind}; dask's dataframe.convert-string must be False "
                               f"(now {dask_lib.config.get('dataframe.convert-string')})")


@dataclass
class ETLOutput:
    """What ``fit_transform`` wrote; unpacks as ``train, valid = fit_transform(...)`` (paths).

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train, valid = sr.data.random_split(sr.data.synthetic(schema, 500, seed=0), 0.2, seed=0)
    >>> out = fit_transform(train, valid, schema=schema, out_dir=tempfile.mkdtemp())
    >>> out.train.name, out.valid.name, out.report["device"], out.report["train"]["rows"]
    ('train', 'valid', 'cpu', 400)
    >>> int(out.item_counts.sum())  # training rows per encoded item id
    400
    >>> train_dir, valid_dir = out
    """

    out_dir: Path
    train: Path
    valid: Path | None
    schema: Schema
    workflow_dir: Path
    item_counts: np.ndarray | None
    report: dict = field(default_factory=dict)

    @property
    def artifacts_dir(self) -> Path:
        """Where the vocabularies, continuous steps and item counts are (`artifacts.read_artifacts`)."""
        return self.out_dir / "artifacts"

    def __iter__(self):
        return iter((self.train, self.valid))


def _write(workflow, dataset, path: Path):
    if path.exists():
        shutil.rmtree(path)
    workflow.transform(dataset).to_parquet(str(path), shuffle=None, out_files_per_proc=1)


def _report_oov(split, source, rows, oov, expected_in_train=False, inspected=None):
    """The report of one split: rows written, OOV ids per column, and (``inspected``, from
    `rows.inspect_rows`) the bad rows left out and the missing values encoded on purpose."""
    extra = {} if inspected is None else {"skipped": inspected["skipped"], "bad_rows": inspected["problems"],
                                          "missing": inspected["nulls"]}
    for name, count in oov.items():
        if count and not expected_in_train:
            log.warning("%s (%s): column %r: %d value(s) not in the training vocabulary mapped to the OOV id",
                        split, source, name, count)
    return {"source": source, "rows": rows, "oov": oov, **extra}


@contextlib.contextmanager
def _categorify_named(source: str, schema: Schema):
    """NVTabular's "Failed to categorical encode column c", which says neither why nor what to
    change, as an ETLError naming the column and its transform."""
    try:
        yield
    except RuntimeError as err:
        column = re.fullmatch(r"Failed to categorical encode column (.+)", str(err))
        if column is None or column.group(1) not in schema.column_names:
            raise
        options = categorical_options(schema[column.group(1)])
        hint = ("; a freq_threshold above every value's count keeps no value: lower it"
                if options.get("freq_threshold") else "")
        raise ETLError(f"{source}: column {column.group(1)!r}: Categorify failed ({type(err.__cause__).__name__}: "
                       f"{err.__cause__}) with transform {options}{hint}") from None


def fit_transform(train, valid=None, schema=None, out_dir="processed", device: str = "auto", dask=None,
                  npartitions: int | None = None, on_bad_rows: str = "error") -> ETLOutput:
    """Fit the schema's workflow on ``train``, transform ``train`` and ``valid``, write everything.

    Args:
        train, valid: a DataFrame, a csv file, a parquet file or a directory of
            parquet files; ``valid`` may be None.
        schema: a merlin Schema (``sr.load_schema``) or a path to one.
        out_dir: the output directory (see the module docstring for its layout).
        device: ``auto`` | ``cpu`` | ``gpu``.
        dask: None (one process), a ``distributed.Client`` or a scheduler address.
        npartitions: partitions of a DataFrame input (default: one per 500k rows, at most 8).
        on_bad_rows: "error" (default): a raw row that cannot be encoded as the
            schema says (`etl.rows`) is an ETLError naming its source, column
            and row; "skip": such rows are left out and counted in the report
            (``report[split]["skipped"]``, ``["bad_rows"]``).

    Returns:
        an ``ETLOutput``; ``train_dir, valid_dir = fit_transform(...)`` also works.

    Raises:
        ETLError naming the file and column for a missing column, a value that
        cannot be cast to a number in a continuous column, or empty input;
        SchemaError for a bad ``transform:``. Unseen categories never raise:
        they go to the OOV id and are counted in ``report["valid"]["oov"]``;
        missing values the ETL encodes (a categorical column's null id, a
        ``fill_missing``) are counted in ``report[split]["missing"]``.

    Example: the 8 users of a small ml-100k folder get the ids 3..10 (0, 1
    and 2 are reserved), and the written schema's domain covers them.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> encoded = sr.data.read_table(out.train)
    >>> len(encoded), out.valid, sorted(encoded["user_id"].unique().tolist())
    (48, None, [3, 4, 5, 6, 7, 8, 9, 10])
    >>> sr.load_schema(out.out_dir)["user_id"].properties["domain"]
    {'min': 0, 'max': 10, 'name': 'user_id'}
    """
    if schema is None:
        raise TypeError("fit_transform: schema is required")
    if not isinstance(schema, Schema):
        schema = schema_lib.load_schema(schema)
    check_transforms(schema)
    chosen = select_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = out / ".categorify"
    wf_dir = out / WORKFLOW_DIR
    plan = plan_workflow(schema, stats_path=stats)  # runs on the context's client
    workflow = plan.workflow
    with engine_context(dask, chosen, copy_on_write(schema, workflow)) as client:
        train_ds, train_src, train_rows = _dataset(train, schema, chosen, npartitions, on_bad_rows)
        valid_ds, valid_src, valid_rows = (None, None, None) if valid is None else _dataset(
            valid, schema, chosen, npartitions, on_bad_rows)
        with TaskProgress("ETL: fitting the workflow"), _categorify_named(train_src, schema):
            workflow.fit(train_ds)
        with TaskProgress("ETL: writing train/"):
            _write(workflow, train_ds, out / "train")
        if valid_ds is not None:
            with TaskProgress("ETL: writing valid/"):
                _write(workflow, valid_ds, out / "valid")
        if wf_dir.exists():
            shutil.rmtree(wf_dir)
        workflow.save(str(wf_dir))
    shutil.rmtree(stats, ignore_errors=True)

    processed = fill_passthrough_domains(schema, output_schema(schema, workflow), out / "train")
    item_id = _item_id_or_none(processed)
    rows, oov, counts = _scan(out / "train", processed, item_id)
    report = {"device": chosen, "dask": None if dask is None else str(getattr(dask, "scheduler", dask)),
              "train": _report_oov("train", train_src, rows, oov, expected_in_train=True, inspected=train_rows)}
    if valid_ds is not None:
        v_rows, v_oov, _ = _scan(out / "valid", processed, None)
        report["valid"] = _report_oov("valid", valid_src, v_rows, v_oov, inspected=valid_rows)
    with _categorify_named(train_src, schema):
        write_artifacts(plan, processed, out, counts)
    schema_lib.save_schema(processed, out / "schema.yaml")
    schema_lib.save_schema(processed, out / "schema.pbtxt")
    # NVTabular's own file leaves pass-through string columns untyped ('unknown');
    # ours is the same schema with every column typed and tagged
    for split in ("train", "valid"):
        if (out / split).is_dir():
            schema_lib.save_schema(processed, out / split / "schema.pbtxt")
    schema_lib.save_schema(processed, wf_dir / "schema.yaml")
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    # What the CLI prints as its result; a library caller has the returned ETLOutput.
    log.debug("ETL wrote %d train rows%s to %s", rows,
             f" and {report['valid']['rows']} valid rows" if valid_ds is not None else "", out)
    return ETLOutput(out, out / "train", out / "valid" if valid_ds is not None else None,
                     processed, wf_dir, counts, report)


def _item_id_or_none(schema):
    try:
        return schema_lib.item_id_column(schema)
    except SchemaError:
        return None


def _raw_dtypes(schema, inputs):
    """The output schema with each scalar categorical column's dtype as the workflow read it (the
    output's are the encoded ids'): new rows are checked against what training's rows were."""
    return Schema([col.with_dtype(inputs[col.name].dtype)
                   if etl_kind(col) == "categorical" and not col.is_list and col.name in inputs.column_names else col
                   for col in schema])


def transform(data, workflow_dir, out_dir=None, device: str = "auto", dask=None, on_bad_rows: str = "error"):
    """New data through a workflow saved by ``fit_transform``.

    ``workflow_dir`` is the ``workflow/`` directory (or the ETL's output
    directory holding it). Returns the encoded DataFrame, or with ``out_dir``
    writes parquet there and returns ``(out_dir, report)``. Unseen categories go to the
    OOV id; their counts are logged and, with ``out_dir``, written to its report. Bad rows
    are an error, or left out and counted, as in ``fit_transform`` (``on_bad_rows``).

    Example: the training rows again give the ids the ETL wrote; a user the
    workflow never saw gets the OOV id 2.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> transform(ratings, out.out_dir)["item_id"].equals(sr.data.read_table(out.train)["item_id"])
    True
    >>> new = ratings.head(2).assign(user_id=999)
    >>> frame = transform(new, out.workflow_dir)
    >>> frame["user_id"].tolist(), frame.attrs["oov"]["user_id"]
    ([2, 2], 2)
    >>> written, report = transform(new, out.workflow_dir, out_dir=tempfile.mkdtemp())
    >>> report["rows"], report["oov"]["user_id"]
    (2, 2)
    """
    import nvtabular as nvt

    wf_dir = Path(workflow_dir)
    if (wf_dir / WORKFLOW_DIR).is_dir():
        wf_dir = wf_dir / WORKFLOW_DIR
    schema = schema_lib.load_schema(wf_dir / "schema.yaml")
    chosen = select_device(device)
    workflow = nvt.Workflow.load(str(wf_dir))  # runs on the context's client
    schema = _raw_dtypes(schema, workflow.input_schema)
    with engine_context(dask, chosen, copy_on_write(schema, workflow)) as client:
        dataset, source, inspected = _dataset(data, schema, chosen, on_bad_rows=on_bad_rows)
        if out_dir is None:
            with TaskProgress("ETL: transforming"):
                frame = workflow.transform(dataset).to_ddf().compute()
            if chosen == "gpu":
                frame = frame.to_pandas()
            frame = frame.reset_index(drop=True)
            oov = {}
            for col in schema:
                if etl_kind(col) == "categorical" and categorical_options(col)["kind"] == "categorify":
                    buckets = categorical_options(col).get("num_buckets") or 1
                    values = frame[col.name]
                    flat = np.concatenate([np.asarray(v) for v in values]) if col.is_list and len(values) \
                        else values.to_numpy()
                    oov[col.name] = int(((flat >= OOV_INDEX) & (flat < OOV_INDEX + buckets)).sum())
            _report_oov("transform", source, len(frame), oov)
            frame.attrs["oov"] = oov
            frame.attrs["skipped"] = inspected["skipped"]
            return frame
        out = Path(out_dir)
        with TaskProgress(f"ETL: writing {out}"):
            _write(workflow, dataset, out)
    rows, oov, _ = _scan(out, schema, None)
    report = _report_oov("transform", source, rows, oov, inspected=inspected)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return out, report
