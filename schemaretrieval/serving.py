"""Serving: a SavedModel that answers top-k from raw query features, and
`recommend` in Python.

`export_serving(model, candidates, path)` writes::

    path/
      saved_model.pb, variables/     the retrieval SavedModel (tf.Module)
      query_tower/                   the query tower alone: features -> embedding
      candidate_embeddings.parquet   id, vector (for your own vector store)
      users.parquet                  one row of query features per user (when users= is given)
      serving.json                   the signature's features (and continuous steps), k, catalog size,
                                     whether each user's seen items are excluded

The retrieval SavedModel needs nothing but TensorFlow to load::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](user_id=..., user_age=..., ...)
    out["ids"], out["scores"]                      # [batch, k] best first
    out = loaded.recommend(features_dict, excluded_ids, k)   # same, with exclusions

With ``exclude=`` (or ``exclude_seen=True``) every signature also leaves out
the items each known user has in those interactions (e.g. the training set),
looked up in the graph by the encoded user id; a slot that exclusion leaves
without an item has score -inf and id -1 ("" for string ids).

Inputs are the query tower's columns, one value per row (a list column:
``[batch, L]`` padded with -1). Categorical columns are int64 ids as the model
takes them; with ``workflow=`` the columns it has a vocabulary for (e.g. the
raw user id) are *strings* mapped in the graph (``tf.lookup.StaticHashTable``;
an unknown value becomes the vocabulary's OOV index), and so are the item ids
out and the excluded ids in. Without a vocabulary an id outside the schema's
domain is an error naming the column and the valid range.

Continuous columns are float32. With the ETL's fitted NVTabular workflow as
``workflow=`` they are *raw* values: the graph replays each column's fitted
steps (fill missing / NaN, clip, log1p, normalize, min-max, in the ETL's order,
with the statistics of train; `continuous_transforms`). A continuous query
column the graph cannot compute from its own raw value (a time column's
derived ``normalize`` feature) fails the export, naming it. Without a workflow
(or with a mapping of vocabularies) they are taken as the model takes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from schemaretrieval.data import tables
from schemaretrieval.index import BruteForce

__all__ = [
    "Vocabulary", "vocabularies", "ContinuousTransform", "continuous_transforms", "export_serving", "recommend",
    "load_serving", "recommend_from_export", "similar_items", "SERVING_FILE",
]

SERVING_FILE = "serving.json"
NVT_OOV_INDEX = 2  # NVTabular 23.08 Categorify: 0 pad, 1 null, 2 the (first) OOV bucket
BLOCK = 2**17  # candidates scored per block in the graph: [batch, BLOCK] floats at a time


# ------------------------------------------------------------------ vocabularies


@dataclass
class Vocabulary:
    """Raw values of one column and the ids the model was trained on.

    ``values[i]`` (compared as strings) encodes to ``codes[i]``; anything else
    to ``oov``.

    >>> vocab = Vocabulary(values=["u7", "u9"], codes=[3, 4])
    >>> vocab.encode(["u9", "u7", "new"]).tolist()
    [4, 3, 2]
    >>> vocab.decode([3, 4, 9]).tolist()
    ['u7', 'u9', '9']
    """

    values: np.ndarray
    codes: np.ndarray
    oov: int = NVT_OOV_INDEX

    def __post_init__(self):
        self.values = np.asarray([str(v) for v in np.asarray(self.values).ravel()], dtype=object)
        self.codes = np.asarray(self.codes, np.int64).ravel()
        if len(self.values) != len(self.codes):
            raise ValueError(f"Vocabulary: {len(self.values)} values but {len(self.codes)} codes")

    def encode(self, raw) -> np.ndarray:
        index = pd.Index(self.values).get_indexer(np.asarray([str(v) for v in np.asarray(raw).ravel()], object))
        return np.where(index >= 0, self.codes[np.maximum(index, 0)], self.oov)

    def decode(self, codes) -> np.ndarray:
        """Raw value (string) of each code; a code without one becomes its own string."""
        lookup = dict(zip(self.codes.tolist(), self.values.tolist()))
        return np.asarray([lookup.get(int(c), str(int(c))) for c in np.asarray(codes).ravel()], dtype=object)


def _as_workflow(workflow):
    """None, a mapping of vocabularies, or a fitted NVTabular ``Workflow``
    (loaded when given as a directory or as what ``etl.fit_transform``
    returned / wrote)."""
    if workflow is None or isinstance(workflow, Mapping):
        return workflow
    if hasattr(workflow, "workflow_dir"):  # etl.fit_transform's result
        workflow = workflow.workflow_dir
    if isinstance(workflow, (str, os.PathLike)):
        import nvtabular as nvt

        path = Path(workflow)
        if (path / "workflow").is_dir():  # etl.fit_transform's out_dir
            path = path / "workflow"
        workflow = nvt.Workflow.load(str(path))
    return workflow


def vocabularies(workflow) -> dict[str, Vocabulary]:
    """The per-column vocabularies of ``workflow``.

    ``workflow`` is one of:

    * None: no vocabulary (inputs are already-encoded ids);
    * a mapping ``{column: Vocabulary | {raw: code} | [raw, ...]}`` (a list
      gives ``raw -> position``; OOV is `NVT_OOV_INDEX` unless a `Vocabulary`
      says otherwise);
    * a fitted NVTabular ``Workflow``, the directory it was saved to, or what
      ``schemaretrieval.etl.fit_transform`` returned / wrote (its out_dir): the
      vocabulary of each column its ``Categorify`` encodes, computed by the op
      itself on its saved unique values.

    This is the seam for the ETL (``schemaretrieval.etl``): whatever it saves,
    it reaches `export_serving` through here and `continuous_transforms`.

    Example: the vocabularies of a fitted ETL encode raw values to the very
    ids the ETL wrote.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = sr.etl.fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> vocabs = vocabularies(out)
    >>> sorted(vocabs)
    ['item_genres', 'item_id', 'item_year', 'user_gender', 'user_id', 'user_occupation', 'user_zip']
    >>> encoded = sr.data.read_table(out.train)
    >>> bool((vocabs["user_id"].encode(ratings["user_id"]) == encoded["user_id"]).all())
    True
    >>> vocabs["user_occupation"].encode(["writer", "astronaut"]).tolist()  # unseen: the OOV id
    [7, 2]
    >>> vocabularies({"user_id": {"u7": 3, "u9": 4}})["user_id"].encode(["u9", "new"]).tolist()
    [4, 2]
    >>> vocabularies(None)
    {}
    """
    workflow = _as_workflow(workflow)
    if workflow is None:
        return {}
    if isinstance(workflow, Mapping):
        out = {}
        for column, vocab in workflow.items():
            if isinstance(vocab, Vocabulary):
                out[column] = vocab
            elif isinstance(vocab, Mapping):
                out[column] = Vocabulary(list(vocab.keys()), list(vocab.values()))
            else:
                vocab = list(vocab)
                out[column] = Vocabulary(vocab, np.arange(len(vocab)))
        return out
    from merlin.dag import ColumnSelector
    from nvtabular.ops import Categorify

    out = {}
    for column, (ops, _) in _column_ops(workflow).items():
        op = next((op for op in ops if isinstance(op, Categorify)), None)
        if op is None or column not in op.categories:
            continue
        uniques = pd.read_parquet(op.categories[column])
        name = column if column in uniques.columns else uniques.columns[0]
        values = uniques[name].dropna()
        encoded = op.transform(ColumnSelector([column]), pd.DataFrame({column: values.to_numpy()}))
        out[column] = Vocabulary(values.to_numpy(), encoded[column].to_numpy(), oov=NVT_OOV_INDEX)
    if not out:
        raise ValueError("vocabularies: the workflow has no fitted Categorify op")
    return out


def _column_ops(workflow) -> dict[str, tuple[list, str]]:
    """Per output column of a fitted NVTabular workflow: (the ops that made it,
    input first; the input column it was made from).

    The walk follows, from the output node up, the parent that outputs the
    column, until the column is selected from the input; a column renamed or
    derived from another one ends the walk there (its source is that other
    column).
    """
    from merlin.dag.ops.concat_columns import ConcatColumns
    from merlin.dag.ops.selection import SelectionOp

    root = getattr(workflow, "output_node", None) or workflow.graph.output_node
    out = {}
    for column in root.output_schema.column_names:
        ops, node = [], root
        while True:
            if node.op is not None and not isinstance(node.op, (ConcatColumns, SelectionOp)):
                ops.append(node.op)
            parents = getattr(node, "parents_with_dependencies", None) or getattr(node, "parents", [])
            making = [p for p in parents if column in p.output_schema.column_names]
            if not making:
                break
            node = making[0]
        if isinstance(node.op, SelectionOp) or not parents:
            source = column
        else:
            source = ", ".join(name for p in parents for name in p.output_schema.column_names)
        out[column] = (ops[::-1], source)
    return out


@dataclass(frozen=True)
class ContinuousTransform:
    """The fitted steps the ETL applied to one continuous column, in order.

    ``steps`` holds ``(step, arguments)`` pairs with the statistics of train:
    ``("fill_missing", {"value"})``, ``("clip", {"min", "max"})`` (either may
    be None), ``("log", {})`` (log1p of values floored at 0),
    ``("normalize", {"mean", "std"})``, ``("normalize_minmax", {"min", "max"})``.
    ``error`` says why the column cannot be replayed from a raw input (then
    calling the transform raises it).

    >>> age = ContinuousTransform("age", (("fill_missing", {"value": 30.0}),
    ...                                   ("normalize", {"mean": 30.0, "std": 10.0})))
    >>> age([20.0, float("nan"), 45.0]).numpy().tolist()
    [-1.0, 0.0, 1.5]
    >>> ContinuousTransform("ts_days", error="computed from 'timestamp'")([1.0])
    Traceback (most recent call last):
    ...
    ValueError: ts_days: computed from 'timestamp'
    """

    column: str
    steps: tuple = ()
    error: str | None = None

    def __call__(self, values) -> tf.Tensor:
        """The steps on raw values in TensorFlow: float32 out, NaN is a missing value."""
        if self.error is not None:
            raise ValueError(f"{self.column}: {self.error}")
        x = tf.cast(values, tf.float64)  # the ETL computes in float64 and casts at the end
        for step, arg in self.steps:
            if step == "fill_missing":
                x = tf.where(tf.math.is_nan(x), tf.constant(arg["value"], tf.float64), x)
            elif step == "clip":
                # comparisons, not tf.clip_by_value: NaN stays NaN, as in NVTabular's Clip
                if arg["min"] is not None:
                    x = tf.where(x < arg["min"], tf.constant(arg["min"], tf.float64), x)
                if arg["max"] is not None:
                    x = tf.where(x > arg["max"], tf.constant(arg["max"], tf.float64), x)
            elif step == "log":
                x = tf.math.log1p(tf.where(x < 0, tf.zeros_like(x), x))
            elif step == "normalize":
                x = x - arg["mean"]
                if arg["std"] > 0:  # NVTabular only centres a constant column
                    x = x / arg["std"]
            elif step == "normalize_minmax":
                span = arg["max"] - arg["min"]
                # NVTabular maps a constant train column to x / 2x (0.5; NaN for 0)
                x = (x - arg["min"]) / span if span > 0 else x / (2 * x)
            else:
                raise ValueError(f"{self.column}: unknown continuous step {step!r}")
        return tf.cast(x, tf.float32)


def continuous_transforms(workflow) -> dict[str, ContinuousTransform]:
    """The fitted continuous steps of each continuous column of ``workflow``
    (as `vocabularies` takes it); ``{}`` for None or a mapping of vocabularies
    (their continuous inputs are taken as encoded).

    A column the workflow computes from another one (a time column's
    ``normalize`` feature) or with an op other than the ETL's continuous steps
    gets a transform whose ``error`` says so.

    Example: the fitted steps of a user's age replay what the ETL wrote.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
    >>> out = sr.etl.fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
    >>> transforms = continuous_transforms(out)
    >>> sorted(transforms), [step for step, _ in transforms["user_age"].steps]
    (['rating', 'user_age'], ['fill_missing', 'normalize'])
    >>> age = transforms["user_age"](ratings["user_age"].to_numpy())
    >>> np.allclose(age.numpy(), sr.data.read_table(out.train)["user_age"])
    True
    >>> continuous_transforms({"user_id": ["u7", "u9"]})  # vocabularies only: inputs come encoded
    {}
    """
    workflow = _as_workflow(workflow)
    if workflow is None or isinstance(workflow, Mapping):
        return {}
    from merlin.dag.ops.udf import UDF
    from merlin.schema import Tags
    from nvtabular import ops as nvt_ops
    from nvtabular.ops.add_metadata import AddMetadata

    from schemaretrieval import etl

    continuous = workflow.output_schema.select_by_tag(Tags.CONTINUOUS).column_names
    out = {}
    for column, (ops, source) in _column_ops(workflow).items():
        if column not in continuous:
            continue
        if source != column:
            out[column] = ContinuousTransform(column, error=(
                f"the workflow computes it from {source!r} (e.g. a time feature); the SavedModel replays "
                "a continuous column's own steps only, not derived features"))
            continue
        steps, error = [], None
        for op in ops:
            if isinstance(op, nvt_ops.FillMedian):
                steps.append(("fill_missing", {"value": float(op.medians[column])}))
            elif isinstance(op, nvt_ops.FillMissing):
                steps.append(("fill_missing", {"value": float(op.fill_val)}))
            elif isinstance(op, nvt_ops.Clip):
                steps.append(("clip", {"min": _float_or_none(op.min_value), "max": _float_or_none(op.max_value)}))
            elif isinstance(op, nvt_ops.Normalize):
                steps.append(("normalize", {"mean": float(op.means[column]), "std": float(op.stds[column])}))
            elif isinstance(op, nvt_ops.NormalizeMinMax):
                steps.append(("normalize_minmax", {"min": float(op.mins[column]), "max": float(op.maxs[column])}))
            elif type(op) is UDF and op.f is etl._log1p_nonneg:
                steps.append(("log", {}))
            elif type(op) is UDF and op.f is etl._float32 or isinstance(op, AddMetadata):
                continue  # the final cast (the graph casts too) and tags: no change to the values
            else:
                name = type(op).__name__ + (f"({getattr(op.f, '__name__', op.f)})" if isinstance(op, UDF) else "")
                error = (f"the workflow applies {name}, which the SavedModel cannot replay "
                         f"(it replays the ETL's {', '.join(etl.CONTINUOUS_STEPS)})")
                break
        out[column] = ContinuousTransform(column, error=error) if error else ContinuousTransform(column, tuple(steps))
    return out


def _float_or_none(value):
    return None if value is None else float(value)


# ----------------------------------------------------------------- feature specs


def _feature_specs(model, vocabs, transforms):
    """One entry per query-tower column: how the signature takes it (and, for
    a continuous column with fitted ETL steps, the steps the graph applies)."""
    specs = []
    for name in model.query_tower.column_names:
        col = model.schema[name]
        kind = tables._column_kind(col)
        is_list = tables._is_list_column(col)
        dom = tables._column_domain(col)
        spec = {"name": name, "kind": kind, "list": is_list, "vocabulary": name in vocabs}
        if kind == "categorical":
            spec["dtype"] = "string" if name in vocabs else "int64"
            spec["range"] = [int(dom[0]), int(dom[1])] if dom else None
        else:
            spec["dtype"] = "float32"
            spec["transform"] = [[step, arg] for step, arg in transforms[name].steps] if name in transforms else None
        specs.append(spec)
    return specs


def _tensor_spec(spec):
    dtype = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec["dtype"]]
    return tf.TensorSpec([None, None] if spec["list"] else [None], dtype, name=spec["name"])


# ------------------------------------------------------------------ the module


@dataclass
class _Seen:
    """Each known user's seen items, as the graph stores them: the catalog
    positions of user ``users[i]`` (its encoded id) are
    ``positions[indptr[i]:indptr[i + 1]]``."""

    column: str
    users: np.ndarray
    indptr: np.ndarray
    positions: np.ndarray


class _Retrieval(tf.Module):
    """The exported module: features (+ excluded ids) -> top-k ids and scores,
    each user's seen items (when stored) excluded too."""

    def __init__(self, tower, specs, vocabs, transforms, embeddings, item_codes, item_vocab, k, seen=None):
        super().__init__(name="retrieval")
        self.tower = tower
        self.tower_variables = list(tower.variables)
        self.specs = specs
        self._transforms = transforms  # plain Python: traced into constants, nothing to save
        self.k = int(k)
        self.num_candidates = int(len(embeddings))
        self.candidates_t = tf.Variable(np.ascontiguousarray(embeddings.T), trainable=False, name="candidates_t")
        self.tables = {}
        for spec in specs:
            if spec["vocabulary"]:
                vocab = vocabs[spec["name"]]
                self.tables[spec["name"]] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(
                        tf.constant(vocab.values.astype(str)), tf.constant(vocab.codes, tf.int64)
                    ),
                    default_value=tf.constant(int(vocab.oov), tf.int64),
                )
        positions = tf.range(self.num_candidates, dtype=tf.int64)
        if item_vocab is not None:
            raw = item_vocab.decode(item_codes).astype(str)
            self.item_ids = tf.Variable(raw, trainable=False, name="item_ids")
            keys = tf.constant(raw)
        else:
            self.item_ids = tf.Variable(np.asarray(item_codes, np.int64), trainable=False, name="item_ids")
            keys = tf.constant(np.asarray(item_codes, np.int64))
        self.item_positions = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, positions), default_value=tf.constant(-1, tf.int64)
        )
        self.item_dtype = tf.string if item_vocab is not None else tf.int64
        # What fills a slot when fewer than k items are left unexcluded.
        self.fill_id = tf.constant("" if item_vocab is not None else -1, self.item_dtype)
        # No user with seen items: nothing to look up (a lookup table cannot be empty).
        self.seen_column = seen.column if seen is not None and len(seen.users) else None
        if self.seen_column is not None:
            # encoded user id -> its row of a ragged [users, seen items]; any
            # other id -> the last row, empty
            self.seen_rows = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(seen.users, tf.int64), tf.range(len(seen.users), dtype=tf.int64)
                ),
                default_value=tf.constant(len(seen.users), tf.int64),
            )
            self.seen_splits = tf.Variable(np.append(seen.indptr, seen.indptr[-1]).astype(np.int64),
                                           trainable=False, name="seen_splits")
            self.seen_positions = tf.Variable(seen.positions.astype(np.int32), trainable=False, name="seen_positions")

    def encode(self, features):
        """Raw features -> the model's inputs (vocabulary lookups, the ETL's
        continuous steps, range checks)."""
        out = {}
        for spec in self.specs:
            name = spec["name"]
            value = features[name]
            if spec["vocabulary"]:
                codes = self.tables[name].lookup(value)
                # list columns pad with "" -> the model's padding -1
                value = tf.where(value == "", tf.constant(-1, tf.int64), codes) if spec["list"] else codes
            elif spec.get("transform") is not None:
                value = self._transforms[name](value)
            elif spec["kind"] == "categorical" and spec["range"] is not None:
                lo, hi = spec["range"]
                checked = value if not spec["list"] else tf.where(value == -1, tf.cast(lo, value.dtype), value)
                in_range = tf.reduce_all((checked >= lo) & (checked <= hi))
                bad = tf.boolean_mask(checked, ~((checked >= lo) & (checked <= hi)))
                with tf.control_dependencies(
                    [tf.debugging.Assert(in_range, [f"{name}: ids must be in [{lo}, {hi}], the domain of the schema; got", bad],
                                         summarize=5)]
                ):
                    value = tf.identity(value)
            out[name] = value
        return out

    def embed(self, features):
        return self._tower(self.encode(features))

    def _tower(self, encoded):
        return tf.cast(self.tower(encoded, training=False), tf.float32)

    def seen(self, encoded):
        """[batch, most seen] catalog positions of each row's seen items, -1 padded."""
        rows = self.seen_rows.lookup(tf.cast(encoded[self.seen_column], tf.int64))
        table = tf.RaggedTensor.from_row_splits(self.seen_positions, self.seen_splits, validate=False)
        return tf.cast(tf.gather(table, rows).to_tensor(default_value=-1), tf.int64)

    def topk(self, features, excluded, k):
        # The checks gate the top-k: run in parallel, TopK's own error about
        # k could win the race and hide the catalog size.
        checks = [
            tf.debugging.assert_less_equal(
                tf.cast(k, tf.int64), tf.constant(self.num_candidates, tf.int64),
                message=f"k is larger than the catalog size {self.num_candidates}",
            ),
            tf.debugging.assert_positive(k, message="k must be >= 1"),
        ]
        encoded = self.encode(features)
        with tf.control_dependencies(checks):
            queries = tf.identity(self._tower(encoded))
        excluded_pos = self.item_positions.lookup(excluded)  # [B, M], -1 for padding / unknown
        if self.seen_column is not None:
            excluded_pos = tf.concat([excluded_pos, self.seen(encoded)], axis=1)
        batch = tf.shape(queries)[0]
        rows = tf.broadcast_to(tf.range(tf.cast(batch, tf.int64))[:, None], tf.shape(excluded_pos))
        best_scores, best_pos = [], []
        # Candidates in static blocks: a [batch, BLOCK] score matrix at a time.
        for start in range(0, self.num_candidates, BLOCK):
            stop = min(start + BLOCK, self.num_candidates)
            scores = tf.matmul(queries, self.candidates_t[:, start:stop])
            inside = (excluded_pos >= start) & (excluded_pos < stop)
            index = tf.stack([tf.boolean_mask(rows, inside), tf.boolean_mask(excluded_pos, inside) - start], axis=1)
            fill = tf.fill(tf.shape(index)[:1], tf.constant(-np.inf, tf.float32))
            scores = tf.tensor_scatter_nd_update(scores, index, fill)
            top = tf.math.top_k(scores, k=tf.minimum(k, stop - start))
            best_scores.append(top.values)
            best_pos.append(tf.cast(top.indices, tf.int64) + start)
        scores, pos = tf.concat(best_scores, 1), tf.concat(best_pos, 1)
        top = tf.math.top_k(scores, k=k)
        ids = tf.gather(self.item_ids, tf.gather(pos, top.indices, batch_dims=1))
        # -inf is an excluded item: fewer than k were left, the slot is filled
        ids = tf.where(tf.math.equal(top.values, -np.inf), self.fill_id, ids)
        return {"scores": top.values, "ids": ids}


