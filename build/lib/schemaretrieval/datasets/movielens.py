"""MovieLens from an unpacked GroupLens folder, in its own formats.

Nothing here downloads: point ``movielens`` at an unpacked GroupLens folder.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from schemaretrieval.schemas import schema_path

__all__ = ["movielens", "MOVIELENS_VARIANTS", "ML_100K_GENRES", "movielens_schema_path", "guess_variant"]

MOVIELENS_VARIANTS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-latest", "ml-20m", "ml-25m", "ml-32m")
#: The 19 genre flags of ml-100k's u.item, in column order (as u.genre lists them).
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def movielens_schema_path(variant: str) -> Path:
    """The bundled YAML schema of a MovieLens variant (schemas/movielens-*.yaml).

    It names the columns `movielens` returns for that variant:

    >>> movielens_schema_path("ml-1m").name, movielens_schema_path("ml-25m").name
    ('movielens-1m.yaml', 'movielens-latest.yaml')
    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema(movielens_schema_path("ml-100k"))
    >>> set(schema.column_names) <= set(movielens("tests/fixtures/ml-100k").columns)
    True
    """
    if variant not in MOVIELENS_VARIANTS:
        raise ValueError(f"movielens_schema_path: unknown variant {variant!r}; expected one of "
                         f"{', '.join(MOVIELENS_VARIANTS)}")
    name = {"ml-100k": "movielens-100k", "ml-1m": "movielens-1m"}.get(variant, "movielens-latest")
    return schema_path(name)


def movielens(path, variant: str | None = None) -> pd.DataFrame:
    """One row per rating, joined with user and item features, from a GroupLens folder.

    Columns: ``user_id``, ``item_id``, ``rating`` (float32), ``timestamp``
    (int64, seconds), ``item_title`` (str), ``item_genres`` (list of str),
    ``item_year`` (float, NaN when the title/date has none), and where the
    variant has users: ``user_age``, ``user_gender``, ``user_occupation``,
    ``user_zip``. Rows keep the file's order. Ids stay raw (the ETL encodes them).

    Args:
        path: the unpacked folder (``ml-100k/``, ``ml-1m/``, ``ml-latest-small/``, ...).
        variant: one of ``MOVIELENS_VARIANTS``; default: the folder's name, else
            guessed from the files it holds.

    Files read: ml-100k ``u.data`` (tab-separated), ``u.item`` (latin-1, ``|``,
    19 genre flags), ``u.user`` (``|``); ml-1m ``ratings.dat``, ``movies.dat``
    (latin-1), ``users.dat``, all ``::``-separated; ml-latest(-small), ml-20m,
    ml-25m, ml-32m ``ratings.csv`` and ``movies.csv`` (utf-8, titles like
    "Heat (1995)", genres "A|B", "(no genres listed)" for none).

    Example (a tiny ml-100k folder: 48 ratings of 8 users):

    >>> ratings = movielens("tests/fixtures/ml-100k")
    >>> len(ratings), str(ratings["rating"].dtype)
    (48, 'float32')
    >>> ratings.loc[2, ["user_id", "item_id", "rating", "item_title", "item_genres", "item_year"]].tolist()
    [1, 4, 5.0, 'Heat (1995)', ['Action', 'Crime', 'Thriller'], 1995.0]
    >>> ratings.loc[ratings["user_id"] == 8, "user_zip"].iloc[0]  # raw strings: the zero is kept
    '05201'
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"movielens: {str(path)!r} is not a directory")
    variant = variant or guess_variant(path)
    if variant not in MOVIELENS_VARIANTS:
        raise ValueError(f"movielens: unknown variant {variant!r}; expected one of {', '.join(MOVIELENS_VARIANTS)}")
    if variant == "ml-100k":
        ratings, items, users = _ml_100k(path)
    elif variant == "ml-1m":
        ratings, items, users = _ml_1m(path)
    else:
        ratings, items, users = _ml_latest(path)
    if len(ratings) == 0:
        raise ValueError(f"movielens: {str(path)!r} holds no ratings")
    frame = ratings.merge(items, on="item_id", how="left", validate="many_to_one", sort=False)
    if users is not None:
        frame = frame.merge(users, on="user_id", how="left", validate="many_to_one", sort=False)
    unknown = frame["item_title"].isna()
    if unknown.any():
        raise ValueError(f"movielens: {int(unknown.sum())} rating(s) name items missing from the item file "
                         f"(first item id {frame.loc[unknown, 'item_id'].iloc[0]!r})")
    frame["item_genres"] = frame["item_genres"].map(list)
    return frame.reset_index(drop=True)


