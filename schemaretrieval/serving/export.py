"""The serving export: a SavedModel that answers top-k from raw query features, TensorFlow alone.

`export_serving(model, catalog, path, artifacts=ETL_OUT)` writes::

    path/
      saved_model.pb, variables/     the retrieval SavedModel (tf.Module)
      query_tower/                   the query tower alone: encoded features -> embedding
      candidate_embeddings.parquet   id (raw when the ETL's vocabulary has it), vector
      users.parquet                  one row of encoded query features per user (with users=)
      serving.json                   the signatures' features, k, catalog size, what is excluded

The SavedModel needs nothing but TensorFlow to load::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](user_id=..., user_age=..., ...)
    out["ids"], out["scores"]                                   # [batch, k] best first
    out = loaded.signatures["recommend"](**features, excluded=ids, k=tf.constant(20))

Inputs (``serving_default``, ``recommend``, ``query_embedding``) are the query
tower's columns, one value per row (a list column: ``[batch, L]``, padded
with ""/-1). With the ETL's artifacts, a column it has a vocabulary for takes
its *raw* values as strings (an unknown value becomes the OOV id), a
continuous column its *raw* value (the graph replays the ETL's fitted steps),
and the item ids come out raw; without, inputs are the model's encoded ones
and an id outside the schema's domain is an error naming the column.
``recommend_encoded`` always takes the encoded inputs (what users.parquet
holds). With ``exclude=``, every signature also leaves out the items each
known user has in those interactions (looked up by the encoded user id); a
slot that exclusion leaves without an item has score -inf and id -1 ("").
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from schemaretrieval.data.catalog import Catalog, as_catalog
from schemaretrieval.data.checks import domain_assertion
from schemaretrieval.data.exclusions import as_exclusions
from schemaretrieval.data.read import read_frame, require_columns
from schemaretrieval.etl.artifacts import as_artifacts
from schemaretrieval.progress import Progress
from schemaretrieval.schema import columns
from schemaretrieval.schema.columns import CATEGORICAL, PAD
from schemaretrieval.schema.errors import did_you_mean
from schemaretrieval.retrieval.topk import CHUNK_BYTES
from schemaretrieval.serving.indexes import BruteForce, TopKIndex
from schemaretrieval.serving.requests import (expected_shape, finite_assertion, gate, input_spec, unit_length,
                                              usable_query_assertion)

log = logging.getLogger("schemaretrieval.serving")

__all__ = ["SERVING_FILE", "export_serving", "feature_specs"]

SERVING_FILE = "serving.json"


def feature_specs(model, artifacts) -> list[dict]:
    """One entry per query-tower column: how the signatures take it, and for a continuous
    column with fitted ETL steps, the steps the graph applies.

    >>> import schemaretrieval as sr
    >>> model = sr.TwoTowerModel(sr.load_schema("schemas/synthetic.yaml"))
    >>> [(spec["name"], spec["dtype"]) for spec in feature_specs(model, sr.etl.Artifacts())]
    [('user_id', 'int64'), ('user_age', 'float32'), ('user_country', 'int64')]
    """
    specs = []
    for name in model.query_tower.column_names:
        col = model.schema[name]
        kind = columns.kind(col)
        vocab = name in artifacts.vocabularies
        spec = {"name": name, "kind": kind, "list": columns.is_list(col), "vocabulary": vocab}
        if kind == CATEGORICAL:
            dom = columns.domain(col)
            spec["dtype"] = "string" if vocab else "int64"
            spec["range"] = [int(dom[0]), int(dom[1])] if dom else None
        else:
            spec["dtype"] = "float32"
            transform = artifacts.continuous.get(name)
            spec["transform"] = [[step, arg] for step, arg in transform.steps] if transform is not None else None
        specs.append(spec)
    return specs


def _tensor_spec(spec, encoded=False):
    dtype = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec["dtype"]]
    if encoded:
        dtype = tf.int64 if spec["kind"] == CATEGORICAL else tf.float32
    return input_spec(spec["name"], dtype)


@dataclass
class _Seen:
    """Each known user's seen items, as the graph stores them: the catalog positions of
    user ``users[i]`` (its encoded id) are ``positions[indptr[i]:indptr[i + 1]]``."""

    users: np.ndarray
    indptr: np.ndarray
    positions: np.ndarray


class _Retrieval(tf.Module):
    """The exported module: features (+ excluded ids) -> top-k ids and scores, each
    user's seen items (when stored) excluded too."""

    def __init__(self, model, specs, artifacts, top_k, item_ids, k, seen=None):
        super().__init__(name="retrieval")
        self.tower = model.query_tower
        self.tower_variables = list(model.query_tower.variables)
        self.specs = specs
        self._transforms = artifacts.continuous  # plain Python: traced into constants, nothing to save
        self.k = int(k)
        self.top_k = top_k
        self.num_candidates = int(len(item_ids))
        # queries per top-k call: a [rows, block] score matrix within the top-k engine's budget
        self.chunk_rows = int(min(max(CHUNK_BYTES // (4 * min(self.num_candidates, 2**17)), 256), 8192))
        self.user_id = model.query_id_column
        self.tables = {}
        for spec in specs:
            if spec["vocabulary"]:
                vocab = artifacts.vocabularies[spec["name"]]
                self.tables[spec["name"]] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.values.astype(str)),
                                                        tf.constant(vocab.codes, tf.int64)),
                    default_value=tf.constant(int(vocab.oov), tf.int64))
        strings = item_ids.dtype.kind in "USO"
        self.item_dtype = tf.string if strings else tf.int64
        keys = tf.constant(item_ids.astype(str) if strings else item_ids.astype(np.int64))
        self.item_ids = tf.Variable(keys, trainable=False, name="item_ids")
        self.item_positions = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(self.num_candidates, dtype=tf.int64)),
            default_value=tf.constant(-1, tf.int64))
        # What fills a slot when fewer than k items are left unexcluded.
        self.fill_id = tf.constant("" if strings else -1, self.item_dtype)
        # No user with seen items: nothing to look up (a lookup table cannot be empty).
        self.has_seen = seen is not None and len(seen.users) > 0
        if self.has_seen:
            # encoded user id -> its row of a ragged [users, seen items]; any other id -> the last row, empty
            self.seen_rows = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(seen.users, tf.int64),
                                                    tf.range(len(seen.users), dtype=tf.int64)),
                default_value=tf.constant(len(seen.users), tf.int64))
            self.seen_splits = tf.Variable(np.append(seen.indptr, seen.indptr[-1]).astype(np.int64),
                                           trainable=False, name="seen_splits")
            self.seen_positions = tf.Variable(seen.positions.astype(np.int32), trainable=False, name="seen_positions")

    def encode(self, features):
        """Raw features -> the model's inputs (vocabulary lookups, the ETL's continuous
        steps), behind the checks of their values."""
        out = {}
        for spec in self.specs:
            name = spec["name"]
            value = features[name]
            if spec["vocabulary"]:
                codes = self.tables[name].lookup(value)
                # list columns pad with "" -> the model's padding -1
                value = tf.where(value == "", tf.constant(PAD, tf.int64), codes) if spec["list"] else codes
            elif spec.get("transform") is not None:
                value = self._transforms[name](value)
            out[name] = value
        return self.checked(out)

    def checked(self, encoded):
        return _checked(encoded, self.specs)

    def embed(self, encoded):
        return _usable(tf.cast(self.tower(encoded, training=False), tf.float32), self.tower, self.specs)

    def seen(self, users):
        """[rows, most seen] catalog positions of the seen items of each encoded user id, -1 padded."""
        rows = self.seen_rows.lookup(tf.cast(users, tf.int64))
        table = tf.RaggedTensor.from_row_splits(self.seen_positions, self.seen_splits, validate=False)
        return tf.cast(tf.gather(table, rows).to_tensor(default_value=-1), tf.int64)

    def topk(self, encoded, excluded, k):
        """The top-k of the (checked) encoded rows, ``chunk_rows`` queries at a time, so that a
        batch of any size scores under the top-k engine's memory budget."""
        queries = self.embed(encoded)
        excluded_positions = self.item_positions.lookup(excluded)  # [B, M], -1 for padding / unknown
        users = tf.cast(encoded[self.user_id], tf.int64) if self.has_seen else tf.zeros([tf.shape(queries)[0]], tf.int64)
        total = tf.shape(queries)[0]
        chunks = tf.maximum((total + self.chunk_rows - 1) // self.chunk_rows, 1)  # an empty batch: one empty chunk

        def chunk(i, scores_out, positions_out):
            start = i * self.chunk_rows
            stop = tf.minimum(start + self.chunk_rows, total)
            drop = excluded_positions[start:stop]
            if self.has_seen:
                drop = tf.concat([drop, self.seen(users[start:stop])], axis=1)
            scores, positions = self.top_k(queries[start:stop], k, drop)
            return i + 1, scores_out.write(i, scores), positions_out.write(i, positions)

        arrays = (tf.TensorArray(tf.float32, size=chunks, infer_shape=False),
                  tf.TensorArray(tf.int64, size=chunks, infer_shape=False))
        _, scores, positions = tf.while_loop(lambda i, *_: i < chunks, chunk, (tf.constant(0), *arrays))
        shape = lambda x: tf.stack([tf.shape(x)[0], tf.shape(x)[1]])  # noqa: E731  (static rank 2)
        scores, positions = scores.concat(), positions.concat()
        scores, positions = tf.reshape(scores, shape(scores)), tf.reshape(positions, shape(positions))
        ids = tf.gather(self.item_ids, tf.maximum(positions, 0))
        # -1: an excluded slot, fewer than k items were left
        ids = tf.where(positions < 0, self.fill_id, ids)
        return {"scores": scores, "ids": ids}


def _checked(encoded, specs):
    """The encoded inputs behind the checks of their values: ids inside the schema's
    domains, continuous values finite (after the ETL's steps, when the graph applies them)."""
    checks = []
    for spec in specs:
        name = spec["name"]
        if spec["kind"] == CATEGORICAL and spec["range"] is not None:
            checks.append(domain_assertion(encoded[name], name, spec["range"][0], spec["range"][1], spec["list"]))
        elif spec["kind"] != CATEGORICAL:
            checks.append(finite_assertion(encoded[name], name, spec.get("transform")))
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in encoded.items()}