def _no_exclusions(batch, dtype):
    return tf.zeros([batch, 0], dtype) if dtype == tf.int64 else tf.fill([batch, 0], "")


def _build_module(model, specs, vocabs, transforms, embeddings, item_codes, item_vocab, k, seen=None):
    module = _Retrieval(model.query_tower, specs, vocabs, transforms, embeddings, item_codes, item_vocab, k, seen)
    input_specs = {spec["name"]: _tensor_spec(spec) for spec in specs}
    first = specs[0]["name"]

    @tf.function(
        input_signature=[input_specs, tf.TensorSpec([None, None], module.item_dtype, name="excluded"),
                         tf.TensorSpec([], tf.int32, name="k")]
    )
    def recommend(features, excluded, k):
        return module.topk(features, excluded, k)

    # The default k through `recommend`'s graph: a trace of its own of the
    # towers and the top-k cost about a sixth of an export's time.
    @tf.function(input_signature=[input_specs])
    def serve(features):
        batch = tf.shape(features[first])[0]
        top = recommend(features, _no_exclusions(batch, module.item_dtype), tf.constant(module.k))
        return {name: tf.ensure_shape(value, [None, module.k]) for name, value in top.items()}

    @tf.function(input_signature=[input_specs])
    def query_embedding(features):
        return {"embedding": module.embed(features)}

    # Signatures take keyword tensors: one per feature (+ excluded, k).
    names = [spec["name"] for spec in specs]

    @tf.function(input_signature=[input_specs[n] for n in names])
    def serving_default(*args):
        return serve(dict(zip(names, args)))

    @tf.function(
        input_signature=[input_specs[n] for n in names]
        + [tf.TensorSpec([None, None], module.item_dtype, name="excluded"), tf.TensorSpec([], tf.int32, name="k")]
    )
    def recommend_signature(*args):
        return recommend(dict(zip(names, args[:-2])), args[-2], args[-1])

    @tf.function(input_signature=[input_specs[n] for n in names])
    def query_embedding_signature(*args):
        return query_embedding(dict(zip(names, args)))

    module.serve, module.recommend, module.query_embedding = serve, recommend, query_embedding
    signatures = {
        "serving_default": serving_default.get_concrete_function(),
        "recommend": recommend_signature.get_concrete_function(),
        "query_embedding": query_embedding_signature.get_concrete_function(),
    }
    return module, signatures


