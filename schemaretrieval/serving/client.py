"""Reading an export: `load_serving`, and the CLI's `recommend_from_export` and `similar_items`.

``recommend --user u42`` looks the user up in the export's users.parquet by
the raw id (or the encoded one without a vocabulary) and asks the
``recommend_encoded`` signature with the stored features; a user the export
has no row for is asked, with a vocabulary, as the raw id with default
features (the OOV user), and is an error naming the valid range without one.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from schemaretrieval.serving.export import SERVING_FILE
from schemaretrieval.serving.indexes import BruteForce

__all__ = ["load_serving", "recommend_from_export", "similar_items"]

INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


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
    >>> export = sr.serving.export_serving(model, sr.data.Catalog.from_interactions(train, schema), tempfile.mkdtemp(), k=5)
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


def _default_value(spec):
    """What the raw signature gets for a feature of a user the export has no row for."""
    if spec["kind"] != "categorical":
        # missing (NaN) where the graph fills it like the ETL, else 0
        steps = [step for step, _ in spec.get("transform") or []]
        return [float("nan")] if "fill_missing" in steps else [0.0]
    if spec["vocabulary"]:
        return [[""]] if spec["list"] else [""]  # not in the vocabulary: OOV
    low = spec["range"][0] if spec["range"] else 0
    return [[-1]] if spec["list"] else [low]


def _as_input(spec, value, encoded=False):
    dtype = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec["dtype"]]
    if encoded:
        dtype = tf.int64 if spec["kind"] == "categorical" else tf.float32
    if dtype == tf.string:
        value = np.asarray(value, dtype=object).astype(str)
    return tf.constant(value, dtype)


def _user_row(path, meta, user):
    """The users.parquet row of ``user`` (by the raw id when the export has one), or None."""
    uid = meta["user_id"]
    if not (meta.get("users") and (path / "users.parquet").exists() and uid is not None):
        return None
    users = pd.read_parquet(path / "users.parquet")
    if "raw_user_id" in users.columns:  # a raw id is its text, as the vocabulary reads it: "03" is not "3"
        match = users[users["raw_user_id"].astype(str).to_numpy() == str(user)]
    else:  # an encoded id is a number, as the SavedModel reads it: "03", " 3" and 3 are one user
        try:
            code = int(user)
        except ValueError:
            return None
        match = users[users[uid].to_numpy() == code]
    return None if match.empty else match.iloc[-1:]  # a frame: each column keeps its dtype


def _one_id(value, what):
    """``value`` if it is one id: an int, or a str (a raw id, or the CLI's text of an int)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
        raise ValueError(f"{what}: expected one {what} id, an int or a str (a raw id), got {value!r}")
    return _utf8(value, what)


def _utf8(value, what):
    """A str the SavedModel's string inputs can hold: bytes of another encoding reach a command's
    arguments as surrogates, which TensorFlow refuses naming no input."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what}: {value!r} is not UTF-8 text; raw ids are") from None
    return value


def _checked_k(k, size, what):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= size:
        raise ValueError(f"k={k!r} must be an int in [1, {what}]")
    return int(k)


def _excluded_ids(exclude, string_ids):
    """The caller's excluded item ids as the export's id type: strings, or int64 ids (ints, or the
    CLI's text of them); anything else is an error naming the id."""
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise ValueError(f"exclude: expected a list of item ids, got {exclude!r}")
    ids = []
    for item in exclude:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (str, int, np.integer)):
            raise ValueError(f"exclude: expected item ids (int or str), got {item!r}")
        if string_ids:
            ids.append(_utf8(str(item), "exclude"))
            continue
        text = str(item).strip()
        if not text.lstrip("+-").isdigit():
            raise ValueError(f"exclude: this export's item ids are integers; got {item!r}")
        if not INT64_MIN <= int(text) <= INT64_MAX:
            raise ValueError(f"exclude: item id {item!r} is outside int64, the export's item id type")
        ids.append(int(text))
    return ids


def recommend_from_export(path, user, k: int = 10, exclude=()):
    """Top-k [(item id, score)] for one user id through an exported SavedModel.

    The user's query features come from the export's users.parquet (found by
    the raw id when the export has the ETL's vocabulary). An id it has no row
    for: with a vocabulary for the user id, a new user (the OOV id if the ETL
    never saw it) whose other features take defaults, with a warning naming
    them; without one, an error (an id outside the schema's domain names the
    valid range). A query tower that reads more than the user id needs an
    export with ``users=``: without users.parquet it is an error.

    ``exclude`` is left out besides the seen items the export stores (see
    `export.export_serving`); when fewer than k items are left, fewer are returned.

    Example: the export answers what `recommend` answers in Python.

    >>> import tempfile
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> train = sr.data.synthetic(schema, 2000, seed=0)
    >>> model = sr.TwoTowerModel(schema)  # untrained, to keep the example quick; any model exports
    >>> users = train.drop_duplicates("user_id")[["user_id", "user_age", "user_country"]]
    >>> catalog = sr.data.Catalog.from_interactions(train, schema)
    >>> path = sr.serving.export_serving(model, catalog, tempfile.mkdtemp(), k=5, users=users)
    >>> user = int(users["user_id"].iloc[0])
    >>> top = recommend_from_export(path, user, k=5)
    >>> scores, ids = sr.serving.recommend(model, users.head(1), k=5, catalog=catalog)
    >>> [item for item, _ in top] == ids[0].tolist(), np.allclose([score for _, score in top], scores[0], atol=1e-5)
    (True, True)
    >>> recommend_from_export(path, user, k=4, exclude=[top[0][0]]) == top[1:]
    True
    >>> recommend_from_export(path, 5000)
    Traceback (most recent call last):
    ...
    ValueError: unknown user id 5000: user_id takes ids in [0, 1999] (the model's domain)
    """
    user = _one_id(user, "user")
    meta, path = _meta(path)
    k = _checked_k(k, meta["catalog_size"], f"the catalog size {meta['catalog_size']}")
    string_ids = meta["item_ids"] == "string"
    exclude = _excluded_ids(exclude, string_ids)
    specs = {spec["name"]: spec for spec in meta["features"]}
    uid = meta["user_id"]
    row = _user_row(path, meta, user)
    others = [name for name in specs if name != uid]
    if row is None and others and not meta.get("users"):
        raise ValueError(f"user {user!r}: the query tower also reads {others}, and the export has no users.parquet "
                         "to read them from; export with users= (export_serving(..., users=train)), or call the "
                         "SavedModel with every feature (docs/serving.md)")
    # with the ETL's vocabulary an id users.parquet lacks is a new user: the OOV id, default features
    oov_user = row is None and uid in specs and bool(specs[uid]["vocabulary"])
    if oov_user and others:
        warnings.warn(f"user {user!r} has no row in {path / 'users.parquet'}: {others} take default values "
                      "(and a user id the ETL never saw is the OOV user)", stacklevel=2)
    inputs = {}
    signature = "recommend_encoded" if row is not None else "recommend"
    for name, spec in specs.items():
        if row is not None:
            value = row[name].to_numpy()
            inputs[name] = _as_input(spec, [list(value[0])] if spec["list"] else value, encoded=True)
        elif name == uid:
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
        elif oov_user:
            inputs[name] = _as_input(spec, _default_value(spec))
        else:
            raise ValueError(f"user {user!r} has no row in {path / 'users.parquet'}; the query tower also needs {name!r}")
    dtype = tf.string if string_ids else tf.int64
    excluded = tf.constant([exclude], dtype) if exclude else tf.zeros([1, 0], dtype)
    out = _saved_model(path).signatures[signature](**inputs, excluded=excluded, k=tf.constant(int(k), tf.int32))
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
    >>> path = sr.serving.export_serving(model, sr.data.Catalog.from_interactions(train, schema), tempfile.mkdtemp(), k=5)
    >>> item = int(train["item_id"].iloc[0])
    >>> neighbours = similar_items(path, item, k=3)
    >>> len(neighbours), item in [other for other, _ in neighbours], neighbours[0][1] >= neighbours[-1][1]
    (3, False, True)
    """
    item = _one_id(item, "item")
    _, path = _meta(path)
    table = pd.read_parquet(path / "candidate_embeddings.parquet")
    ids = table["id"].to_numpy()
    match = np.nonzero(table["id"].astype(str).to_numpy() == str(item))[0]
    if not len(match):
        raise ValueError(
            f"unknown item id {item!r}: not among the {len(ids)} items of {path / 'candidate_embeddings.parquet'} "
            f"(e.g. {ids[0]!r} .. {ids[-1]!r})"
        )
    k = _checked_k(k, len(ids) - 1, f"the catalog size {len(ids)} - 1 (the item itself is left out)")
    vectors = np.stack(table["vector"].to_numpy()).astype(np.float32)
    scores, found = BruteForce().index(vectors, ids).search(vectors[match[:1]], k, exclude=[[ids[match[0]]]])
    return list(zip(found[0].tolist(), scores[0].tolist()))


def _saved_model(path: Path):
    """The export's SavedModel, loaded once per process while its saved_model.pb is unchanged:
    a loop of `recommend_from_export` calls pays TensorFlow's load (seconds) once."""
    return _load_saved_model(str(path.resolve()), (path / "saved_model.pb").stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_saved_model(path: str, _modified: int):
    return tf.saved_model.load(path)


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
