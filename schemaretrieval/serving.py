"""Serving: a SavedModel that answers top-k from raw query features, and
`recommend` in Python.

`export_serving(model, candidates, path)` writes::

    path/
      saved_model.pb, variables/     the retrieval SavedModel (tf.Module)
      query_tower/                   the query tower alone: features -> embedding
      candidate_embeddings.parquet   id, vector (for your own vector store)
      users.parquet                  one row of query features per user (when users= is given)
      serving.json                   the signature's features, k, catalog size

The retrieval SavedModel needs nothing but TensorFlow to load::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](user_id=..., user_age=..., ...)
    out["ids"], out["scores"]                      # [batch, k] best first
    out = loaded.recommend(features_dict, excluded_ids, k)   # same, with exclusions

Inputs are the query tower's columns, one value per row (a list column:
``[batch, L]`` padded with -1). Categorical columns are int64 ids as the model
takes them; with ``workflow=`` the columns it has a vocabulary for (e.g. the
raw user id) are *strings* mapped in the graph (``tf.lookup.StaticHashTable``;
an unknown value becomes the vocabulary's OOV index), and so are the item ids
out and the excluded ids in. Without a vocabulary an id outside the schema's
domain is an error naming the column and the valid range.
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
    "Vocabulary", "vocabularies", "export_serving", "recommend", "load_serving",
    "recommend_from_export", "similar_items", "SERVING_FILE",
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
    it reaches `export_serving` through here.
    """
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
    if hasattr(workflow, "workflow_dir"):  # etl.fit_transform's result
        workflow = workflow.workflow_dir
    if isinstance(workflow, (str, os.PathLike)):
        import nvtabular as nvt

        path = Path(workflow)
        if (path / "workflow").is_dir():  # etl.fit_transform's out_dir
            path = path / "workflow"
        workflow = nvt.Workflow.load(str(path))
    return _nvtabular_vocabularies(workflow)


def _nvtabular_vocabularies(workflow) -> dict[str, Vocabulary]:
    """Each Categorify column's unique values, encoded by the op itself."""
    from merlin.dag import ColumnSelector
    from nvtabular.ops import Categorify

    out = {}
    graph = getattr(workflow, "output_node", None) or getattr(workflow, "graph").output_node
    stack, seen = [graph], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(getattr(node, "parents_with_dependencies", None) or getattr(node, "parents", []))
        op = getattr(node, "op", None)
        if not isinstance(op, Categorify):
            continue
        for column, path in op.categories.items():
            uniques = pd.read_parquet(path)
            name = column if column in uniques.columns else uniques.columns[0]
            values = uniques[name].dropna()
            encoded = op.transform(ColumnSelector([column]), pd.DataFrame({column: values.to_numpy()}))
            out[column] = Vocabulary(values.to_numpy(), encoded[column].to_numpy(), oov=NVT_OOV_INDEX)
    if not out:
        raise ValueError("vocabularies: the workflow has no fitted Categorify op")
    return out


# ----------------------------------------------------------------- feature specs


def _feature_specs(model, vocabs):
    """One entry per query-tower column: how the signature takes it."""
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
        specs.append(spec)
    return specs


def _tensor_spec(spec):
    dtype = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec["dtype"]]
    return tf.TensorSpec([None, None] if spec["list"] else [None], dtype, name=spec["name"])


# ------------------------------------------------------------------ the module


class _Retrieval(tf.Module):
    """The exported module: features (+ excluded ids) -> top-k ids and scores."""

    def __init__(self, tower, specs, vocabs, embeddings, item_codes, item_vocab, k):
        super().__init__(name="retrieval")
        self.tower = tower
        self.tower_variables = list(tower.variables)
        self.specs = specs
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

    def encode(self, features):
        """Raw features -> the model's inputs (vocabulary lookups, range checks)."""
        out = {}
        for spec in self.specs:
            name = spec["name"]
            value = features[name]
            if spec["vocabulary"]:
                codes = self.tables[name].lookup(value)
                # list columns pad with "" -> the model's padding -1
                value = tf.where(value == "", tf.constant(-1, tf.int64), codes) if spec["list"] else codes
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
        return tf.cast(self.tower(self.encode(features), training=False), tf.float32)

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
        with tf.control_dependencies(checks):
            queries = tf.identity(self.embed(features))
        excluded_pos = self.item_positions.lookup(excluded)  # [B, M], -1 for padding / unknown
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
        positions = tf.gather(pos, top.indices, batch_dims=1)
        return {"scores": top.values, "ids": tf.gather(self.item_ids, positions)}