def _usable(queries, tower, specs):
    """The query tower's output behind `usable_query_assertion`."""
    continuous = [spec["name"] for spec in specs if spec["kind"] != CATEGORICAL]
    with tf.control_dependencies([usable_query_assertion(queries, unit_length(tower), continuous)]):
        return tf.identity(queries)


def _no_exclusions(batch, dtype):
    return tf.zeros([batch, 0], dtype) if dtype == tf.int64 else tf.fill([batch, 0], "")


def _named(impl, names):
    """``impl(*args)`` callable by keyword too: the restored ``loaded.recommend(user_id=...)``
    then checks each argument against its TensorSpec in Python and names the input that
    does not fit (the ``signatures`` map is TensorFlow's and numbers them instead)."""
    if all(str(name).isidentifier() for name in names):
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        impl.__signature__ = inspect.Signature([inspect.Parameter(name, kind) for name in names])
    return impl


def _signatures(module, specs):
    names = [spec["name"] for spec in specs]
    raw = [_tensor_spec(spec) for spec in specs]
    encoded = [_tensor_spec(spec, encoded=True) for spec in specs]
    excluded = input_spec("excluded", module.item_dtype)
    k_spec = input_spec("k", tf.int32)
    size = module.num_candidates

    def _recommend(*args):
        features, excluded_, k = gate(dict(zip(names, args[:-2])), specs, args[-2], args[-1], size)
        return module.topk(module.encode(features), excluded_, k)

    def _recommend_encoded(*args):
        features, excluded_, k = gate(dict(zip(names, args[:-2])), specs_encoded, args[-2], args[-1], size)
        return module.topk(module.checked(features), excluded_, k)

    specs_encoded = [dict(spec, dtype="int64" if spec["kind"] == CATEGORICAL else "float32") for spec in specs]
    recommend = tf.function(_named(_recommend, names + ["excluded", "k"]), input_signature=raw + [excluded, k_spec])
    recommend_encoded = tf.function(_named(_recommend_encoded, names + ["excluded", "k"]),
                                    input_signature=encoded + [excluded, k_spec])

    # The default k through `recommend`'s graph: a trace of its own of the
    # towers and the top-k costs about a sixth of an export's time.
    def _serving_default(*args):
        # rank 0 has no rows: the checks run first and name the input
        features, _, _ = gate(dict(zip(names, args)), specs)
        batch = tf.shape(features[names[0]])[0]
        top = recommend(*[features[name] for name in names], _no_exclusions(batch, module.item_dtype),
                        tf.constant(module.k))
        return {name: tf.ensure_shape(value, [None, module.k]) for name, value in top.items()}

    def _query_embedding(*args):
        features, _, _ = gate(dict(zip(names, args)), specs)
        return {"embedding": module.embed(module.encode(features))}

    serving_default = tf.function(_named(_serving_default, names), input_signature=raw)
    query_embedding = tf.function(_named(_query_embedding, names), input_signature=raw)
    module.recommend, module.recommend_encoded = recommend, recommend_encoded
    module.serving_default, module.query_embedding = serving_default, query_embedding
    # The functions, not concrete functions: a trace's key holds the save's options, so a
    # function traced before `tf.saved_model.save` is traced again inside it (for the
    # module's attributes) and written twice; traced by the save, once, and shared.
    return {"serving_default": serving_default, "recommend": recommend,
            "recommend_encoded": recommend_encoded, "query_embedding": query_embedding}


