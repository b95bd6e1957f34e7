"""The HetRec 2011 Last.fm 2k folder (GroupLens): who listened to which artist, how often.

Nothing here downloads: point ``lastfm`` at the unpacked folder.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from schemaretrieval.schemas import schema_path

__all__ = ["lastfm", "lastfm_tags", "lastfm_schema_path", "LASTFM_2K_MD5"]

#: md5 of GroupLens's user_artists.dat (CRLF line ends, header line), as the
#: data's README gives it; `lastfm` warns when a copy differs.
LASTFM_2K_MD5 = {"user_artists.dat": "b9b4738734aa19317c37434a57e493be"}
_LASTFM_HEADERS = {
    "user_artists.dat": ("userID", "artistID", "weight"),
    "artists.dat": ("id", "name", "url", "pictureURL"),
    "tags.dat": ("tagID", "tagValue"),
    "user_friends.dat": ("userID", "friendID"),
}
# Each file's text encoding: GroupLens wrote tags.dat in ISO-8859-1, artists.dat in UTF-8.
_LASTFM_ENCODINGS = {"user_artists.dat": "ascii", "artists.dat": "utf-8", "tags.dat": "latin-1",
                     "user_friends.dat": "ascii"}
# GroupLens's user_friends.dat has a header line, some copies have none: both are read.
_LASTFM_HEADER_OPTIONAL = {"user_friends.dat"}


def lastfm_schema_path() -> Path:
    """The bundled YAML schema of the frame `lastfm` returns (schemas/lastfm-2k.yaml).

    >>> import schemaretrieval as sr
    >>> schema = sr.load_schema(lastfm_schema_path())
    >>> set(schema.column_names) <= set(lastfm("tests/fixtures/lastfm-2k", check_md5=False).columns)
    True
    """
    return schema_path("lastfm-2k")


def lastfm(path, check_md5: bool = True) -> pd.DataFrame:
    """One row per (user, artist) pair of the HetRec 2011 Last.fm 2k folder.

    Every pair is an implicit positive; ``weight`` is how often the user
    played the artist, for use as a sample weight or a filter.

    Columns: ``user_id``, ``item_id`` (the artist), ``weight`` (int64 play
    count, >= 1), ``item_name`` (str), ``user_friends`` (list of the user's
    friends' user ids, in the file's order). Rows keep user_artists.dat's
    order; ids stay raw (the ETL encodes them).

    Files read: ``user_artists.dat``, ``artists.dat`` and ``user_friends.dat``,
    tab-separated, with CRLF or LF line ends. user_artists.dat and
    artists.dat must start with their header line; user_friends.dat may or
    may not. Ids and counts must be plain decimal digits. Anything else (a
    missing or extra field, a stray space inside a number, a pair or a
    friendship listed twice, an artist missing from artists.dat, a byte that
    is not in the file's encoding) is a ValueError naming the file and line;
    a file with no pairs (user_artists.dat, user_friends.dat) names the file.

    Args:
        path: the unpacked folder.
        check_md5: compare user_artists.dat with GroupLens's (``LASTFM_2K_MD5``)
            and warn when it differs: figures on another copy need not
            match the published ones, though the reader's checks passed.

    Example (a generated folder of the same format: 40 pairs of 8 users):

    >>> frame = lastfm("tests/fixtures/lastfm-2k", check_md5=False)
    >>> len(frame), frame["user_id"].nunique(), str(frame["weight"].dtype)
    (40, 8, 'int64')
    >>> frame.loc[0, ["user_id", "item_id", "weight", "item_name"]].tolist()
    [2, 57, 15923, 'Tab Separated']
    >>> frame.loc[0, "user_friends"]
    [4, 7]
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"lastfm: {str(path)!r} is not a directory")
    pairs_file = _lastfm_need(path, "user_artists.dat")
    if check_md5:
        digest = hashlib.md5(pairs_file.read_bytes()).hexdigest()
        if digest != LASTFM_2K_MD5["user_artists.dat"]:
            warnings.warn(f"lastfm: {str(pairs_file)!r} has md5 {digest}, not GroupLens's "
                          f"{LASTFM_2K_MD5['user_artists.dat']}: another copy of the data (or another data set), "
                          "so its figures need not match those published for lastfm-2k", stacklevel=2)
    pairs, pair_lines = _lastfm_read(pairs_file, numeric=(0, 1, 2))
    artists, artist_lines = _lastfm_read(_lastfm_need(path, "artists.dat"), numeric=(0,))
    friends_file = _lastfm_need(path, "user_friends.dat")
    friends, friend_lines = _lastfm_read(friends_file, numeric=(0, 1))
    if not pairs:
        raise ValueError(f"lastfm: {str(pairs_file)!r} holds no (user, artist) pairs")
    if not friends:  # every user would read no friends, as if the file said so
        raise ValueError(f"lastfm: {str(friends_file)!r} holds no (user, friend) pairs")

    frame = pd.DataFrame(pairs, columns=["user_id", "item_id", "weight"]).astype("int64")
    zero = np.flatnonzero(frame["weight"].to_numpy() < 1)
    if len(zero):
        raise ValueError(f"lastfm: {str(pairs_file)!r}, line {pair_lines[zero[0]]}: weight (play count) must be "
                         f">= 1, got {frame['weight'].iloc[zero[0]]}")
    twice = np.flatnonzero(frame.duplicated(["user_id", "item_id"]).to_numpy())
    if len(twice):
        i = twice[0]
        first = np.flatnonzero(((frame["user_id"] == frame["user_id"].iloc[i])
                                & (frame["item_id"] == frame["item_id"].iloc[i])).to_numpy())[0]
        raise ValueError(f"lastfm: {str(pairs_file)!r}, line {pair_lines[i]}: user {frame['user_id'].iloc[i]} "
                         f"and artist {frame['item_id'].iloc[i]} are listed twice (first on line "
                         f"{pair_lines[first]})")

    names = pd.Series([row[1] for row in artists], index=[int(row[0]) for row in artists], dtype=object)
    if not names.index.is_unique:
        i = int(np.flatnonzero(names.index.duplicated())[0])
        raise ValueError(f"lastfm: {str(path / 'artists.dat')!r}, line {artist_lines[i]}: artist id "
                         f"{names.index[i]} is listed twice")
    frame["item_name"] = names.reindex(frame["item_id"]).to_numpy()
    unknown = np.flatnonzero(pd.isna(frame["item_name"]).to_numpy())
    if len(unknown):
        raise ValueError(f"lastfm: {str(pairs_file)!r}, line {pair_lines[unknown[0]]}: artist "
                         f"{frame['item_id'].iloc[unknown[0]]} is not in artists.dat")

    lists: dict[int, list[int]] = {}
    first_line: dict[tuple[int, int], int] = {}
    for (user, friend), line in zip(friends, friend_lines):
        pair = (int(user), int(friend))
        if pair in first_line:  # a friend listed twice would count twice in the mean of their embeddings
            raise ValueError(f"lastfm: {str(friends_file)!r}, line {line}: user {pair[0]} and friend {pair[1]} are "
                             f"listed twice (first on line {first_line[pair]})")
        first_line[pair] = line
        lists.setdefault(pair[0], []).append(pair[1])
    frame["user_friends"] = [list(lists.get(user, ())) for user in frame["user_id"].tolist()]
    return frame