def _need(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"movielens: {str(file)!r} is missing")
    return file


def guess_variant(path) -> str:
    """The MovieLens variant of a GroupLens folder: its name, else the files it holds.

    >>> guess_variant("tests/fixtures/ml-100k")
    'ml-100k'
    """
    path = Path(path)
    if path.name in MOVIELENS_VARIANTS:
        return path.name
    if (path / "u.data").is_file():
        return "ml-100k"
    if (path / "ratings.dat").is_file():
        return "ml-1m"
    if (path / "ratings.csv").is_file():
        return "ml-latest-small"
    raise ValueError(f"movielens: cannot tell the variant of {str(path)!r} (no u.data, ratings.dat or "
                     "ratings.csv); pass variant=")


def _year_from_title(titles: pd.Series) -> pd.Series:
    return titles.str.extract(_YEAR, expand=False).astype("float64")


def _ratings(frame):
    frame["rating"] = frame["rating"].astype("float32")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    return frame


def _ml_100k(path: Path):
    ratings = pd.read_csv(_need(path, "u.data"), sep="\t", header=None,
                          names=["user_id", "item_id", "rating", "timestamp"], dtype="int64")
    genres = list(ML_100K_GENRES)
    genre_file = path / "u.genre"
    if genre_file.is_file():
        listed = pd.read_csv(genre_file, sep="|", header=None, names=["genre", "index"],
                             encoding="latin-1").dropna()
        genres = list(listed.sort_values("index")["genre"])
    cols = ["item_id", "item_title", "release_date", "video_release_date", "imdb_url"] + genres
    items = pd.read_csv(_need(path, "u.item"), sep="|", header=None, names=cols, encoding="latin-1",
                        dtype={"item_id": "int64", "item_title": str, "release_date": str})
    flags = items[genres].fillna(0).to_numpy(dtype=bool)
    names = np.array(genres, dtype=object)
    items["item_genres"] = [list(names[row]) for row in flags]
    released = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items["item_year"] = released.astype("float64").fillna(_year_from_title(items["item_title"]))
    items = items[["item_id", "item_title", "item_genres", "item_year"]]
    users = pd.read_csv(_need(path, "u.user"), sep="|", header=None,
                        names=["user_id", "user_age", "user_gender", "user_occupation", "user_zip"],
                        dtype={"user_id": "int64", "user_age": "int64", "user_gender": str,
                               "user_occupation": str, "user_zip": str})
    return _ratings(ratings), items, users


def _read_dat(file: Path, names, encoding="latin-1"):
    # '::' separators; the python engine would be slow on 1M rows, so split the text ourselves
    text = file.read_bytes().decode(encoding)
    return pd.read_csv(io.StringIO(text.replace("::", "\x1f")), sep="\x1f", header=None, names=names,
                       dtype=str, keep_default_na=False, quoting=3)


def _ml_1m(path: Path):
    ratings = _read_dat(_need(path, "ratings.dat"), ["user_id", "item_id", "rating", "timestamp"])
    ratings = ratings.astype({"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"})
    items = _read_dat(_need(path, "movies.dat"), ["item_id", "item_title", "genres"])
    items["item_id"] = items["item_id"].astype("int64")
    items["item_genres"] = items["genres"].map(lambda g: [t for t in g.split("|") if t])
    items["item_year"] = _year_from_title(items["item_title"])
    users = _read_dat(_need(path, "users.dat"),
                      ["user_id", "user_gender", "user_age", "user_occupation", "user_zip"])
    users = users.astype({"user_id": "int64", "user_age": "int64"})
    return _ratings(ratings), items[["item_id", "item_title", "item_genres", "item_year"]], \
        users[["user_id", "user_age", "user_gender", "user_occupation", "user_zip"]]


def _ml_latest(path: Path):
    ratings = pd.read_csv(_need(path, "ratings.csv"), encoding="utf-8",
                          dtype={"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"})
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    items = pd.read_csv(_need(path, "movies.csv"), encoding="utf-8", dtype={"movieId": "int64", "title": str,
                                                                           "genres": str})
    items = items.rename(columns={"movieId": "item_id", "title": "item_title"})
    items["item_genres"] = items["genres"].fillna("").map(
        lambda g: [t for t in g.split("|") if t and t != "(no genres listed)"])
    items["item_year"] = _year_from_title(items["item_title"].str.strip())
    return _ratings(ratings[["user_id", "item_id", "rating", "timestamp"]]), \
        items[["item_id", "item_title", "item_genres", "item_year"]], None
