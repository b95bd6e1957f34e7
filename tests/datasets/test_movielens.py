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


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-latest-small"])
def test_bundled_schemas_describe_the_frames(variant):
    frame = datasets.movielens(f"{FIXTURES}/{variant}", variant)
    schema = sr.load_schema(datasets.movielens_schema_path(variant))
    assert set(schema.column_names) == set(frame.columns)