def _no_exclusions(batch, dtype):
    return tf.zeros([batch, 0], dtype) if dtype == tf.int64 else tf.fill([batch, 0], "")


def _build_module(model, specs, vocabs, embeddings, item_codes, item_vocab, k):
    module = _Retrieval(model.query_tower, specs, vocabs, embeddings, item_codes, item_vocab, k)
    input_specs = {spec["name"]: _tensor_spec(spec) for spec in specs}
    first = specs[0]["name"]

    @tf.function(input_signature=[input_specs])
    def serve(features):
        batch = tf.shape(features[first])[0]
        return module.topk(features, _no_exclusions(batch, module.item_dtype), tf.constant(module.k))

    @tf.function(
        input_signature=[input_specs, tf.TensorSpec([None, None], module.item_dtype, name="excluded"),
                         tf.TensorSpec([], tf.int32, name="k")]
    )
    def recommend(features, excluded, k):
        return module.topk(features, excluded, k)

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


def export_serving(model, candidates, path, k: int = 100, workflow=None, users=None) -> Path:
    """Writes the retrieval SavedModel, the query tower and the candidate embeddings.

    Args:
        model: a trained `TwoTowerModelV2`.
        candidates: the catalog, one row per item with its features (see
            `TwoTowerModelV2.catalog`); None when the candidate tower reads
            only the item id (every id of its domain).
        path: the directory to write (created).
        k: results of the default signature (the `recommend` signature takes k).
        workflow: the ETL's vocabularies (see `vocabularies`); None when
            queries come as the model's encoded ids.
        users: optional table of query features, one row per user (the last
            row of a user wins), written to users.parquet for
            ``schemaretrieval recommend --user``; with a vocabulary for the
            user id, its ids are the raw ones.

    Returns:
        the path.
    """
    path = Path(path)
    vocabs = vocabularies(workflow)
    catalog = model.catalog(candidates)
    item_codes = catalog[model.candidate_id_column].to_numpy().astype(np.int64)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(catalog):
        raise ValueError(f"export_serving: k={k!r} must be in [1, the catalog size {len(catalog)}]")
    embeddings = model.candidate_embeddings(catalog).astype(np.float32)
    specs = _feature_specs(model, vocabs)
    item_vocab = vocabs.get(model.candidate_id_column)

    path.mkdir(parents=True, exist_ok=True)
    module, signatures = _build_module(model, specs, vocabs, embeddings, item_codes, item_vocab, k)
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
    }
    (path / SERVING_FILE).write_text(json.dumps(meta, indent=2))
    return path


def load_serving(path):
    """(the loaded retrieval SavedModel, its serving.json, the directory) from
    an export directory or a `train --out` directory (its serving/)."""
    meta, path = _meta(path)
    return tf.saved_model.load(str(path)), meta, path


# ------------------------------------------------------------------ recommend


def recommend(model, user_features, k: int = 10, candidates=None, exclude=None, index=None):
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

    Returns:
        (scores, item ids), each ``[num_users, k]``.
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
    queries = model.query_embeddings(user_features)
    return index.search(queries, k, exclude=exclude)


# ------------------------------------------------------------------ from an export directory


def _default_value(spec):
    if spec["kind"] != "categorical":
        return [0.0]
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
    ids = out["ids"].numpy()[0]
    ids = ids.astype(str) if dtype == tf.string else ids
    return list(zip(ids.tolist(), out["scores"].numpy()[0].tolist()))


def similar_items(path, item, k: int = 10):
    """The k items nearest ``item`` by candidate-tower embedding (dot product),
    the item itself left out: [(item id, score)]."""
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
