"""The NVTabular workflow built from the schema, and the schema of what it writes.

``plan_workflow(schema)`` builds the ``nvtabular.Workflow`` and keeps the ops
that encode each column (`WorkflowPlan`), so that once the workflow is fitted,
`artifacts` reads what it learned from those ops directly.
``output_schema`` is the processed data's schema: the input's tags, integer
categoricals with Categorify's domains, float32 continuous columns.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from merlin.core.dispatch import is_list_dtype
from merlin.dag import ColumnSelector
from merlin.dag.ops.udf import UDF
from merlin.io.worker import fetch_table_data, get_worker_cache
from merlin.schema import ColumnSchema, Schema, Tags
from nvtabular.ops import Categorify
from nvtabular.ops.categorify import NULL_OFFSET, OOV_OFFSET

from schemaretrieval.data.read import parquet_files
from schemaretrieval.etl.options import (
    categorical_options,
    check_transforms,
    continuous_steps,
    etl_kind,
    is_derived,
)
from schemaretrieval.etl.time import derived_columns, time_nodes

__all__ = ["DerivedFeature", "LookupCategorify", "WorkflowPlan", "plan_workflow", "build_workflow", "output_schema", "log1p_nonneg"]


class DerivedFeature(UDF):
    """``LambdaOp`` whose output column starts without the input column's tags.

    A time column's derived features (hour, day of week, ...) are not times:
    they get only the tags given here (and later ``AddTags``), not ``time``.
    (A class of its own, importable, so that a saved workflow loads in a fresh process.)

    >>> DerivedFeature(to_float32, dtype=np.float32).output_tags
    []
    """

    def _compute_tags(self, col_schema, input_schema):
        return col_schema.with_tags(self.output_tags)


class LookupCategorify(Categorify):
    """``Categorify`` whose CPU transform looks each value up in a hash index of the vocabulary.

    NVTabular 23.8 encodes a pandas column by a left merge of the rows with the
    vocabulary, then a sort of the merged rows back into their order: on 10M
    rows that merge and sort are about half of the ETL's time. A hash lookup
    (``pd.Index.get_indexer``) gives the same ids without the sort. Everything
    else is Categorify's own: the fit, the vocabulary files, the ids (0 padding,
    1 null, 2 OOV, 3.. the vocabulary), the output schema, and the transform of
    what this does not cover (cudf, list columns, hashed OOV buckets
    (``num_buckets``), joint or combo groups, ``split_out`` > 1, ``single_table``),
    which it hands to ``Categorify.transform``.

    >>> str(LookupCategorify(dtype="int64").output_dtype)
    'int64'
    """

    def transform(self, col_selector, df):
        if not isinstance(df, pd.DataFrame) or not len(df) or col_selector.subgroups:
            return super().transform(col_selector, df)
        fast = [name for name in col_selector.names if self._can_look_up(name, df[name])]
        rest = [name for name in col_selector.names if name not in fast]
        out = super().transform(ColumnSelector(rest), df) if rest else df.copy(deep=False)
        for name in fast:
            try:
                out[name] = self._look_up(name, df[name])
            except Exception as e:  # the same error as Categorify.transform
                raise RuntimeError(f"Failed to categorical encode column {name}") from e
        return out

    def _can_look_up(self, name, column) -> bool:
        buckets = self.num_buckets
        split_out = self.split_out.get(name, 1) if isinstance(self.split_out, dict) else self.split_out
        return (self.encode_type == "joint" and not self.single_table and split_out == 1
                and self.storage_name.get(name, name) == name and name in self.categories
                and self.cat_cache is not None
                and not (isinstance(buckets, int) or isinstance(buckets, dict) and name in buckets)
                and not is_list_dtype(column))

    def _vocabulary(self, name):
        """(values, ids) of the column's vocabulary, read and cached as ``Categorify`` does."""
        cache = self.cat_cache if isinstance(self.cat_cache, str) else self.cat_cache.get(name, "disk")
        with get_worker_cache("cats") as worker_cache:
            value = fetch_table_data(worker_cache, self.categories[name], columns=[name], cache=cache,
                                     cats_only=True, reader=pd.read_parquet)
            first = OOV_OFFSET + 1  # one OOV id: num_buckets is not set here
            if len(value) and value["labels"].iloc[0] < first:  # as Categorify (cudf#12837)
                value["labels"] += first
        return value[name], value["labels"].to_numpy()

    def _look_up(self, name, column):
        values, ids = self._vocabulary(name)
        # Categorify casts the rows to the vocabulary's dtype before its merge; so does this
        keys = column.astype(values.dtype, copy=False) if values.dtype != column.dtype else column
        position = pd.Index(values).get_indexer(keys)
        labels = np.where(position >= 0, ids[position], OOV_OFFSET) if len(ids) else \
            np.full(len(column), OOV_OFFSET, dtype=np.int64)
        labels[column.isna().to_numpy()] = NULL_OFFSET
        return labels.astype(self.output_dtype, copy=False)