def _query_tower_module(model, specs):
    """The query tower alone on the model's (encoded) inputs."""
    module = tf.Module(name="query_tower")
    module.tower = model.query_tower
    module.tower_variables = list(model.query_tower.variables)
    encoded = [dict(spec, vocabulary=False, dtype="int64" if spec["kind"] == "categorical" else "float32")
               for spec in specs]
    names = [spec["name"] for spec in encoded]

    @tf.function(input_signature=[_tensor_spec(spec) for spec in encoded])
    def serving_default(*args):
        return {"embedding": tf.cast(module.tower(dict(zip(names, args)), training=False), tf.float32)}

    module.serving_default = serving_default
    return module, {"serving_default": serving_default.get_concrete_function()}


# ------------------------------------------------------------------ export


def _check_oov_code_is_free(specs, vocabs):
    """A query column's vocabulary given by the caller may not give a raw
    value the code unknown values get: the graph would serve both as one
    user. (The item id's vocabulary only decodes, and a fitted workflow's
    come from its Categorify, which owns its OOV id.)"""
    for spec in specs:
        if spec["vocabulary"]:
            vocab = vocabs[spec["name"]]
            taken = vocab.values[vocab.codes == vocab.oov]
            if len(taken):
                raise ValueError(
                    f"export_serving: workflow[{spec['name']!r}] gives {taken[0]!r} code {vocab.oov}, the code of "
                    f"unknown values; leave that code free, or give Vocabulary(values, codes, oov=...) with another")