def _query_tower_module(model, specs):
    """The query tower alone on the model's (encoded) inputs."""
    module = tf.Module(name="query_tower")
    module.tower = model.query_tower
    module.tower_variables = list(model.query_tower.variables)
    names = [spec["name"] for spec in specs]

    encoded = [dict(spec, dtype="int64" if spec["kind"] == CATEGORICAL else "float32", transform=None)
               for spec in specs]

    def _serving_default(*args):
        features, _, _ = gate(dict(zip(names, args)), encoded)
        queries = tf.cast(module.tower(_checked(features, encoded), training=False), tf.float32)
        return {"embedding": _usable(queries, module.tower, specs)}

    serving_default = tf.function(_named(_serving_default, names),
                                  input_signature=[_tensor_spec(spec, encoded=True) for spec in specs])
    module.serving_default = serving_default
    return module, {"serving_default": serving_default}  # traced once, by the save (see `_signatures`)


def _check_replayable(model, artifacts):
    """Every continuous query column has fitted steps the graph can replay: a raw input
    must never reach the tower untransformed."""
    for name in model.query_tower.column_names:
        if columns.kind(model.schema[name]) == CATEGORICAL:
            continue
        if name not in artifacts.continuous:
            raise ValueError(
                f"export_serving: the query tower reads the continuous column {name!r}, which the ETL's artifacts "
                f"do not have (its continuous columns: {sorted(artifacts.continuous)}); export with the artifacts "
                "of the ETL the model's data came from")
        if artifacts.continuous[name].error is not None:
            raise ValueError(
                f"export_serving: the query tower reads {name!r}, but {artifacts.continuous[name].error}; leave it "
                "out of the query tower, or export without artifacts= and pass every input encoded")


