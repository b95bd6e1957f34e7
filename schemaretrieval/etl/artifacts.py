"""What the fitted ETL learned, written beside its output for training and serving to read.

    out_dir/artifacts/
      vocabularies/<column>.parquet   raw value (as text) -> encoded id, per Categorify'd column
      continuous.json                 each continuous column's fitted steps, in order, with train's statistics
      item_counts.parquet             encoded item id -> rows in train

``write_artifacts`` writes them from the fitted `workflow.WorkflowPlan`: the
ETL knows which ops it built for each column, so nothing parses the
NVTabular graph afterwards. ``read_artifacts(out_dir)`` gives them back as
`Artifacts`: a `Vocabulary` and a `ContinuousTransform` per column, which the
serving export turns into graph ops (raw ids and raw values in), and the item
counts, which samplers and the catalog read.

>>> import tempfile
>>> import schemaretrieval as sr
>>> ratings = sr.datasets.movielens("tests/fixtures/ml-100k")
>>> out = sr.etl.fit_transform(ratings, schema="schemas/movielens-100k.yaml", out_dir=tempfile.mkdtemp())
>>> artifacts = read_artifacts(out.out_dir)
>>> sorted(artifacts.vocabularies)
['item_genres', 'item_id', 'item_year', 'user_gender', 'user_id', 'user_occupation', 'user_zip']
>>> encoded = sr.data.read_table(out.train)
>>> bool((artifacts.vocabularies["user_id"].encode(ratings["user_id"]) == encoded["user_id"]).all())
True
>>> [step for step, _ in artifacts.continuous["user_age"].steps]
['fill_missing', 'normalize']
>>> age = artifacts.continuous["user_age"](ratings["user_age"].to_numpy())
>>> bool(np.allclose(age.numpy(), encoded["user_age"]))
True
>>> int(artifacts.item_counts.sum()) == len(encoded)
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from merlin.schema import Tags

from schemaretrieval.etl.options import CONTINUOUS_STEPS, is_derived
from schemaretrieval.schema.columns import NULL_INDEX, OOV_INDEX

__all__ = ["ARTIFACTS_DIR", "Vocabulary", "ContinuousTransform", "Artifacts", "write_artifacts",
           "read_artifacts", "as_artifacts"]

#: The artifacts' directory inside an ETL output directory.
ARTIFACTS_DIR = "artifacts"
_VOCABULARIES = "vocabularies"
_CONTINUOUS = "continuous.json"
_ITEM_COUNTS = "item_counts.parquet"


@dataclass
class Vocabulary:
    """Raw values of one column and the ids the model was trained on.

    ``values[i]`` (compared as strings) encodes to ``codes[i]``; anything else
    to ``oov``.

    >>> vocab = Vocabulary(values=["u7", "u9"], codes=[3, 4])
    >>> vocab.encode(["u9", "u7", "new"]).tolist()
    [4, 3, 2]
    >>> vocab.decode([3, 4]).tolist()
    ['u7', 'u9']
    >>> vocab.has_value([3, 2]).tolist()
    [True, False]
    """

    values: np.ndarray
    codes: np.ndarray
    oov: int = OOV_INDEX

    def __post_init__(self):
        self.values = np.asarray([str(v) for v in np.asarray(self.values).ravel()], dtype=object)
        self.codes = np.asarray(self.codes, np.int64).ravel()
        if len(self.values) != len(self.codes):
            raise ValueError(f"Vocabulary: {len(self.values)} values but {len(self.codes)} codes")

    def encode(self, raw) -> np.ndarray:
        index = pd.Index(self.values).get_indexer(np.asarray([str(v) for v in np.asarray(raw).ravel()], object))
        return np.where(index >= 0, self.codes[np.maximum(index, 0)], self.oov)

    def has_value(self, codes) -> np.ndarray:
        """Whether each code has a raw value: the null and unknown-value codes stand for none."""
        return np.isin(np.asarray(codes, np.int64).ravel(), self.codes)

    def decode(self, codes) -> np.ndarray:
        """Raw value (string) of each code. A code without one (the null or the unknown-value code) is an
        error naming it: its own text would pass for a raw id, another user's or item's."""
        codes = np.asarray(codes, np.int64).ravel()
        known = self.has_value(codes)
        if not known.all():
            missing = sorted(set(codes[~known].tolist()))
            raise ValueError(f"Vocabulary.decode: code(s) {missing[:5]} have no raw value ({NULL_INDEX} is a missing "
                             f"value, {self.oov} a value training did not see); {int((~known).sum())} of {codes.size} "
                             "codes")
        lookup = dict(zip(self.codes.tolist(), self.values.tolist()))
        return np.asarray([lookup[c] for c in codes.tolist()], dtype=object)


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
                raise ValueError(f"{self.column}: unknown continuous step {step!r}; expected one of "
                                 f"{', '.join(CONTINUOUS_STEPS)}")
        return tf.cast(x, tf.float32)


@dataclass
class Artifacts:
    """What serving and training read of an ETL: vocabularies, continuous steps, item counts.

    >>> Artifacts(vocabularies={"user_id": Vocabulary(["u7"], [3])}).vocabularies["user_id"].encode(["u7"]).tolist()
    [3]
    """

    vocabularies: dict = field(default_factory=dict)
    continuous: dict = field(default_factory=dict)
    item_counts: np.ndarray | None = None


def _vocabulary(column, op) -> Vocabulary:
    """The raw value -> id map of a fitted Categorify op, computed by the op itself on its uniques."""
    from merlin.dag import ColumnSelector

    uniques = pd.read_parquet(op.categories[column])
    name = column if column in uniques.columns else uniques.columns[0]
    values = uniques[name].dropna()
    encoded = op.transform(ColumnSelector([column]), pd.DataFrame({column: values.to_numpy()}))
    codes = encoded[column]
    codes = codes.to_numpy() if hasattr(codes, "to_numpy") else np.asarray(codes)
    return Vocabulary(values.to_numpy(), codes, oov=OOV_INDEX)


def _fitted_steps(column, steps) -> list:
    """``(step, arguments)`` with the statistics a fitted op learned on train."""
    from nvtabular import ops as nvt_ops

    out = []
    for step, arg, op in steps:
        if step == "fill_missing":
            value = op.medians[column] if isinstance(op, nvt_ops.FillMedian) else op.fill_val
            out.append(("fill_missing", {"value": float(value)}))
        elif step == "clip":
            out.append(("clip", {"min": None if arg.get("min") is None else float(arg["min"]),
                                 "max": None if arg.get("max") is None else float(arg["max"])}))
        elif step == "log":
            out.append(("log", {}))
        elif step == "normalize":
            out.append(("normalize", {"mean": float(op.means[column]), "std": float(op.stds[column])}))
        else:  # normalize_minmax
            out.append(("normalize_minmax", {"min": float(op.mins[column]), "max": float(op.maxs[column])}))
    return out


def write_artifacts(plan, schema, out_dir, item_counts=None) -> Path:
    """Writes what the fitted ``plan`` learned to ``out_dir/artifacts``; returns that directory.

    ``schema`` is the processed schema (`workflow.output_schema`): its time
    features' continuous columns are recorded as not replayable from a raw
    input (the SavedModel replays a column's own steps only). The module's
    example reads what ``sr.etl.fit_transform`` wrote with it.

    >>> write_artifacts.__name__
    'write_artifacts'
    """
    root = Path(out_dir) / ARTIFACTS_DIR
    vocab_dir = root / _VOCABULARIES
    vocab_dir.mkdir(parents=True, exist_ok=True)
    for old in vocab_dir.glob("*.parquet"):
        old.unlink()
    for column, op in plan.categorify.items():
        vocab = _vocabulary(column, op)
        pd.DataFrame({"value": vocab.values.astype(str), "code": vocab.codes}).to_parquet(
            vocab_dir / f"{column}.parquet", index=False)
    continuous = {column: {"steps": [[step, args] for step, args in _fitted_steps(column, steps)]}
                  for column, steps in plan.continuous.items()}
    for col in schema:
        if is_derived(col) and Tags.CONTINUOUS in col.tags:
            source = col.properties["derived_from"]["column"]
            continuous[col.name] = {"error": f"the ETL computes it from {source!r} (a time feature); the "
                                             "SavedModel replays a continuous column's own steps only"}
    (root / _CONTINUOUS).write_text(json.dumps(continuous, indent=1))
    if item_counts is not None:
        counts = np.asarray(item_counts, np.int64)
        pd.DataFrame({"id": np.arange(len(counts), dtype=np.int64), "count": counts}).to_parquet(
            root / _ITEM_COUNTS, index=False)
    return root


def read_artifacts(path) -> Artifacts:
    """The `Artifacts` of an ETL output directory (or of its ``artifacts/``; see the module's example).

    >>> read_artifacts("no/such/etl")
    Traceback (most recent call last):
    ...
    FileNotFoundError: 'no/such/etl' holds no ETL artifacts (no artifacts/continuous.json); write them with sr.etl.fit_transform or `schemaretrieval etl`
    """
    root = Path(path)
    if (root / ARTIFACTS_DIR).is_dir():
        root = root / ARTIFACTS_DIR
    if not (root / _CONTINUOUS).is_file():
        raise FileNotFoundError(f"{str(path)!r} holds no ETL artifacts (no {ARTIFACTS_DIR}/{_CONTINUOUS}); "
                                "write them with sr.etl.fit_transform or `schemaretrieval etl`")
    vocabularies = {}
    for file in sorted((root / _VOCABULARIES).glob("*.parquet")):
        table = pd.read_parquet(file)
        vocabularies[file.stem] = Vocabulary(table["value"].to_numpy(), table["code"].to_numpy())
    continuous = {}
    for column, entry in json.loads((root / _CONTINUOUS).read_text()).items():
        continuous[column] = ContinuousTransform(column, tuple((step, args) for step, args in entry.get("steps", ())),
                                                 entry.get("error"))
    counts = None
    if (root / _ITEM_COUNTS).is_file():
        table = pd.read_parquet(root / _ITEM_COUNTS)
        counts = np.zeros(int(table["id"].max()) + 1 if len(table) else 0, np.int64)
        counts[table["id"].to_numpy()] = table["count"].to_numpy()
    return Artifacts(vocabularies, continuous, counts)


def as_artifacts(source) -> Artifacts:
    """``source`` as `Artifacts`: None gives empty ones, `Artifacts` pass, an ETL output (its
    directory, or what ``fit_transform`` returned) is read, and a mapping ``{column:
    Vocabulary | {raw: code} | [raw, ...]}`` gives vocabularies alone (a list maps
    ``raw -> position``).

    >>> as_artifacts({"user_id": {"u7": 3, "u9": 4}}).vocabularies["user_id"].encode(["u9", "new"]).tolist()
    [4, 2]
    >>> as_artifacts(None).vocabularies
    {}
    """
    if source is None:
        return Artifacts()
    if isinstance(source, Artifacts):
        return source
    if isinstance(source, Mapping):
        out = {}
        for column, vocab in source.items():
            if isinstance(vocab, Vocabulary):
                out[column] = vocab
            elif isinstance(vocab, Mapping):
                out[column] = Vocabulary(list(vocab.keys()), list(vocab.values()))
            else:
                vocab = list(vocab)
                out[column] = Vocabulary(vocab, np.arange(len(vocab)))
        return Artifacts(vocabularies=out)
    source = getattr(source, "out_dir", source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError("artifacts must be None, an ETL output (its directory, or what fit_transform returned), "
                        f"sr.etl.Artifacts or a mapping {{column: vocabulary}}, got {type(source).__name__} {source!r:.80}")
    return read_artifacts(source)