def to_float32(col):
    """The final cast of a continuous column."""
    return col.astype("float32")


def log1p_nonneg(col):
    """The ``log`` step: ``log(x + 1)`` of values floored at 0 (below 0 NVTabular's LogOp gives NaN).

    >>> import pandas as pd
    >>> log1p_nonneg(pd.Series([-1.0, 0.0])).tolist()
    [0.0, 0.0]
    """
    return np.log1p(col.astype("float64").clip(lower=0)).astype("float32")


def _tags_of(col: ColumnSchema) -> list:
    return sorted(col.tags, key=lambda t: t.value if isinstance(t, Tags) else str(t))


@dataclass
class WorkflowPlan:
    """A workflow built from a schema, with the ops that encode each column.

    ``categorify``: column -> its ``Categorify`` op; ``continuous``: column ->
    its steps as ``(step, argument, op)``, in order. Once ``workflow`` is
    fitted, the ops hold what was learned (vocabularies, statistics).

    >>> import schemaretrieval as sr
    >>> plan = plan_workflow(sr.load_schema("schemas/movielens-100k.yaml"))
    >>> sorted(plan.categorify)[:3]
    ['item_genres', 'item_id', 'item_year']
    """

    workflow: object
    categorify: dict = field(default_factory=dict)
    continuous: dict = field(default_factory=dict)


def plan_workflow(schema: Schema, stats_path=None, client=None) -> WorkflowPlan:
    """The ``nvtabular.Workflow`` that encodes the schema's columns, with its ops (`WorkflowPlan`).

    * categorical and list-categorical columns: ``Categorify`` with the
      column's ``freq_threshold`` / ``max_size`` / ``num_buckets`` (from
      ``transform:``); unseen values map to the OOV id 2; ``kind: passthrough``
      keeps integer ids as they are. The op is `LookupCategorify`, Categorify
      with a faster CPU transform (the same ids);
    * continuous columns: the steps of ``transform:`` in order, then a cast to
      float32;
    * time columns are kept as they are; their ``transform:`` derives features
      (``hour``, ``day_of_week``, ``month`` ids, ``normalize`` /
      ``normalize_minmax`` floats) as new columns ``<column>_<feature>`` tagged
      for a tower (``tags:``, default user); text and other columns as they are;
    * every column's tags are added to the output schema (``AddTags``), so the
      workflow's output schema is tagged like the YAML.

    ``stats_path`` is where Categorify writes its vocabularies (a temporary
    place; ``Workflow.save`` copies them). ``client`` is a ``distributed.Client``.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/movielens-100k.yaml")
    >>> plan = plan_workflow(schema)
    >>> sorted(t.value for t in plan.workflow.fit_schema(schema).output_schema["item_id"].tags)
    ['categorical', 'id', 'item']
    >>> sorted(plan.continuous), [step for step, _, _ in plan.continuous["user_age"]]
    (['rating', 'user_age'], ['fill_missing', 'normalize'])
    """
    import nvtabular as nvt
    from nvtabular import ops

    check_transforms(schema)
    stats_path = str(stats_path) if stats_path is not None else "./"
    plan = WorkflowPlan(None)
    nodes = []
    for col in schema:
        if is_derived(col):  # a processed schema's time features: made from their time column
            continue
        kind = etl_kind(col)
        node = [col.name]
        if kind == "categorical":
            opts = categorical_options(col)
            if opts["kind"] == "categorify":
                op = LookupCategorify(
                    out_path=stats_path,
                    freq_threshold=opts.get("freq_threshold") or 0,
                    max_size=opts.get("max_size") or 0,
                    num_buckets=opts.get("num_buckets"),
                    dtype="int64",
                )
                plan.categorify[col.name] = op
                node = node >> op
        elif kind == "continuous":
            steps = plan.continuous[col.name] = []
            for step, arg in continuous_steps(col):
                if step == "fill_missing":
                    op = (ops.FillMedian() if arg == "median"
                          else ops.FillMissing(fill_val=0 if arg in (None, True) else arg))
                elif step == "clip":
                    op = ops.Clip(min_value=arg.get("min"), max_value=arg.get("max"))
                elif step == "log":
                    op = ops.LambdaOp(log1p_nonneg, dtype=np.float32)
                elif step == "normalize":
                    op = ops.Normalize(out_dtype=np.float32)
                else:  # normalize_minmax
                    op = ops.NormalizeMinMax()
                steps.append((step, arg, op))
                node = node >> op
            node = node >> ops.LambdaOp(to_float32, dtype=np.float32)
        node = node >> ops.AddTags(_tags_of(col))
        nodes.append(node)
        if kind == "time":
            nodes.extend(time_nodes(col))
    output = nodes[0]
    for node in nodes[1:]:
        output = output + node
    plan.workflow = nvt.Workflow(output, client=client) if client is not None else nvt.Workflow(output)
    return plan