def _check_oov_code_is_free(specs, artifacts):
    """A query column's vocabulary given by the caller may not give a raw value the code
    unknown values get: the graph would serve both as one user."""
    for spec in specs:
        if spec["vocabulary"]:
            vocab = artifacts.vocabularies[spec["name"]]
            taken = vocab.values[vocab.codes == vocab.oov]
            if len(taken):
                raise ValueError(
                    f"export_serving: the vocabulary of {spec['name']!r} gives {taken[0]!r} code {vocab.oov}, the "
                    "code of unknown values; leave that code free, or give Vocabulary(values, codes, oov=...)")


def _seen_items(model, exclude, catalog_ids, artifacts) -> _Seen:
    """Each user's items in ``exclude`` as catalog positions, keyed by the encoded user id
    the graph computes (the OOV id left out)."""
    uid = model.query_id_column
    exclude = as_exclusions(exclude, uid, model.candidate_id_column, "export_serving: exclude=")
    if uid not in model.query_tower.column_names:
        raise ValueError(
            f"export_serving: exclude= matches users by {uid!r}, which the query tower does not read (it reads "
            f"{model.query_tower.column_names}), so the graph has no user id to look seen items up by")
    users = exclude.users
    if len(users) and not np.issubdtype(np.asarray(users).dtype, np.integer):
        raise ValueError(
            f"export_serving: exclude= holds {np.asarray(users).dtype} user ids; seen items are keyed by the "
            "encoded (integer) user id, so pass the interactions as the model was fit on them")
    users = np.asarray(users, np.int64)
    if uid in artifacts.vocabularies:
        # Ids the vocabulary does not know are its OOV id: an unknown user has seen nothing.
        users = users[users != artifacts.vocabularies[uid].oov]
    indptr, positions = exclude.positions(users, catalog_ids)
    return _Seen(users, indptr, positions)


