"""The Last.fm 2k reader on a generated folder in its format (tests/fixtures/make_lastfm.py)."""

import shutil
import warnings

import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval import datasets

FIXTURE = "tests/fixtures/lastfm-2k"


@pytest.fixture
def folder(tmp_path):
    """A copy of the fixture to spoil one file of."""
    return shutil.copytree(FIXTURE, tmp_path / "lastfm-2k")


def test_rows_weights_and_friends():
    frame = datasets.lastfm(FIXTURE, check_md5=False)
    raw = [line.split("\t") for line in open(f"{FIXTURE}/user_artists.dat", newline="").read().split("\r\n")[1:-1]]
    assert len(frame) == len(raw) == 40 and frame["user_id"].nunique() == 8
    assert frame["user_id"].tolist() == [int(r[0]) for r in raw]
    assert frame["item_id"].tolist() == [int(r[1]) for r in raw]
    assert frame["weight"].dtype == np.int64 and frame["weight"].tolist() == [int(r[2]) for r in raw]
    assert (frame["weight"] >= 1).all()
    # UTF-8 names; user_friends.dat without a header line: every friend of user 2 is read
    assert frame.loc[frame["item_id"] == 53, "item_name"].iloc[0] == "Ørsted Quartet"
    friends_of_2 = [int(line.split("\t")[1]) for line in
                    open(f"{FIXTURE}/user_friends.dat", newline="").read().split("\r\n") if line.startswith("2\t")]
    assert frame.loc[frame["user_id"] == 2, "user_friends"].iloc[0] == friends_of_2


def test_tags_are_iso_8859_1():
    tags = datasets.lastfm_tags(FIXTURE)
    assert tags["tag"].tolist() == ["metal", "música alternativa", "gothic rock", "électronique"]


def test_the_bundled_schema_trains_through_the_etl(tmp_path):
    frame = datasets.lastfm(FIXTURE, check_md5=False)
    out = sr.etl.fit_transform(frame, schema=datasets.lastfm_schema_path(), out_dir=tmp_path, device="cpu")
    schema = sr.load_schema(out.out_dir)
    assert sr.schema.query_schema(schema).column_names == ["user_id", "user_friends"]
    assert [c for c in sr.schema.candidate_schema(schema).column_names if c != "item_name"] == ["item_id"]
    model = sr.TwoTowerModel(schema)
    model.compile()
    model.fit(sr.data.read_table(out.train), epochs=1, verbose=0)


def test_md5_mismatch_warns_and_reads(folder):
    with pytest.warns(UserWarning, match=r"user_artists.dat' has md5 [0-9a-f]{32}, not GroupLens's "
                                         r"b9b4738734aa19317c37434a57e493be"):
        frame = datasets.lastfm(folder)
    assert len(frame) == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.lastfm(folder, check_md5=False)


def test_lf_line_ends_and_a_friends_header_are_accepted(folder):
    pairs = folder / "user_artists.dat"
    pairs.write_bytes(pairs.read_bytes().replace(b"\r\n", b"\n"))
    friends = folder / "user_friends.dat"
    friends.write_bytes(b"userID\tfriendID\r\n" + friends.read_bytes())
    assert datasets.lastfm(folder, check_md5=False).equals(datasets.lastfm(FIXTURE, check_md5=False))


def spoil(file, line, new):
    """Replaces 1-based `line` of `file` (CRLF or LF kept)."""
    data = file.read_bytes()
    end = b"\r\n" if b"\r\n" in data else b"\n"
    lines = data.split(end)
    lines[line - 1] = new
    file.write_bytes(end.join(lines))


@pytest.mark.parametrize("name, line, new, message", [
    ("user_artists.dat", 4, b"2\t5 1\t100", r"user_artists.dat', line 4, column artistID: expected a non-negative "
                                             r"integer below 2\*\*63 \(digits only\), got '5 1'"),
    # was: "Python int too large to convert to C long"; a friend id kept as a Python int
    ("user_artists.dat", 4, b"99999999999999999999999\t51\t100", r"line 4, column userID: expected a non-negative "
                                                                   r"integer below 2\*\*63"),
    ("user_friends.dat", 2, b"2\t99999999999999999999999", r"line 2, column friendID: expected a non-negative integer "
                                                           r"below 2\*\*63"),
    ("user_artists.dat", 3, b"2\t51", r"user_artists.dat', line 3: expected 3 tab-separated fields "
                                       r"\(userID, artistID, weight\), got 2"),
    ("user_artists.dat", 1, b"2\t51\t100", r"user_artists.dat', line 1: expected the header "
                                            r"'userID\\tartistID\\tweight'"),
    ("user_artists.dat", 5, b"2\t51\t0", r"user_artists.dat', line 5: weight \(play count\) must be >= 1, got 0"),
    ("user_artists.dat", 3, b"2\t999\t10", r"user_artists.dat', line 3: artist 999 is not in artists.dat"),
    ("user_friends.dat", 2, b"2\t-4", r"user_friends.dat', line 2, column friendID: expected a non-negative integer"),
    ("artists.dat", 3, b"52\tSeeded Noise\thttp://x", r"artists.dat', line 3: expected 4 tab-separated fields"),
    ("artists.dat", 4, "53\tØrsted\tu\tp".encode("latin-1"), r"artists.dat', line 4: byte 0xd8 is not utf-8 text"),
])
def test_bad_files_name_file_and_line(folder, name, line, new, message):
    spoil(folder / name, line, new)
    with pytest.raises(ValueError, match=message):
        datasets.lastfm(folder, check_md5=False)


def test_a_pair_listed_twice_names_both_lines(folder):
    spoil(folder / "user_artists.dat", 3, open(folder / "user_artists.dat", "rb").read().split(b"\r\n")[1])
    with pytest.raises(ValueError, match=r"line 3: user 2 and artist \d+ are listed twice \(first on line 2\)"):
        datasets.lastfm(folder, check_md5=False)


def test_a_friendship_listed_twice_and_an_empty_friends_file_are_refused(folder):
    # was: user 2's friends [4, 7, 4], and an empty file read as nobody having friends
    friends = folder / "user_friends.dat"
    friends.write_bytes(friends.read_bytes() + b"2\t4\r\n")
    with pytest.raises(ValueError, match=r"user_friends.dat', line \d+: user 2 and friend 4 are listed twice "
                                         r"\(first on line 1\)"):
        datasets.lastfm(folder, check_md5=False)
    friends.write_bytes(b"")
    with pytest.raises(ValueError, match=r"user_friends.dat' holds no \(user, friend\) pairs"):
        datasets.lastfm(folder, check_md5=False)


def test_missing_files_and_folders(folder, tmp_path):
    (folder / "artists.dat").unlink()
    with pytest.raises(FileNotFoundError, match=r"lastfm: '.*artists.dat' is missing"):
        datasets.lastfm(folder, check_md5=False)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        datasets.lastfm(tmp_path / "nope")