def export_serving(model, candidates, path, k: int = 100, workflow=None, users=None, exclude=None,
                   exclude_seen: bool = False) -> Path:
    """Writes the retrieval SavedModel, the query tower and the candidate embeddings.

    Args:
        model: a trained `TwoTowerModelV2`.
        candidates: the catalog, one row per item with its features (see
            `TwoTowerModelV2.catalog`); None when the candidate tower reads
            only the item id (every id of its domain).
        path: the directory to write (created).
        k: results of the default signature (the `recommend` signature takes k).
        workflow: the ETL's fitted workflow or vocabularies (see
            `vocabularies`); None when queries come as the model's encoded
            inputs. With a fitted NVTabular workflow the graph also replays
            each continuous query column's fitted steps
            (`continuous_transforms`), so those inputs are raw values too.
        users: optional table of query features, one row per user (the last
            row of a user wins), written to users.parquet for
            ``schemaretrieval recommend --user``; its values are what the
            signature takes (with a workflow: raw ids and raw continuous
            values).
        exclude: interactions (user id, item id; e.g. the training set, with
            the ids the model was fit on) whose items every signature leaves
            out of the same user's results, besides the caller's
            ``excluded``, as TFRS's ``query_with_exclusions``: k results are
            still returned. A user without rows here (or the user-id
            vocabulary's OOV id) has nothing excluded.
        exclude_seen: exclude the interactions of the model's last `fit` on
            a table; the same as ``exclude=train`` (see
            `TwoTowerModelV2.evaluate_topk`).

    Returns:
        the path.

    Example: export with each user's training items left out, then ask the
    export for one user's top 5 and for an item's neighbours.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(train, epochs=1, verbose=0)
    >>> users = train.drop_duplicates("user_id")[["user_id", "user_age", "user_country"]]
    >>> catalog = sr.data.candidate_table(train, schema)
    >>> path = export_serving(model, catalog, tempfile.mkdtemp(), k=5, users=users, exclude_seen=True)
    >>> user = int(train["user_id"].iloc[0])
    >>> top = recommend_from_export(path, user, k=5)
    >>> len(top), set(train.loc[train["user_id"] == user, "item_id"]) & {item for item, _ in top}
    (5, set())
    >>> len(similar_items(path, top[0][0], k=3))
    3
    """
    path = Path(path)
    workflow = _as_workflow(workflow)  # loaded once for both readers
    vocabs = vocabularies(workflow)
    transforms = continuous_transforms(workflow)
    if workflow is not None and not isinstance(workflow, Mapping):
        _check_replayable(model, transforms)
    catalog = model.catalog(candidates)
    item_codes = catalog[model.candidate_id_column].to_numpy().astype(np.int64)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(catalog):
        raise ValueError(f"export_serving: k={k!r} must be in [1, the catalog size {len(catalog)}]")
    if exclude_seen:
        exclude = model._seen(exclude, "export_serving")
    seen = None if exclude is None else _seen_items(model, exclude, item_codes, vocabs)
    if not model.built:
        # An untrained model's query tower would otherwise create its weights
        # inside a traced signature, where the SavedModel does not track them.
        model.build()
    embeddings = model.candidate_embeddings(catalog).astype(np.float32)
    specs = _feature_specs(model, vocabs, transforms)
    if isinstance(workflow, Mapping):
        _check_oov_code_is_free(specs, vocabs)
    item_vocab = vocabs.get(model.candidate_id_column)

    path.mkdir(parents=True, exist_ok=True)
    module, signatures = _build_module(model, specs, vocabs, transforms, embeddings, item_codes, item_vocab, k, seen)
    tf.saved_model.save(module, str(path), signatures=signatures)
    tower, tower_signatures = _query_tower_module(model, specs)
    tf.saved_model.save(tower, str(path / "query_tower"), signatures=tower_signatures)

    item_ids = item_vocab.decode(item_codes).astype(str) if item_vocab is not None else item_codes
    pd.DataFrame({"id": item_ids, "vector": list(embeddings)}).to_parquet(path / "candidate_embeddings.parquet")
    if users is not None:
        frame = tables.as_frame(users, "users")
        names = [spec["name"] for spec in specs]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"export_serving: users= lacks the query feature(s) {missing}; it has {list(frame.columns)}")
        frame = frame[names]
        if model.query_id_column in names:
            frame = frame.drop_duplicates(model.query_id_column, keep="last")
        frame.reset_index(drop=True).to_parquet(path / "users.parquet")
    meta = {
        "features": specs,
        "k": int(k),
        "catalog_size": int(len(catalog)),
        "user_id": model.query_id_column,
        "item_id": model.candidate_id_column,
        "item_ids": "string" if item_vocab is not None else "int64",
        "users": users is not None,
        "exclude_seen": seen is not None,
        "seen_users": 0 if seen is None else int(len(seen.users)),
    }
    (path / SERVING_FILE).write_text(json.dumps(meta, indent=2))
    return path


