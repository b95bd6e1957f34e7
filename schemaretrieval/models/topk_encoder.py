"""Merlin Models' top-k encoder: `TopKEncoder`, what ``model.to_top_k_encoder(candidates, k=)`` returns.

A ``keras.Model``: the trained query tower, then an exact top-k over the
candidates' embeddings (`sr.retrieval.topk.masked_top_k`, the library's one
top-k engine, the catalog in blocks). Called on a batch of query features
it returns Merlin's `TopKPrediction` (``scores``, ``identifiers``: the
candidates' ids). ``compile()`` then ``evaluate(loader)`` ranks the whole
catalog for each query (`sr.evaluation.compute_ranks`: ties counted
against the target, as `evaluate_topk`) and reports the compiled ranking
metrics, by default Merlin's recall, MRR, NDCG, MAP and precision at k.
``save(path)`` writes a ``.keras`` file or a TensorFlow SavedModel.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from schemaretrieval.arguments import integer
from schemaretrieval.data.loader import Loader, keras_input
from schemaretrieval.data.read import is_merlin_dataset, merlin_table, read_frame, require_columns
from schemaretrieval.evaluation.keras_metrics import TopkMetric, ranking_metrics
from schemaretrieval.evaluation.ranking import compute_ranks
from schemaretrieval.layers.encoder import Encoder, export_saved_model
from schemaretrieval.layers.encoder import index_column as index_column_of
from schemaretrieval.retrieval.topk import CHUNK_BYTES, embedding_scorer, masked_top_k

__all__ = ["TopKPrediction", "TopKEncoder"]


class TopKPrediction(NamedTuple):
    """Merlin's ``TopKPrediction``: the k best ``scores`` [B, k] and the candidates' ``identifiers`` [B, k].

    >>> TopKPrediction(np.array([[0.9]]), np.array([[7]])).identifiers.tolist()
    [[7]]
    """

    scores: object
    identifiers: object


def _merlin_candidates(given: dict, target, batch_size):
    """(embeddings, ids, target) from Merlin's constructor keywords: ``candidates`` an array or tensor
    [N, dim] (ids 0..N-1), or a ``merlin.io.Dataset`` / DataFrame of embeddings in columns "0", "1",
    ... indexed by id (what ``candidate_embeddings(..., index=)`` returns); with
    ``candidate_encoder``, a data set of raw candidate features that it embeds (ids: row numbers)."""
    if given.get("topk_layer", "brute-force-topk") != "brute-force-topk":
        raise NotImplementedError(f"TopKEncoder: topk_layer={given['topk_layer']!r} is not supported (only Merlin's "
                                  "'brute-force-topk': the library's exact top-k engine)")
    for name in ("pre", "post"):
        if given.get(name) is not None:
            raise NotImplementedError(f"TopKEncoder: {name}= is not supported; blocks go in the query Encoder")
    candidates = given.get("candidates")
    if candidates is None:
        raise ValueError("TopKEncoder: give candidates= (embeddings [N, dim], or a data set of them by id)")
    encoder = given.get("candidate_encoder")
    if encoder is not None:
        if not isinstance(encoder, Encoder):
            raise TypeError(f"TopKEncoder: candidate_encoder must be an Encoder, got {type(encoder).__name__}")
        return encoder.predict_table(read_frame(candidates, "TopKEncoder: candidates")[0], batch_size), None, target
    if is_merlin_dataset(candidates) or isinstance(candidates, pd.DataFrame):
        frame = candidates.to_ddf().compute() if is_merlin_dataset(candidates) else candidates  # the index: ids
        frame = frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()  # cudf's to the host
        dims = [str(i) for i in range(frame.shape[1])]
        if sorted(map(str, frame.columns)) != sorted(dims):
            raise ValueError(f"TopKEncoder: candidates= as a table holds embeddings in columns '0', '1', ... indexed "
                             f"by id (model.candidate_embeddings(data, index=Tags.ITEM_ID)), got columns "
                             f"{list(frame.columns)[:5]}")
        ids = frame.index.to_numpy()
        return frame[[c for c in dims]].to_numpy("float32"), ids, target or frame.index.name
    return np.asarray(candidates, "float32"), None, target


@keras.saving.register_keras_serializable(package="schemaretrieval")
class TopKEncoder(keras.Model):
    """The query tower and an exact top-k index of candidate embeddings (see the module docstring).

    Args:
        query_encoder: the trained query `Encoder`.
        candidate_embeddings: [num_candidates, dim] (a trained candidate tower's outputs).
        candidate_ids: the id of each candidate (default 0..num_candidates - 1).
        k: how many candidates to return (``compile(k=)`` changes it, as Merlin's).
        target: the column of a data set that holds each query's relevant item id (for `evaluate`).
        batch_size: rows per batch when `evaluate` reads a table or ``merlin.io.Dataset``.
        Merlin's keywords instead of the first two: ``topk_layer`` ("brute-force-topk"),
        ``candidates`` and ``candidate_encoder`` (`_merlin_candidates`).

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema("schemas/synthetic.yaml")
    >>> model = sr.TwoTowerModel(schema)
    >>> data = sr.data.synthetic(schema, 500, seed=0)
    >>> topk = model.to_top_k_encoder(sr.data.Catalog.from_interactions(data, schema).frame, k=5)
    >>> topk.compile()
    >>> sorted(topk.evaluate(data, return_dict=True, verbose=0))
    ['map_at_5', 'mrr_at_5', 'ndcg_at_5', 'precision_at_5', 'recall_at_5']
    >>> tuple(topk(sr.data.to_arrays(data.head(3), schema)).identifiers.shape)
    (3, 5)
    """

    def __init__(self, query_encoder: Encoder, candidate_embeddings=None, candidate_ids=None, k: int = 10,
                 target: str | None = None, batch_size: int = 4096, num_candidates: int | None = None,
                 dim: int | None = None, **kwargs):
        merlin = {name: kwargs.pop(name) for name in ("topk_layer", "candidates", "candidate_encoder", "pre", "post")
                  if name in kwargs}
        super().__init__(**kwargs)
        if not isinstance(query_encoder, Encoder):
            raise TypeError(f"TopKEncoder: query_encoder must be an Encoder, got {type(query_encoder).__name__}")
        if merlin:
            if candidate_embeddings is not None or candidate_ids is not None:
                raise ValueError("TopKEncoder: give candidate_embeddings (and candidate_ids), or Merlin's candidates=, "
                                 "not both")
            candidate_embeddings, candidate_ids, target = _merlin_candidates(merlin, target, batch_size)
        if candidate_embeddings is not None:
            candidate_embeddings = np.asarray(candidate_embeddings, dtype="float32")
            if candidate_embeddings.ndim != 2 or len(candidate_embeddings) == 0:
                raise ValueError(f"TopKEncoder: candidate_embeddings must be [num_candidates >= 1, dim], got shape "
                                 f"{candidate_embeddings.shape}")
            num_candidates, dim = candidate_embeddings.shape
        if num_candidates is None or dim is None:
            raise ValueError("TopKEncoder: give candidate_embeddings")
        ids = np.arange(num_candidates) if candidate_ids is None else np.asarray(candidate_ids)
        if ids.shape != (num_candidates,):
            raise ValueError(f"TopKEncoder: candidate_ids must hold one id per candidate ({num_candidates}), got "
                             f"shape {ids.shape}")
        self.num_candidates, self.dim = int(num_candidates), int(dim)
        self._check_k(k)
        self.query_encoder = query_encoder
        self.k = int(k)
        self.target = target
        self.batch_size = int(batch_size)
        self.candidates = self.add_weight(shape=(self.num_candidates, self.dim), trainable=False,
                                          initializer="zeros", name="candidates")
        self.identifiers = self.add_weight(shape=(self.num_candidates,), dtype="int64", trainable=False,
                                           initializer="zeros", name="identifiers")
        if candidate_embeddings is not None:
            self.candidates.assign(candidate_embeddings)
            self.identifiers.assign(ids.astype("int64"))
        # 256 queries at a time within the engine's memory budget.
        self.block = max(1, CHUNK_BYTES // (4 * 256))

    @classmethod
    def from_candidate_dataset(cls, query_encoder: Encoder, candidate_encoder: Encoder, dataset, top_k: int = 10,
                               index_column=None, **kwargs) -> "TopKEncoder":
        """Merlin's ``TopKEncoder.from_candidate_dataset``: ``candidate_encoder`` run over ``dataset`` (a
        ``merlin.io.Dataset`` or table of raw candidate features, one row per candidate) is the index
        that ``query_encoder`` queries, ``top_k`` best at a time.

        ``index_column`` (a column name, or Tags, ColumnSchema or Schema of the candidate tower's
        schema) holds the ids returned; None: each candidate's row number, as Merlin's. ``**kwargs``:
        the encoder's ``target`` and ``batch_size``; others are a TypeError.

        >>> from merlin.schema import ColumnSchema, Schema, Tags
        >>> s = Schema([ColumnSchema("item_id", tags=[Tags.ITEM_ID, Tags.CATEGORICAL], dtype="int64",
        ...     properties={"domain": {"min": 0, "max": 9}})])
        >>> tower = Encoder(s, keras.layers.Dense(2))
        >>> topk = TopKEncoder.from_candidate_dataset(tower, tower, pd.DataFrame({"item_id": [5, 9]}), 1, "item_id")
        >>> topk.k, topk.identifiers.numpy().tolist()
        (1, [5, 9])
        """
        unknown = set(kwargs) - {"target", "batch_size"}
        if unknown:
            raise TypeError(f"TopKEncoder.from_candidate_dataset: unexpected argument(s) {sorted(unknown)}")
        for name, encoder in (("query_encoder", query_encoder), ("candidate_encoder", candidate_encoder)):
            if not isinstance(encoder, Encoder):
                raise TypeError(f"TopKEncoder.from_candidate_dataset: {name} must be an Encoder, got "
                                f"{type(encoder).__name__}")
        batch_size = int(kwargs.get("batch_size", 4096))
        frame, source = read_frame(dataset, "TopKEncoder.from_candidate_dataset")
        name = None
        if index_column is not None:
            if isinstance(index_column, str) and index_column in frame.columns:
                name = index_column
            else:
                name = index_column_of(candidate_encoder.schema, index_column)
            require_columns(frame, [name], source, f"index_column={index_column!r}")
        embeddings = candidate_encoder.predict_table(frame, batch_size)
        ids = None if name is None else frame[name].to_numpy()
        return cls(query_encoder, embeddings, ids, k=top_k, target=kwargs.get("target", name), batch_size=batch_size)

    def _check_k(self, k):
        # Merlin's top_k fails on such a k inside the graph; cutting it to the catalog would
        # return fewer columns than asked, as the export and the baselines refuse to
        if integer(k, "TopKEncoder", "k") > self.num_candidates:
            raise ValueError(f"TopKEncoder: k={k} is more than the {self.num_candidates} candidates indexed")

    def call(self, features, training=False, k=None):
        """`TopKPrediction` of the ``k`` best candidates (default: the encoder's ``k``), as Merlin's."""
        queries = self.query_encoder(features, training=False)
        if k is None:
            k = self.k
        else:
            self._check_k(k)
            k = int(k)
        scores, positions = [], []
        for start in range(0, self.num_candidates, self.block):
            stop = min(start + self.block, self.num_candidates)
            block = tf.matmul(queries, self.candidates[start:stop], transpose_b=True)
            values, found = masked_top_k(block, min(k, stop - start), offset=start)
            scores.append(values)
            positions.append(found)
        if len(scores) > 1:
            values, which = tf.math.top_k(tf.concat(scores, 1), k=k)
            found = tf.gather(tf.concat(positions, 1), which, batch_dims=1)
        else:
            values, found = scores[0], positions[0]
        return TopKPrediction(values, tf.gather(self.identifiers, found))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, k: int | None = None, **kwargs):
        """Keras's, with Merlin's ``k=`` (the number of candidates returned); the metrics default to
        Merlin's five ranking metrics at k. A loss is a NotImplementedError: the encoder does not train."""
        if k is not None:
            self._check_k(k)
            self.k = int(k)
        if loss is not None:
            raise NotImplementedError("TopKEncoder.compile: loss= is not supported; the top-k encoder evaluates, "
                                      "it does not train")
        metrics = ranking_metrics([self.k]) if metrics is None else list(metrics)
        other = [m for m in metrics if not isinstance(m, TopkMetric)]
        if other:
            raise NotImplementedError(f"TopKEncoder.compile: only ranking metrics (sr.RecallAt, ...) are supported, "
                                      f"got {other}")
        # Kept out of Keras's tracking: compile may come after the encoder is built.
        self.__dict__["ranking"] = metrics
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        # The ranking metrics stay out of Keras's compile, whose config would save none: a loaded
        # encoder evaluated Merlin's five defaults instead of the metrics compiled.
        config = super().get_compile_config()
        if config is not None and self.__dict__.get("ranking") is not None:
            config["metrics"] = [keras.saving.serialize_keras_object(m) for m in self.__dict__["ranking"]]
        return config

    def compile_from_config(self, config):
        # Keras's own skips a model whose compile is overridden.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def predict(self, x, batch_size=None, **kwargs):
        """Keras's: the `TopKPrediction` of each query row, in order; ``x`` may be a `Loader`, a
        ``merlin.io.Dataset`` or a table too (batches of ``batch_size``, else the encoder's)."""
        x, batch_size = keras_input(x, self.query_encoder.reading_schema(), batch_size, "TopKEncoder.predict",
                                    self.batch_size)
        return TopKPrediction(*super().predict(x, batch_size=batch_size, **kwargs))

    def fit(self, *args, **kwargs):
        raise NotImplementedError("TopKEncoder: a top-k encoder is built from a trained model; it does not train")

    def _queries_and_targets(self, x):
        """(query embeddings [N, dim], target ids [N]) of a `Loader`, a tf.data.Dataset of
        (features, targets), or a table / ``merlin.io.Dataset`` with the target column."""
        if isinstance(x, Loader):
            x = x.to_tf_dataset()
        if isinstance(x, tf.data.Dataset):
            run = tf.function(lambda f: self.query_encoder(f, training=False), reduce_retracing=True)
            queries, targets = [], []
            for batch in x:
                if not isinstance(batch, tuple) or len(batch) < 2 or batch[1] is None:
                    raise ValueError("TopKEncoder.evaluate: batches need targets, e.g. "
                                     f"mm.Loader(data, batch_size).map(mm.ToTarget(schema, {self.target!r}))")
                features, target = batch[0], batch[1]
                if isinstance(target, dict):
                    target = target[self.target]
                queries.append(np.asarray(run(features), dtype="float32"))
                targets.append(np.asarray(target).reshape(-1))
            return np.concatenate(queries), np.concatenate(targets)
        if is_merlin_dataset(x):
            x = merlin_table(x)
        frame, source = read_frame(x, "TopKEncoder.evaluate")
        require_columns(frame, [self.target], source, "TopKEncoder.evaluate (the target)")
        return self.query_encoder.predict_table(frame, self.batch_size), frame[self.target].to_numpy()

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, **kwargs):
        """Ranks the whole catalog for each query of ``x`` and reports the compiled metrics
        (``{"recall_at_10": ...}`` with ``return_dict``, else their values in order). A target not
        among the candidates is a miss."""
        if y is not None or kwargs:
            raise TypeError(f"TopKEncoder.evaluate: unexpected argument(s) {sorted(kwargs) + (['y'] if y is not None else [])}")
        if getattr(self, "ranking", None) is None:
            self.compile()
        if batch_size is not None:
            self.batch_size = int(batch_size)
        queries, targets = self._queries_and_targets(x)
        ids = np.asarray(self.identifiers.numpy())
        index = pd.Index(ids)
        if not index.is_unique:
            raise ValueError("TopKEncoder.evaluate: the candidates' ids repeat; index unique items "
                             "(sr.unique_rows_by_features)")
        positions = index.get_indexer(targets)
        found = positions >= 0
        ranks = np.full(len(targets), np.inf)
        if found.any():
            scorer = embedding_scorer(queries[found], np.asarray(self.candidates.numpy()))
            ranks[found] = compute_ranks(scorer, positions[found])
        width = max(m.k for m in self.ranking)
        relevance = np.zeros((len(ranks), width), "float32")
        hit = ranks < width
        relevance[np.flatnonzero(hit), ranks[hit].astype(int)] = 1.0
        scores = np.tile(-np.arange(width, dtype="float32"), (len(ranks), 1))
        results = {}
        for metric in self.ranking:
            metric.reset_state()
            metric.pre_sorted, metric.label_relevant_counts = True, np.ones(len(ranks), "float32")
            metric.update_state(relevance, scores)
            results[metric.name] = float(metric.result())
        if verbose not in (0, "silent") and verbose:
            print(" - ".join(f"{name}: {value:.4f}" for name, value in results.items()))
        return results if return_dict else list(results.values())

    def save(self, filepath, overwrite: bool = True, **kwargs):
        """A ``.keras`` path: Keras's format; any other path: a TensorFlow SavedModel whose ``serve``
        takes the query features and returns (scores, identifiers)."""
        path = os.fspath(filepath)
        if path.endswith((".keras", ".h5")):
            return super().save(path, overwrite=overwrite, **kwargs)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"TopKEncoder.save: {path} exists and overwrite=False")
        export_saved_model(self, self.query_encoder.reading_schema(), path)

    def get_config(self):
        return {"name": self.name, "query_encoder": keras.saving.serialize_keras_object(self.query_encoder),
                "k": self.k, "target": self.target, "batch_size": self.batch_size,
                "num_candidates": self.num_candidates, "dim": self.dim}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["query_encoder"] = keras.saving.deserialize_keras_object(config["query_encoder"])
        return cls(**config)

    def get_build_config(self):
        return {"from": "schema"}

    def build_from_config(self, config):
        from schemaretrieval.data.batches import example_batch

        self(example_batch(self.query_encoder.reading_schema()))

    def candidate_frame(self) -> pd.DataFrame:
        """The index as Merlin's table of candidate embeddings, indexed by the candidates' ids."""
        from schemaretrieval.layers.encoder import embeddings_frame

        return embeddings_frame(self.candidates.numpy(), self.target or "id", self.identifiers.numpy())