def lastfm_tags(path) -> pd.DataFrame:
    """The tag names of a Last.fm 2k folder (tags.dat, ISO-8859-1): columns
    ``tag_id`` (int64) and ``tag`` (str). This folder has no file that ties
    tags to artists, so `lastfm` does not join them.

    >>> lastfm_tags("tests/fixtures/lastfm-2k").loc[1].tolist()
    [2, 'música alternativa']
    """
    rows, _ = _lastfm_read(_lastfm_need(Path(path), "tags.dat"), numeric=(0,))
    return pd.DataFrame({"tag_id": np.array([int(r[0]) for r in rows], dtype="int64"),
                         "tag": [r[1] for r in rows]})


def _lastfm_need(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"lastfm: {str(file)!r} is missing")
    return file


def _lastfm_read(file: Path, numeric=()):
    """The rows of one tab-separated Last.fm file as lists of str (header
    checked and left out), and each row's line number in the file."""
    name, data = file.name, file.read_bytes()
    encoding = _LASTFM_ENCODINGS[name]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"lastfm: {str(file)!r}, line {line}: byte {data[e.start]:#04x} is not {encoding} "
                         f"text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the last line's end
    header = _LASTFM_HEADERS[name]
    rows, numbers, start = [], [], 0
    first = lines[0].removesuffix("\r").split("\t") if lines else []
    if tuple(first) == header:
        start = 1
    elif name not in _LASTFM_HEADER_OPTIONAL:
        raise ValueError(f"lastfm: {str(file)!r}, line 1: expected the header {chr(9).join(header)!r} "
                         f"(tab-separated), got {lines[0][:80] if lines else ''!r}")
    for number, line in enumerate(lines[start:], start + 1):
        fields = line.removesuffix("\r").split("\t")
        if len(fields) != len(header):
            raise ValueError(f"lastfm: {str(file)!r}, line {number}: expected {len(header)} tab-separated fields "
                             f"({', '.join(header)}), got {len(fields)}: {line[:80]!r}")
        for i in numeric:
            # below 2**63: an id is an int64 in every table built from these rows
            if not (fields[i].isascii() and fields[i].isdigit()) or int(fields[i]) >= 2**63:
                raise ValueError(f"lastfm: {str(file)!r}, line {number}, column {header[i]}: expected a "
                                 f"non-negative integer below 2**63 (digits only), got {fields[i]!r}")
        rows.append(fields)
        numbers.append(number)
    return rows, numbers