def _seen_items(model, exclude, item_codes, vocabs) -> _Seen:
    """Each user's items in ``exclude`` as catalog positions, keyed by the
    encoded user id the graph computes (the OOV id left out)."""
    exclude = model._exclusion_table(exclude, "export_serving")
    uid = model.query_id_column
    if uid not in model.query_tower.column_names:
        raise ValueError(
            f"export_serving: exclude= matches users by {uid!r}, which the query tower does not read "
            f"(it reads {model.query_tower.column_names}), so the graph has no user id to look seen items up by"
        )
    users = pd.unique(exclude[uid].to_numpy())
    if not np.issubdtype(users.dtype, np.integer):
        raise ValueError(
            f"export_serving: exclude[{uid!r}] holds {users.dtype} values; seen items are keyed by the encoded "
            "(integer) user id, so pass the interactions as the model was fit on them"
        )
    if uid in vocabs:
        # Raw ids the vocabulary does not know become its OOV id: an unknown user has seen nothing.
        users = users[users != vocabs[uid].oov]
    indptr, positions = model._exclusions(pd.DataFrame({uid: users}), exclude, item_codes, "export_serving")
    return _Seen(uid, users.astype(np.int64), indptr, positions)


def _check_replayable(model, transforms):
    """Every continuous query column has fitted steps the graph can replay:
    a raw input must never reach the tower untransformed."""
    for name in model.query_tower.column_names:
        if tables._column_kind(model.schema[name]) == "categorical":
            continue
        if name not in transforms:
            raise ValueError(
                f"export_serving: the query tower reads the continuous column {name!r}, which the workflow does "
                f"not output (its continuous columns: {sorted(transforms)}); export with the workflow the "
                "model's data came from"
            )
        if transforms[name].error is not None:
            raise ValueError(
                f"export_serving: the query tower reads {name!r}, but {transforms[name].error}; leave it out of "
                "the query tower, or export without workflow= and pass every input encoded"
            )


