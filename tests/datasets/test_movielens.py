"""MovieLens readers on fixture files in the GroupLens formats (tests/fixtures/make_movielens.py)."""

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import datasets

FIXTURES = "tests/fixtures"
USER_COLS = ["user_age", "user_gender", "user_occupation", "user_zip"]


def test_ml_100k():
    frame = datasets.movielens(f"{FIXTURES}/ml-100k", "ml-100k")
    raw = pd.read_csv(f"{FIXTURES}/ml-100k/u.data", sep="\t", header=None)
    assert len(frame) == len(raw)
    assert frame["user_id"].tolist() == raw[0].tolist() and frame["item_id"].tolist() == raw[1].tolist()
    assert frame["rating"].dtype == np.float32 and frame["timestamp"].dtype == np.int64
    row = frame[frame["item_id"] == 3].iloc[0]
    assert row["item_title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert row["item_genres"] == ["Drama", "War"] and row["item_year"] == 1995
    assert frame[frame["item_id"] == 8]["item_year"].iloc[0] == 1997   # release date, not title
    assert frame[frame["item_id"] == 5]["item_year"].iloc[0] == 1994   # no date: from the title
    assert np.isnan(frame[frame["item_id"] == 7]["item_year"].iloc[0])  # neither
    user8 = frame[frame["user_id"] == 8].iloc[0]
    assert (user8["user_age"], user8["user_gender"], user8["user_occupation"], user8["user_zip"]) == \
        (36, "M", "administrator", "05201")  # zip keeps its leading zero
    assert not frame[USER_COLS].isna().any().any()


def test_ml_1m():
    frame = datasets.movielens(f"{FIXTURES}/ml-1m")  # variant from the folder's name
    assert len(frame) == 48 and set(USER_COLS) <= set(frame.columns)
    row = frame[frame["item_id"] == 5].iloc[0]
    assert row["item_title"] == "Café au Lait (1994)" and row["item_genres"] == ["Comedy"]
    assert set(frame["user_age"]) <= {1, 18, 25, 35, 45, 50, 56}
    assert frame[frame["user_id"] == 8]["user_zip"].iloc[0] == "05201"


def test_ml_latest_small():
    frame = datasets.movielens(f"{FIXTURES}/ml-latest-small", "ml-latest-small")
    assert not set(USER_COLS) & set(frame.columns)
    row = frame[frame["item_id"] == 30].iloc[0]
    assert row["item_title"] == "Misérables, Les (1995)"   # quoted title with a comma, utf-8
    assert frame[frame["item_id"] == 70]["item_genres"].iloc[0] == []   # (no genres listed)
    assert frame["rating"].isin(np.arange(0.5, 5.5, 0.5)).all()


def test_guess_variant_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.movielens(tmp_path / "nope")
    with pytest.raises(ValueError, match="cannot tell the variant"):
        datasets.movielens(tmp_path)
    with pytest.raises(ValueError, match="unknown variant"):
        datasets.movielens(f"{FIXTURES}/ml-100k", "ml-2k")
    # A typo is not guessed to mean the ml-latest schema.
    with pytest.raises(ValueError, match=r"movielens_schema_path: unknown variant 'ml-10m'; expected one of ml-100k"):
        datasets.movielens_schema_path("ml-10m")
    with pytest.raises(FileNotFoundError, match="u.user"):
        (tmp_path / "u.data").write_text("1\t1\t5\t1\n")
        (tmp_path / "u.item").write_text("1|A (1990)|||x" + "|0" * 19 + "\n")
        datasets.movielens(tmp_path, "ml-100k")


def corrupted(tmp_path, variant, name, edit):
    """A copy of the fixture folder ``variant`` with ``edit`` applied to the text of ``name``."""
    import shutil

    folder = tmp_path / variant
    shutil.copytree(f"{FIXTURES}/{variant}", folder)
    file = folder / name
    file.write_bytes(edit(file.read_bytes().decode("latin-1")).encode("latin-1"))
    return folder, file


def line(text, number, new):
    lines = text.split("\n")
    lines[number - 1] = new
    return "\n".join(lines)


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    # was: UnicodeDecodeError naming no file
    folder, _ = corrupted(tmp_path, "ml-latest-small", "ratings.csv", lambda t: t)
    data = (folder / "ratings.csv").read_bytes()
    (folder / "ratings.csv").write_bytes(data[:40] + b"\xff\xfe" + data[40:])
    with pytest.raises(ValueError, match=r"movielens: '.*ratings.csv': not utf-8 text \(invalid start byte\)"):
        datasets.movielens(folder, "ml-latest-small")


@pytest.mark.parametrize("variant, name, edit, message", [
    ("ml-100k", "u.data", lambda t: line(t, 3, "1\t4\tfour\t874975158"), r"line 3: rating: expected a number, got 'four'"),
    ("ml-100k", "u.data", lambda t: line(t, 2, "1\t8\t4"), r"line 2: timestamp: expected an integer, got nothing: "
                                                             r"an empty field, or a line with fewer fields"),
    ("ml-100k", "u.data", lambda t: line(t, 2, "1\t8\t4\t874972224\t9"), r"u.data': .*Expected 4 fields in line 2, saw 5"),
    # was: read with every column shifted onto the next field (the first taken for pandas's index)
    ("ml-100k", "u.data", lambda t: "\n".join(row + "\t9" if row else row for row in t.split("\n")),
     r"u.data', line 1: more fields than the 4 expected \(user_id, item_id, rating, timestamp\)"),
    ("ml-1m", "ratings.dat", lambda t: "\n".join(row + "::9" if row else row for row in t.split("\n")),
     r"ratings.dat', line 1: more fields than the 4 expected"),
    # was: OverflowError naming no file; a rating of inf kept; a genre flag of 7 read as true
    ("ml-100k", "u.data", lambda t: line(t, 2, "99999999999999999999999\t7\t4\t874969739"),
     r"u.data', line 2: user_id: expected an integer, got '99999999999999999999999'"),
    ("ml-100k", "u.data", lambda t: line(t, 2, "1\t7\tinf\t874969739"), r"line 2: rating: expected a finite number, "
                                                                      r"got 'inf'"),
    ("ml-100k", "u.item", lambda t: line(t, 1, t.split("\n")[0][:-1] + "7"),
     r"u.item', line 1: Western: expected a genre flag 0 or 1, got 7"),
    # was: "u.item, line 2: item_id 0 is listed again", its columns named from a garbled u.genre
    ("ml-100k", "u.genre", lambda t: "garbage\n", r"u.genre': expected the 19 genres of ml-100k as 'name\|index' "
                                                  r"lines, indices 0 to 18; got 0 lines"),
    ("ml-100k", "u.data", lambda t: t.replace("\t", " "), r"line 1: user_id: expected an integer, got '1 7 4 874969739'"),
    ("ml-100k", "u.user", lambda t: line(t, 3, t.split("\n")[0]), r"u.user', line 3: user_id 1 is listed again "
                                                                   r"\(first on line 1\)"),
    ("ml-100k", "u.data", lambda t: line(t, 1, "999\t7\t4\t874969739"),
     r"1 rating\(s\) in .* name users missing from the user file \(first user_id 999\)"),
    ("ml-1m", "ratings.dat", lambda t: t.replace("::", ":"), r"ratings.dat', line 1: user_id: expected an integer, got '1:3:4:"),
    ("ml-latest-small", "ratings.csv", lambda t: t.split("\n", 1)[1], r"ratings.csv', line 1: expected the header "
                                                                      r"userId,movieId,rating,timestamp, got '1,10,2.0"),
    ("ml-latest-small", "ratings.csv", lambda t: line(t, 3, "1,80,,874973247"), r"line 3: rating: expected a number, got nothing: an empty field"),
    ("ml-latest-small", "movies.csv", lambda t: line(t, 3, "10,Copy (1995),Drama"),
     r"movies.csv', line 3: movieId 10 is listed again \(first on line 2\)"),
    # was: a line without its last text field read as an empty one: zip NaN or '', genres []
    ("ml-100k", "u.user", lambda t: line(t, 2, "|".join(t.split("\n")[1].split("|")[:4])),
     r"u.user', line 2: 4 fields, expected 5: a line with fewer fields"),
    ("ml-1m", "users.dat", lambda t: line(t, 1, "::".join(t.split("\n")[0].split("::")[:4])),
     r"users.dat', line 1: 4 fields, expected 5"),
    ("ml-1m", "movies.dat", lambda t: line(t, 2, "::".join(t.split("\n")[1].split("::")[:2])),
     r"movies.dat', line 2: 2 fields, expected 3"),
    ("ml-latest-small", "movies.csv", lambda t: line(t, 3, ",".join(t.split("\n")[2].split(",")[:2])),
     r"movies.csv', line 3: 2 fields, expected 3"),
])
def test_a_broken_file_is_named_with_its_line(tmp_path, variant, name, edit, message):
    # was: pandas's own errors (invalid literal for int(), KeyError, MergeError), no file or line, or
    # a rating of an unknown user kept with missing features, an empty rating read as NaN
    folder, _ = corrupted(tmp_path, variant, name, edit)
    with pytest.raises(ValueError, match=message):
        datasets.movielens(folder, variant)


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-latest-small"])
def test_bundled_schemas_describe_the_frames(variant):
    frame = datasets.movielens(f"{FIXTURES}/{variant}", variant)
    schema = sr.load_schema(datasets.movielens_schema_path(variant))
    assert set(schema.column_names) == set(frame.columns)


def _u_files(tmp_path, frame):
    """ml-100k's own u1.base / u1.test layout (user, item, rating, timestamp; tabs)."""
    rows = frame[["user_id", "item_id", "rating", "timestamp"]].astype("int64")
    rows.iloc[:40].to_csv(tmp_path / "u1.base", sep="\t", header=False, index=False)
    rows.iloc[40:].to_csv(tmp_path / "u1.test", sep="\t", header=False, index=False)
    return tmp_path / "u1.base", tmp_path / "u1.test"


def test_split_by_ids_takes_ml_100k_own_split_files(tmp_path):
    frame = datasets.movielens(f"{FIXTURES}/ml-100k")
    base, test = _u_files(tmp_path, frame)
    train, valid = datasets.split_by_ids(frame, base, test)
    pd.testing.assert_frame_equal(train, frame.iloc[:40].reset_index(drop=True))
    pd.testing.assert_frame_equal(valid, frame.iloc[40:].reset_index(drop=True))
    # one file: the other part is the rest; ml-1m's '::' and a csv header read alike
    (tmp_path / "valid.csv").write_text("userId,movieId\n" + "".join(
        f"{u}::{i}\n" for u, i in frame[["user_id", "item_id"]].iloc[40:].itertuples(index=False)))
    train, valid = datasets.split_by_ids(frame, valid_ids=tmp_path / "valid.csv")
    assert len(train) == 40 and len(valid) == 8


def test_split_by_ids_leaves_out_ratings_named_by_neither_file(tmp_path):
    frame = datasets.movielens(f"{FIXTURES}/ml-100k")
    base, test = _u_files(tmp_path, frame)
    base.write_text("\n".join(base.read_text().splitlines()[:30]) + "\n")
    train, valid = datasets.split_by_ids(frame, base, test)
    assert (len(train), len(valid)) == (30, 8)


@pytest.mark.parametrize("lines, other, message", [
    ("1\t7\n1\t999\n5\t1000\n", None, "2 line(s) name a rating that is not in ml-100k: line 2 (user 1, item 999), "
                                      "line 3 (user 5, item 1000)"),
    ("1\t7\n1\t8\n1 7\n", None, "1 line(s) repeat an earlier line: line 3 (user 1, item 7)"),
    ("1\t7\n1\tseven\n", None, "line 2: expected a user id and an item id (integers) first, got '1\\tseven'"),
    # was: taken for a header and left out; a header's first field is no number
    ("1\t7x\n1\t8\n", None, "line 1: expected a user id and an item id (integers) first, got '1\\t7x'"),
    ("1\t7\n", "1\t8\n1\t7\n", "1 line(s) name a rating that --train-ids"),
    ("# nothing\n", None, "names no rating"),
])
def test_split_by_ids_errors_name_the_file_and_the_lines(tmp_path, lines, other, message):
    frame = datasets.movielens(f"{FIXTURES}/ml-100k")
    (tmp_path / "valid.tsv").write_text(lines)
    train_ids = None
    if other is not None:
        train_ids = tmp_path / "train.tsv"
        train_ids.write_text(other)
    with pytest.raises(ValueError) as info:
        datasets.split_by_ids(frame, train_ids, tmp_path / "valid.tsv", folder="ml-100k")
    assert "--valid-ids" in str(info.value) and str(tmp_path / "valid.tsv") in str(info.value)
    assert message in str(info.value)
    with pytest.raises(FileNotFoundError, match="--train-ids: .*nowhere.tsv' does not exist"):
        datasets.split_by_ids(frame, tmp_path / "nowhere.tsv")