def _write_users(users, specs, model, artifacts, path: Path) -> None:
    """users.parquet: one row of query features per user, with the raw user id a client knows."""
    frame, source = read_frame(users, "export_serving: users=")
    names = [spec["name"] for spec in specs]
    require_columns(frame, names, source, "export_serving: users=")
    frame = frame[names]
    uid = model.query_id_column
    if uid in names:
        frame = frame.drop_duplicates(uid, keep="last")
        if uid in artifacts.vocabularies:
            vocabulary = artifacts.vocabularies[uid]
            known = vocabulary.has_value(frame[uid].to_numpy())
            if not known.all():
                # A code with no raw value (users training did not see, a missing id) is no user a client can
                # name; its row holds one such user's features, so a client asking for that code's text would
                # get them. Those users are answered as unknown users are.
                log.warning(f"export_serving: users= has {int((~known).sum())} id(s) with no raw value, code(s) "
                            f"{sorted(set(frame[uid].to_numpy()[~known].tolist()))}, the ETL's codes for a missing "
                            "id and for users training did not see; users.parquet leaves them out")
                frame = frame.loc[known]
            # How a client finds a user by the raw id it knows.
            frame = frame.assign(raw_user_id=vocabulary.decode(frame[uid].to_numpy()))
    frame.reset_index(drop=True).to_parquet(path / "users.parquet")


def _items_with_raw_ids(catalog, vocabulary, schema):
    """The catalog's rows whose item id has a raw value. The ETL's codes for a missing id and for items
    training did not see stand for no item a client can name, so they are not served (a warning counts them)."""
    known = vocabulary.has_value(catalog.ids)
    if known.all():
        return catalog
    if not known.any():
        raise ValueError(f"export_serving: no catalog item id has a raw value in the ETL's vocabulary of "
                         f"{catalog.id_column!r}; give the catalog as encoded by that ETL")
    log.warning(f"export_serving: {int((~known).sum())} catalog item(s) are not served, code(s) "
                f"{sorted(set(catalog.ids[~known].tolist()))}: the ETL's codes for a missing item id and for items "
                "training did not see, which no raw id names")
    counts = None if catalog.counts is None else catalog.counts[known]
    return Catalog(catalog.frame.loc[known], schema, counts)