def load_serving(path):
    """(the loaded retrieval SavedModel, its serving.json, the directory) from
    an export directory or a `train --out` directory (its serving/).

    Example: the top 5 of two users through the default signature.

    >>> import tempfile
    >>> import tensorflow as tf
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)  # untrained, to keep the example quick; any model exports
    >>> export = export_serving(model, sr.data.candidate_table(train, schema), tempfile.mkdtemp(), k=5)
    >>> loaded, meta, path = load_serving(export)
    >>> [spec["name"] for spec in meta["features"]], meta["k"], path == export
    (['user_id', 'user_age', 'user_country'], 5, True)
    >>> out = loaded.signatures["serving_default"](user_id=tf.constant([3, 7], tf.int64),
    ...                                            user_age=tf.constant([0.2, 0.9]),
    ...                                            user_country=tf.constant([1, 4], tf.int64))
    >>> out["ids"].shape.as_list(), out["scores"].shape.as_list()
    ([2, 5], [2, 5])
    """
    meta, path = _meta(path)
    return tf.saved_model.load(str(path)), meta, path


# ------------------------------------------------------------------ recommend


def recommend(model, user_features, k: int = 10, candidates=None, exclude=None, index=None,
              exclude_seen: bool = False):
    """Top-k items for each row of ``user_features`` in Python: query tower +
    `BruteForce` over the catalog.

    Args:
        model: a `TwoTowerModelV2`.
        user_features: a DataFrame or mapping of the query tower's columns
            (encoded ids); a single user may be given as scalars.
        k: results per user.
        candidates: the catalog (see `TwoTowerModelV2.catalog`).
        exclude: one collection of item ids per user, left out of its results.
        index: an already built index over the catalog (skips re-embedding it).
        exclude_seen: also leave out each user's items in the model's last
            `fit` on a table (matched by the user id column), as
            `export_serving(exclude_seen=True)` does in the graph.

    Returns:
        (scores, item ids), each ``[num_users, k]``; k larger than what
        exclusion leaves of the catalog for some user is a ValueError.

    Example: three users' top 5, best first; leaving out the first user's
    best item moves the others up.

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(train, epochs=1, verbose=0)
    >>> users = train.drop_duplicates("user_id").head(3)
    >>> catalog = sr.data.candidate_table(train, schema)
    >>> scores, ids = recommend(model, users, k=5, candidates=catalog)
    >>> scores.shape, ids.shape, bool((scores[:, :-1] >= scores[:, 1:]).all())
    ((3, 5), (3, 5), True)
    >>> _, again = recommend(model, users, k=5, candidates=catalog, exclude=[[ids[0, 0]], [], []])
    >>> again[0, :4].tolist() == ids[0, 1:].tolist(), again[1:].tolist() == ids[1:].tolist()
    (True, True)
    >>> _, unseen = recommend(model, users, k=5, candidates=catalog, exclude_seen=True)
    >>> [set(row) & set(train.loc[train["user_id"] == user, "item_id"]) for user, row in zip(users["user_id"], unseen)]
    [set(), set(), set()]
    """
    if isinstance(user_features, Mapping) and not isinstance(user_features, pd.DataFrame):
        user_features = {name: np.atleast_1d(np.asarray(v)) if np.ndim(v) == 0 else v
                         for name, v in user_features.items()}
    names = model.query_tower.column_names
    present = user_features.columns if isinstance(user_features, pd.DataFrame) else user_features.keys()
    missing = [name for name in names if name not in present]
    if missing:
        raise ValueError(f"recommend: user_features lacks the query feature(s) {missing}; the query tower reads {names}")
    if index is None:
        catalog = model.catalog(candidates)
        if k > len(catalog):
            raise ValueError(f"recommend: k={k} is larger than the catalog size {len(catalog)}")
        index = BruteForce().index(model.candidate_embeddings(catalog), catalog[model.candidate_id_column].to_numpy())
    if exclude_seen:
        exclude = _with_seen(model, user_features, index.ids, exclude)
    queries = model.query_embeddings(user_features)
    return index.search(queries, k, exclude=exclude)