def build_workflow(schema: Schema, stats_path=None, client=None):
    """The ``nvtabular.Workflow`` of `plan_workflow`, alone.

    >>> import schemaretrieval as sr
    >>> type(build_workflow(sr.load_schema("schemas/movielens-100k.yaml"))).__name__
    'Workflow'
    """
    return plan_workflow(schema, stats_path, client).workflow


def output_schema(schema: Schema, workflow) -> Schema:
    """The processed data's schema: the input's tags, integer categoricals with
    Categorify's domains, float32 continuous columns, ``transform`` kept, and
    each time column's derived features after it.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/movielens-100k.yaml")
    >>> workflow = build_workflow(schema)
    >>> workflow.fit_schema(schema)  # doctest: +ELLIPSIS
    <nvtabular.workflow.workflow.Workflow object at ...>
    >>> out = output_schema(schema, workflow)
    >>> str(out["user_age"].dtype.name), str(out["user_id"].dtype.name)
    ('float32', 'int64')
    """
    out_cols = []
    nvt_schema = workflow.output_schema
    for col in schema:
        kind = etl_kind(col)
        props = copy.deepcopy(col.properties)
        dtype = col.dtype
        if kind == "categorical":
            dtype = "int64"
            domain = (nvt_schema[col.name].properties.get("domain") if col.name in nvt_schema.column_names
                      else None)
            if domain and domain.get("max") is not None and categorical_options(col)["kind"] == "categorify":
                props["domain"] = {"min": int(domain.get("min", 0)), "max": int(domain["max"]),
                                   "name": (props.get("domain") or {}).get("name") or col.name}
        elif kind == "continuous":
            dtype = "float32"
            props.pop("domain", None)  # the transform changed the range
        if is_derived(col):
            continue  # rebuilt below from its time column
        out_cols.append(ColumnSchema(col.name, tags=list(col.tags), properties=props, dtype=dtype,
                                     is_list=col.is_list, is_ragged=col.is_ragged))
        if kind == "time":
            out_cols.extend(derived_columns(col))
    out = Schema(out_cols)
    out.name = getattr(schema, "name", None)
    return out


def fill_passthrough_domains(schema: Schema, out_schema: Schema, train_dir: Path) -> Schema:
    """Domain max of ``passthrough`` categorical columns from the data when the YAML lacks one."""
    import pyarrow.dataset as pads

    need = [c.name for c in schema if etl_kind(c) == "categorical"
            and categorical_options(c)["kind"] == "passthrough"
            and (c.properties.get("domain") or {}).get("max") is None]
    if not need:
        return out_schema
    top = {name: 0 for name in need}
    files = [str(p) for p in parquet_files(train_dir)]
    for batch in pads.dataset(files, format="parquet").to_batches(columns=need):
        for name in need:
            values = flat_values(batch.column(name))
            if len(values):
                top[name] = max(top[name], int(values.max()))
    cols = []
    for col in out_schema:
        if col.name in top:
            props = dict(col.properties, domain={"min": 0, "max": top[col.name], "name": col.name})
            col = col.with_properties(props)
        cols.append(col)
    result = Schema(cols)
    result.name = getattr(out_schema, "name", None)
    return result


def flat_values(array) -> np.ndarray:
    """An arrow column's values as one numpy array, list columns flattened."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = pa.concat_arrays(array.chunks) if array.num_chunks else pa.array([], pa.int64())
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)
