"""MovieLens-100K as TFRS's tutorials read it from TensorFlow Datasets, but
generated: ``load("movielens/100k-ratings")`` and ``load("movielens/100k-movies")``.

TFRS's tutorials start with ``tfds.load("movielens/100k-ratings",
split="train")``, which downloads the data. Here the rows come from
`schemaretrieval.data.movielens_like` (a MovieLens-100K-shaped generator:
943 users, 1682 movies, 100,000 ratings, ML-100K's marginals) and take
tfds's feature names, types and string ids, so a tutorial runs with::

    import schemaretrieval.tfrs.datasets as tfds   # was: import tensorflow_datasets as tfds

It is not MovieLens: the titles are made up (``"Movie 0042 (1995)"``) and
figures trained on it are not MovieLens figures. tfds's ``raw_user_age``,
``timestamp`` and ``user_zip_code`` have no generated counterpart and are
absent; ``bucketized_user_age`` holds the lower bound of the age bucket
(1, 18, 25, 35, 45, 50, 56, as in tfds); ``user_gender`` is True for men (as
in tfds); ``movie_genres`` are indexes into
`schemaretrieval.data.movielens_like.GENRES`.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from schemaretrieval.data.movielens_like import OCCUPATIONS, movielens_like

__all__ = ["load", "NAMES", "AGE_LOWER_BOUNDS"]

NAMES = ("movielens/100k-ratings", "movielens/100k-movies")
AGE_LOWER_BOUNDS = (1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0)


@functools.lru_cache(maxsize=4)
def _generated(seed):
    frame, _ = movielens_like(seed=seed)
    movies = frame.drop_duplicates("item_id").sort_values("item_id")
    titles = {i: f"Movie {i:04d} ({y})" for i, y in zip(movies["item_id"].tolist(), movies["item_year"].tolist())}
    return frame, movies, titles


def _strings(values):
    return np.array([str(v).encode() for v in values], dtype=object)


def load(name: str, split: str = "train", seed: int = 0) -> tf.data.Dataset:
    """The generated data set ``name`` (one of `NAMES`) as a `tf.data.Dataset`
    of feature dicts, in tfds's layout. ``split`` must be "train" (MovieLens
    has no other split in tfds); ``seed`` picks the generated data.

    >>> ratings = load("movielens/100k-ratings", split="train")
    >>> sorted(ratings.element_spec)[:5]
    ['bucketized_user_age', 'movie_genres', 'movie_id', 'movie_title', 'user_gender']
    >>> next(iter(load("movielens/100k-movies")))["movie_title"].numpy()
    b'Movie 0000 (1998)'
    >>> int(ratings.cardinality())
    100000
    """
    if name not in NAMES:
        raise ValueError(f"load: name must be one of {NAMES}, got {name!r}")
    if split != "train":
        raise ValueError(f"load: MovieLens has the one split 'train' (as in tfds), got split={split!r}")
    frame, movies, titles = _generated(int(seed))
    genres = lambda column: tf.ragged.constant([g.tolist() for g in column], dtype=tf.int64)  # noqa: E731
    if name == "movielens/100k-movies":
        return tf.data.Dataset.from_tensor_slices({
            "movie_genres": genres(movies["item_genres"]),
            "movie_id": _strings(movies["item_id"]),
            "movie_title": _strings(titles[i] for i in movies["item_id"].tolist()),
        })
    occupation = frame["user_occupation"].to_numpy()
    return tf.data.Dataset.from_tensor_slices({
        "bucketized_user_age": np.asarray(AGE_LOWER_BOUNDS, np.float32)[frame["user_age_bucket"].to_numpy()],
        "movie_genres": genres(frame["item_genres"]),
        "movie_id": _strings(frame["item_id"]),
        "movie_title": _strings(titles[i] for i in frame["item_id"].tolist()),
        "user_gender": frame["user_gender"].to_numpy() == 0,
        "user_id": _strings(frame["user_id"]),
        "user_occupation_label": occupation.astype(np.int64),
        "user_occupation_text": _strings(OCCUPATIONS[i] for i in occupation.tolist()),
        "user_rating": frame["rating"].to_numpy(np.float32),
    })