def _with_seen(model, user_features, item_ids, exclude):
    """``exclude`` (one collection of ids per user, or None) with each user's
    seen items of the last fit added."""
    seen = model._seen(None, "recommend", instead="exclude= the item ids to leave out for each user")
    seen = model._exclusion_table(seen, "recommend")
    uid = model.query_id_column
    if uid not in user_features:
        raise ValueError(f"recommend: exclude_seen=True matches users by {uid!r}, which user_features lacks")
    users = pd.DataFrame({uid: np.asarray(user_features[uid]).ravel()})
    indptr, positions = model._exclusions(users, seen, item_ids, "recommend")
    seen_ids = np.split(item_ids[positions], indptr[1:-1])
    if exclude is None:
        return seen_ids
    if len(exclude) != len(seen_ids):
        raise ValueError(f"recommend: exclude has {len(exclude)} entries for {len(seen_ids)} users (one per user)")
    return [([] if mine is None else list(mine)) + theirs.tolist() for mine, theirs in zip(exclude, seen_ids)]


# ------------------------------------------------------------------ from an export directory


def _default_value(spec):
    if spec["kind"] != "categorical":
        # no row for the user: missing (NaN) where the graph fills it like the ETL, else 0
        steps = [step for step, _ in spec.get("transform") or []]
        return [float("nan")] if "fill_missing" in steps else [0.0]
    if spec["vocabulary"]:
        return [[""]] if spec["list"] else [""]  # not in the vocabulary: OOV
    low = spec["range"][0] if spec["range"] else 0
    return [[-1]] if spec["list"] else [low]


def _as_input(spec, value):
    dtype = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec["dtype"]]
    if spec["dtype"] == "string":
        value = np.asarray(value, dtype=object).astype(str)
    return tf.constant(value, dtype)


