"""MovieLens from an unpacked GroupLens folder, in its own formats, and a given split of it.

Nothing here downloads: point ``movielens`` at an unpacked GroupLens folder.
``split_by_ids`` cuts its ratings by *ids files* (one rating per line, its
first two fields the raw user and item ids), the format of ml-100k's own
``u1.base`` / ``u1.test`` and of most published splits.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from schemaretrieval.schemas import schema_path

__all__ = ["movielens", "MOVIELENS_VARIANTS", "ML_100K_GENRES", "movielens_schema_path", "guess_variant",
           "read_id_pairs", "split_by_ids"]

MOVIELENS_VARIANTS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-latest", "ml-20m", "ml-25m", "ml-32m")
#: The 19 genre flags of ml-100k's u.item, in column order (as u.genre lists them).
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")
# Between the fields of an ids file: ml-100k's tabs, ml-1m's '::', csv commas, spaces.
_ID_SEPARATOR = r"::|[\s,;|]+"
_SHOWN = 3  # lines named in an error, at most


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
    # a rating names a user and an item its files list: not a row of missing features
    for what, table, column in (("item", items, "item_id"), ("user", users, "user_id")):
        if table is None:
            continue
        unknown = ~ratings[column].isin(table[column]).to_numpy()
        if unknown.any():
            raise ValueError(f"movielens: {int(unknown.sum())} rating(s) in {str(path)!r} name {what}s missing from "
                             f"the {what} file (first {column} {ratings[column].iloc[int(np.argmax(unknown))]!r})")
    frame = ratings.merge(items, on="item_id", how="left", validate="many_to_one", sort=False)
    if users is not None:
        frame = frame.merge(users, on="user_id", how="left", validate="many_to_one", sort=False)
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


def _read(file: Path, numbers: dict, text=None, **options) -> pd.DataFrame:
    """``pd.read_csv`` of ``file`` (or of ``text``, its decoded content) with the columns in
    ``numbers`` ({name: "int64" or "float32"}) as numbers; a line that has not the fields (too few,
    for a text column too), or not a number where one is due, is a ValueError naming the file, the
    line and the column."""
    source = (lambda: io.StringIO(text)) if text is not None else (lambda: file)
    options = dict(options, skip_blank_lines=False)
    given = options.pop("dtype", {})
    dtype = {**(given if isinstance(given, dict) else dict.fromkeys(options["names"], given)), **numbers}
    first_line = 2 if options.get("header", "infer") == 0 else 1
    try:
        frame = pd.read_csv(source(), dtype=dtype, **options)
    except (ValueError, OverflowError):  # a field that is not a number, a missing one, one beyond int64
        frame = None
    if frame is not None and not isinstance(frame.index, pd.RangeIndex):
        # more fields than names on every line: pandas took the first ones for the index,
        # shifting every column onto the next field
        names = options.get("names") or list(numbers)
        raise ValueError(f"movielens: {str(file)!r}, line {first_line}: more fields than the {len(names)} expected "
                         f"({', '.join(names)})")
    if frame is not None and np.isfinite(frame[list(numbers)].to_numpy(dtype="float64")).all():
        if len(frame.columns) > len(numbers):
            _check_fields(file, text, options, len(frame.columns), first_line - 1)
        return frame  # else a missing or infinite value: the text pass below names its line
    try:  # again as text, to find the line
        raw = pd.read_csv(source(), dtype=str, **dict(options, keep_default_na=False))
    except pd.errors.ParserError as err:
        raise ValueError(f"movielens: {str(file)!r}: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"movielens: {str(file)!r}: not {err.encoding} text ({err.reason}); "
                         "the release's own files are") from None
    for name, kind in numbers.items():
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = (values.isna() | (values % 1 != 0) | (values.abs() >= 2.0**63) if kind == "int64"
               else values.isna() | ~np.isfinite(values)).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            got = raw[name].iloc[i]
            got = "nothing: an empty field, or a line with fewer fields" if pd.isna(got) or got == "" else repr(got)
            what = "an integer" if kind == "int64" else "a finite number" if pd.notna(values.iloc[i]) else "a number"
            raise ValueError(f"movielens: {str(file)!r}, line {first_line + i}: {name}: expected {what}, got {got}")
    raise ValueError(f"movielens: {str(file)!r}: not readable as {', '.join(options.get('names') or numbers)}")


def _check_fields(file: Path, text, options: dict, count: int, header_lines: int) -> None:
    """A ValueError naming the first line with fewer than ``count`` fields: pandas fills a text
    column a line lacks with NaN or "" (a zip code, a movie's genres), as if the field were empty."""
    with (io.StringIO(text) if text is not None else
          open(file, encoding=options.get("encoding", "utf-8"), errors="replace", newline="")) as handle:
        rows = csv.reader(handle, delimiter=options.get("sep", ","), quoting=options.get("quoting", csv.QUOTE_MINIMAL))
        for row in rows:
            if rows.line_num > header_lines and row and len(row) < count:
                raise ValueError(f"movielens: {str(file)!r}, line {rows.line_num}: {len(row)} fields, expected "
                                 f"{count}: a line with fewer fields")


def _unique(frame: pd.DataFrame, column: str, file: Path, first_line: int = 1) -> pd.DataFrame:
    """``frame``, or a ValueError naming the file's line that lists an id again."""
    repeated = frame[column].duplicated().to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        first = int(np.argmax((frame[column] == frame[column].iloc[i]).to_numpy()))
        raise ValueError(f"movielens: {str(file)!r}, line {first_line + i}: {column} {frame[column].iloc[i]!r} is "
                         f"listed again (first on line {first_line + first})")
    return frame


def _ml_100k(path: Path):
    ratings = _read(_need(path, "u.data"), {"user_id": "int64", "item_id": "int64", "rating": "float32",
                                            "timestamp": "int64"},
                    sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"])
    genres = list(ML_100K_GENRES)
    genre_file = path / "u.genre"
    if genre_file.is_file():
        try:
            listed = pd.read_csv(genre_file, sep="|", header=None, names=["genre", "index"],
                                 encoding="latin-1").dropna()
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            listed = pd.DataFrame({"genre": [], "index": []})
        # u.item's columns are named from it: another list would shift them
        if sorted(pd.to_numeric(listed["index"], errors="coerce").tolist()) != list(range(len(ML_100K_GENRES))):
            raise ValueError(f"movielens: {str(genre_file)!r}: expected the {len(ML_100K_GENRES)} genres of ml-100k "
                             f"as 'name|index' lines, indices 0 to {len(ML_100K_GENRES) - 1}; got {len(listed)} lines")
        genres = list(listed.sort_values("index")["genre"])
    cols = ["item_id", "item_title", "release_date", "video_release_date", "imdb_url"] + genres
    items = _unique(_read(_need(path, "u.item"), {"item_id": "int64", **dict.fromkeys(genres, "int64")}, sep="|",
                          header=None, names=cols, encoding="latin-1", dtype={"item_title": str, "release_date": str}),
                    "item_id", path / "u.item")
    flags = items[genres].to_numpy()
    if not np.isin(flags, (0, 1)).all():  # a flag of 7 or -1 would read as true
        row, column = np.argwhere(~np.isin(flags, (0, 1)))[0]
        raise ValueError(f"movielens: {str(path / 'u.item')!r}, line {row + 1}: {genres[column]}: expected a genre "
                         f"flag 0 or 1, got {flags[row, column]}")
    flags = flags.astype(bool)
    names = np.array(genres, dtype=object)
    items["item_genres"] = [list(names[row]) for row in flags]
    released = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items["item_year"] = released.astype("float64").fillna(_year_from_title(items["item_title"]))
    items = items[["item_id", "item_title", "item_genres", "item_year"]]
    users = _unique(_read(_need(path, "u.user"), {"user_id": "int64", "user_age": "int64"}, sep="|", header=None,
                          names=["user_id", "user_age", "user_gender", "user_occupation", "user_zip"],
                          dtype={"user_gender": str, "user_occupation": str, "user_zip": str}),
                    "user_id", path / "u.user")
    return _ratings(ratings), items, users


def _read_dat(file: Path, names, numbers, encoding="latin-1"):
    # '::' separators; the python engine would be slow on 1M rows, so split the text ourselves
    text = file.read_bytes().decode(encoding).replace("::", "\x1f")
    return _read(file, numbers, text=text, sep="\x1f", header=None, names=names, dtype=str, keep_default_na=False,
                 quoting=3)


def _ml_1m(path: Path):
    ratings = _read_dat(_need(path, "ratings.dat"), ["user_id", "item_id", "rating", "timestamp"],
                        {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"})
    items = _unique(_read_dat(_need(path, "movies.dat"), ["item_id", "item_title", "genres"], {"item_id": "int64"}),
                    "item_id", path / "movies.dat")
    items["item_genres"] = items["genres"].map(lambda g: [t for t in g.split("|") if t])
    items["item_year"] = _year_from_title(items["item_title"])
    users = _unique(_read_dat(_need(path, "users.dat"),
                              ["user_id", "user_gender", "user_age", "user_occupation", "user_zip"],
                              {"user_id": "int64", "user_age": "int64"}),
                    "user_id", path / "users.dat")
    return _ratings(ratings), items[["item_id", "item_title", "item_genres", "item_year"]], \
        users[["user_id", "user_age", "user_gender", "user_occupation", "user_zip"]]


def _header(file: Path, names) -> None:
    """A ValueError unless the csv's first line names ``names``."""
    with open(file, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip()
    missing = [name for name in names if name not in first.split(",")]
    if missing:
        raise ValueError(f"movielens: {str(file)!r}, line 1: expected the header {','.join(names)}, got {first[:80]!r}")


def _ml_latest(path: Path):
    ratings_file, movies_file = _need(path, "ratings.csv"), _need(path, "movies.csv")
    _header(ratings_file, ["userId", "movieId", "rating", "timestamp"])
    _header(movies_file, ["movieId", "title", "genres"])
    ratings = _read(ratings_file, {"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"},
                    header=0, encoding="utf-8")
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    items = _unique(_read(movies_file, {"movieId": "int64"}, header=0, encoding="utf-8",
                          dtype={"title": str, "genres": str}), "movieId", movies_file, first_line=2)
    items = items.rename(columns={"movieId": "item_id", "title": "item_title"})
    items["item_genres"] = items["genres"].fillna("").map(
        lambda g: [t for t in g.split("|") if t and t != "(no genres listed)"])
    items["item_year"] = _year_from_title(items["item_title"].str.strip())
    return _ratings(ratings[["user_id", "item_id", "rating", "timestamp"]]), \
        items[["item_id", "item_title", "item_genres", "item_year"]], None


def read_id_pairs(path, what: str = "ids file") -> pd.DataFrame:
    r"""The ratings an ids file names: columns ``user_id``, ``item_id`` (raw ids, int64) and
    ``line`` (1-based, for errors).

    One rating per line: its first two fields are the user id and the item id,
    separated by tabs, spaces, commas, ``;``, ``|`` or ``::``; further fields
    (a rating, a timestamp) are ignored, so ml-100k's ``u1.base`` and
    ml-latest's ``ratings.csv`` are ids files. Blank lines and lines starting
    with ``#`` are skipped, and so is a first line whose first field is not a
    number (a header). Any other line whose first two fields are not integers is a
    ValueError naming ``what``, the file and the line.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "valid.tsv"
    >>> _ = path.write_text("user\titem\n1\t4\t5\t874965758\n\n2::7\n")
    >>> read_id_pairs(path).to_dict("list")
    {'user_id': [1, 2], 'item_id': [4, 7], 'line': [2, 4]}
    >>> _ = path.write_text("1 4\n2 x\n")
    >>> read_id_pairs(path, "--valid-ids")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --valid-ids: .../valid.tsv line 2: expected a user id and an item id (integers) first, got '2 x'
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what}: {str(file)!r} does not exist")
    lines = pd.Series(file.read_text(encoding="utf-8", errors="replace").splitlines(), dtype=object)
    text = lines.str.strip()
    text = text[(text != "") & ~text.str.startswith("#")]
    fields = text.str.split(_ID_SEPARATOR, n=2, regex=True, expand=True).reindex(columns=[0, 1])
    user = pd.to_numeric(fields[0], errors="coerce")
    item = pd.to_numeric(fields[1], errors="coerce")
    bad = user.isna() | item.isna() | (user % 1 != 0) | (item % 1 != 0)
    if len(bad) and bad.iloc[0] and pd.isna(user.iloc[0]):  # a header names its columns; "1\t7x" is a rating
        bad.iloc[0] = False
        keep = text.index[1:]
        user, item, bad, text = user.loc[keep], item.loc[keep], bad.loc[keep], text.loc[keep]
    if bad.any():
        first = bad.idxmax()
        raise ValueError(f"{what}: {file} line {first + 1}: expected a user id and an item id (integers) "
                         f"first, got {text.loc[first]!r}")
    return pd.DataFrame({"user_id": user.astype("int64").to_numpy(), "item_id": item.astype("int64").to_numpy(),
                         "line": (text.index + 1).to_numpy(dtype="int64")})


def _lines(pairs: pd.DataFrame, mask) -> str:
    rows = pairs[np.asarray(mask)]
    shown = ", ".join(f"line {r.line} (user {r.user_id}, item {r.item_id})" for r in rows.head(_SHOWN).itertuples())
    more = len(rows) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def split_by_ids(ratings: pd.DataFrame, train_ids=None, valid_ids=None, folder="") -> tuple[pd.DataFrame, pd.DataFrame]:
    r"""``(train, valid)``: the rows of ``ratings`` (`movielens`'s) that ids files name
    (`read_id_pairs`), rows in the folder's order.

    With both files, each takes the ratings it names and a rating in neither
    is left out; with one, the other part is every rating it does not name.
    Errors name the file and its lines: a (user, item) pair with no rating
    in ``folder``, a pair named twice in one file, a pair in both files.

    >>> import pathlib, tempfile
    >>> ratings = movielens("tests/fixtures/ml-100k")
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "valid.tsv").write_text("1\t4\n2\t5\n")
    >>> train, valid = split_by_ids(ratings, valid_ids=folder / "valid.tsv")
    >>> len(train), valid[["user_id", "item_id"]].values.tolist()
    (46, [[1, 4], [2, 5]])
    >>> _ = (folder / "valid.tsv").write_text("1\t4\n1\t999\n")
    >>> split_by_ids(ratings, valid_ids=folder / "valid.tsv", folder="ml-100k")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --valid-ids: .../valid.tsv: 1 line(s) name a rating that is not in ml-100k: line 2 (user 1, item 999)
    """
    if train_ids is None and valid_ids is None:
        raise ValueError("split_by_ids: give train_ids, valid_ids or both")
    users = ratings["user_id"].to_numpy(np.int64)
    items = ratings["item_id"].to_numpy(np.int64)
    named = {}
    for name, path in (("train", train_ids), ("valid", valid_ids)):
        if path is None:
            continue
        what = f"--{name}-ids: {path}"
        pairs = read_id_pairs(path, f"--{name}-ids")
        if pairs.empty:
            raise ValueError(f"{what}: names no rating")
        repeated = pairs.duplicated(["user_id", "item_id"]).to_numpy()
        if repeated.any():
            raise ValueError(f"{what}: {int(repeated.sum())} line(s) repeat an earlier line: {_lines(pairs, repeated)}")
        known = pd.MultiIndex.from_arrays([users, items])
        missing = ~pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]]).isin(known)
        if missing.any():
            raise ValueError(f"{what}: {int(missing.sum())} line(s) name a rating that is not in "
                             f"{folder or 'the ratings'}: {_lines(pairs, missing)}")
        named[name] = pairs
    if len(named) == 2:
        both = pd.MultiIndex.from_frame(named["valid"][["user_id", "item_id"]]).isin(
            pd.MultiIndex.from_frame(named["train"][["user_id", "item_id"]]))
        if both.any():
            raise ValueError(f"--valid-ids: {valid_ids}: {int(both.sum())} line(s) name a rating that --train-ids "
                             f"{train_ids} names too: {_lines(named['valid'], both)}")
    rows = pd.MultiIndex.from_arrays([users, items])
    chosen = {name: rows.isin(pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]]))
              for name, pairs in named.items()}
    train = chosen.get("train", ~chosen.get("valid", np.zeros(len(ratings), bool)))
    valid = chosen.get("valid", ~train)
    return ratings[train].reset_index(drop=True), ratings[valid].reset_index(drop=True)