def export_serving(model, catalog, path, k: int = 100, artifacts=None, users=None, exclude=None,
                   index: TopKIndex | None = None) -> Path:
    """Writes the retrieval SavedModel, the query tower and the candidate embeddings.

    Args:
        model: a trained `TwoTowerModelV2`.
        catalog: a `sr.data.Catalog` (or a table with one row per item); None
            when the candidate tower reads only the item id (every id of its domain).
        path: the directory to write (created).
        k: results of the default signature (``recommend`` takes k).
        artifacts: the ETL's output (its directory, what ``fit_transform``
            returned, or `sr.etl.Artifacts`), or a mapping of vocabularies: the
            signatures then take raw ids and raw continuous values and give raw
            item ids. None: the model's encoded inputs.
        users: one row of (encoded) query features per user, written to
            users.parquet for ``schemaretrieval recommend --user`` (the last
            row of a user wins).
        exclude: an `sr.data.Exclusions`, or interactions (encoded, as the
            model was fit on them; e.g. the training set), whose items every
            signature leaves out of the same user's results, besides the
            caller's ``excluded``: k results are still returned.
        index: the index whose ``graph_top_k()`` ranks the catalog in the graph
            (default `BruteForce`, exact).

    Returns:
        the path.

    Example: export with each user's training items left out, then ask the
    export for one user's top 5 and for an item's neighbours.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> from schemaretrieval.serving import client
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(train, epochs=1, verbose=0)
    >>> users = train.drop_duplicates("user_id")[["user_id", "user_age", "user_country"]]
    >>> catalog = sr.data.Catalog.from_interactions(train, schema)
    >>> path = export_serving(model, catalog, tempfile.mkdtemp(), k=5, users=users, exclude=train)
    >>> user = int(train["user_id"].iloc[0])
    >>> top = client.recommend_from_export(path, user, k=5)
    >>> len(top), set(train.loc[train["user_id"] == user, "item_id"]) & {item for item, _ in top}
    (5, set())
    >>> len(client.similar_items(path, top[0][0], k=3))
    3
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"export_serving: path {str(path)!r} is a file; expected a directory (new or existing)")
    if index is not None and not isinstance(index, TopKIndex):
        raise TypeError("export_serving: index must be None (exact) or a TopKIndex such as "
                        f"sr.serving.indexes.Faiss('hnsw'), got {index!r:.80}")
    if isinstance(artifacts, Mapping):  # vocabularies given by hand: a name the model lacks is a typo
        for column in artifacts:
            if column not in model.schema.column_names:
                raise ValueError(f"export_serving: artifacts has a vocabulary of{did_you_mean(column, model.schema.column_names)}, "
                                 f"a column the model does not read (it reads {', '.join(model.schema.column_names)})")
    artifacts = as_artifacts(artifacts)
    if artifacts.continuous:
        _check_replayable(model, artifacts)
    catalog = as_catalog(catalog, model.schema) if catalog is not None else model.default_catalog("export_serving")
    item_vocab = artifacts.vocabularies.get(model.candidate_id_column)
    if item_vocab is not None:
        catalog = _items_with_raw_ids(catalog, item_vocab, model.schema)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(catalog):
        raise ValueError(f"export_serving: k={k!r} must be in [1, the catalog size {len(catalog)}]")
    codes = catalog.ids.astype(np.int64)
    seen = None if exclude is None else _seen_items(model, exclude, codes, artifacts)
    if not model.built:
        # An untrained model's query tower would otherwise create its weights
        # inside a traced signature, where the SavedModel does not track them.
        model.build()
    embeddings = model.candidate_embeddings(catalog).astype(np.float32)
    item_ids = item_vocab.decode(codes).astype(str) if item_vocab is not None else codes
    index = (index or BruteForce()).index(embeddings, item_ids)
    top_k = index.graph_top_k()
    specs = feature_specs(model, artifacts)
    _check_oov_code_is_free(specs, artifacts)

    names = [spec["name"] for spec in specs]
    for spec in specs:
        spec["shape"] = expected_shape(spec)
    path.mkdir(parents=True, exist_ok=True)
    # Tracing and writing the graphs is most of an export's time; the stages
    # differ in length, so the progress names them and gives no estimate.
    with Progress(f"export of {len(catalog)} items", 3, unit="parts", eta=False) as progress:
        progress.update(0, note="the retrieval SavedModel")
        module = _Retrieval(model, specs, artifacts, top_k, item_ids, k, seen)
        tf.saved_model.save(module, str(path), signatures=_signatures(module, specs))
        progress.update(1, note="the query tower")
        tower, tower_signatures = _query_tower_module(model, specs)
        tf.saved_model.save(tower, str(path / "query_tower"), signatures=tower_signatures)
        progress.update(1, note="candidate embeddings and users")
        pd.DataFrame({"id": item_ids, "vector": list(embeddings)}).to_parquet(path / "candidate_embeddings.parquet")
        if users is not None:
            _write_users(users, specs, model, artifacts, path)
        progress.update(1)
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
        "index": index.describe(),
        # TensorFlow refuses an input of the wrong dtype before the graph runs, naming it
        # "input #i": the i-th of these (the signatures' inputs in sorted order)
        "input_order": {
            "serving_default": sorted(names), "query_embedding": sorted(names),
            "recommend": sorted(names + ["excluded", "k"]), "recommend_encoded": sorted(names + ["excluded", "k"]),
        },
    }
    (path / SERVING_FILE).write_text(json.dumps(meta, indent=2))
    return path