def recommend_from_export(path, user, k: int = 10, exclude=()):
    """Top-k [(item id, score)] for one user id through an exported SavedModel.

    The user's other query features come from the export's users.parquet. An
    id the export has no row for: with a vocabulary for the user id, the OOV
    user with default features (k items all the same); without one, an id
    outside the schema's domain is an error naming the valid range.

    ``exclude`` is left out besides the seen items the export stores (see
    `export_serving`); when fewer than k items are left, fewer are returned.

    Example: the export answers what `recommend` answers in Python.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)  # untrained, to keep the example quick; any model exports
    >>> users = train.drop_duplicates("user_id")[["user_id", "user_age", "user_country"]]
    >>> catalog = sr.data.candidate_table(train, schema)
    >>> path = export_serving(model, catalog, tempfile.mkdtemp(), k=5, users=users)
    >>> user = int(users["user_id"].iloc[0])
    >>> top = recommend_from_export(path, user, k=5)
    >>> scores, ids = recommend(model, users.head(1), k=5, candidates=catalog)
    >>> [item for item, _ in top] == ids[0].tolist(), np.allclose([score for _, score in top], scores[0], atol=1e-5)
    (True, True)
    >>> recommend_from_export(path, user, k=4, exclude=[top[0][0]]) == top[1:]
    True
    >>> recommend_from_export(path, 5000)
    Traceback (most recent call last):
    ...
    ValueError: unknown user id 5000: user_id takes ids in [0, 1999] (the model's domain)
    """
    loaded, meta, path = load_serving(path)
    size = meta["catalog_size"]
    if not isinstance(k, (int, np.integer)) or k < 1 or k > size:
        raise ValueError(f"k={k} must be in [1, the catalog size {size}]")
    specs = {spec["name"]: spec for spec in meta["features"]}
    uid = meta["user_id"]
    row = None
    if meta.get("users") and (path / "users.parquet").exists() and uid is not None:
        users = pd.read_parquet(path / "users.parquet")
        match = users[users[uid].astype(str) == str(user)]
        row = None if match.empty else match.iloc[-1:]  # a frame: each column keeps its dtype
    inputs = {}
    for name, spec in specs.items():
        if row is not None:
            value = row[name].to_numpy()
            inputs[name] = _as_input(spec, [list(value[0])] if spec["list"] else value)
            continue
        if name == uid:
            if spec["vocabulary"]:
                inputs[name] = _as_input(spec, [str(user)])
                continue
            try:
                user_code = int(user)
            except ValueError:
                raise ValueError(f"user id {user!r} is not an integer id; {uid} takes ids in {spec['range']}") from None
            lo, hi = spec["range"] if spec["range"] else (0, None)
            if user_code < lo or (hi is not None and user_code > hi):
                raise ValueError(f"unknown user id {user!r}: {uid} takes ids in [{lo}, {hi}] (the model's domain)")
            inputs[name] = _as_input(spec, [user_code])
        elif spec["vocabulary"] or not meta.get("users"):
            inputs[name] = _as_input(spec, _default_value(spec))
        else:
            raise ValueError(
                f"user {user!r} has no row in {path / 'users.parquet'}; the query tower also needs {name!r}"
            )
    dtype = tf.string if meta["item_ids"] == "string" else tf.int64
    exclude = [str(x) if dtype == tf.string else int(x) for x in exclude]
    excluded = tf.constant([exclude], dtype) if exclude else tf.zeros([1, 0], dtype)
    out = loaded.signatures["recommend"](**inputs, excluded=excluded, k=tf.constant(int(k), tf.int32))
    ids, scores = out["ids"].numpy()[0], out["scores"].numpy()[0]
    ids = ids.astype(str) if dtype == tf.string else ids
    kept = scores > -np.inf  # the graph's filled slots: fewer than k items were left unexcluded
    return list(zip(ids[kept].tolist(), scores[kept].tolist()))


def similar_items(path, item, k: int = 10):
    """The k items nearest ``item`` by candidate-tower embedding (dot product),
    the item itself left out: [(item id, score)].

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)  # untrained, to keep the example quick; any model exports
    >>> path = export_serving(model, sr.data.candidate_table(train, schema), tempfile.mkdtemp(), k=5)
    >>> item = int(train["item_id"].iloc[0])
    >>> neighbours = similar_items(path, item, k=3)
    >>> len(neighbours), item in [other for other, _ in neighbours], neighbours[0][1] >= neighbours[-1][1]
    (3, False, True)
    """
    _, path = _meta(path)
    table = pd.read_parquet(path / "candidate_embeddings.parquet")
    ids = table["id"].to_numpy()
    match = np.nonzero(table["id"].astype(str).to_numpy() == str(item))[0]
    if not len(match):
        raise ValueError(
            f"unknown item id {item!r}: not among the {len(ids)} items of {path / 'candidate_embeddings.parquet'} "
            f"(e.g. {ids[0]!r} .. {ids[-1]!r})"
        )
    if not isinstance(k, (int, np.integer)) or k < 1 or k > len(ids) - 1:
        raise ValueError(f"k={k} must be in [1, the catalog size {len(ids)} - 1 (the item itself is left out)]")
    vectors = np.stack(table["vector"].to_numpy()).astype(np.float32)
    scores, found = BruteForce().index(vectors, ids).search(vectors[match[:1]], k, exclude=[[ids[match[0]]]])
    return list(zip(found[0].tolist(), scores[0].tolist()))


def _meta(path):
    path = Path(path)
    if not (path / SERVING_FILE).exists() and (path / "serving" / SERVING_FILE).exists():
        path = path / "serving"
    if not (path / SERVING_FILE).exists():
        raise FileNotFoundError(
            f"{str(path)!r} holds no export (no {SERVING_FILE}); write one with export_serving "
            "or `schemaretrieval train --out DIR` (DIR/serving)"
        )
    return json.loads((path / SERVING_FILE).read_text()), path
