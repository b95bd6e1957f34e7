"""benchmarks/movielens_from_recbole.py: RecBole's atomic ML-100K files become
GroupLens files that sr.datasets.movielens reads like the original download."""

import importlib.util
import zipfile
from pathlib import Path

import pytest

import schemaretrieval as sr

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "recbole/dataset_example/ml-100k/ml-100k"


def _script():
    spec = importlib.util.spec_from_file_location("movielens_from_recbole", ROOT / "benchmarks" / "movielens_from_recbole.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_recbole_wheel_becomes_grouplens_files(tmp_path):
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:  # the layout of the real wheel, three films
        z.writestr(f"{PREFIX}.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                      "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t1\t5\t881250950\n")
        z.writestr(f"{PREFIX}.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                     "1\tToy Story\t1995\tAnimation Children's Comedy\n"
                                     "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n")
        z.writestr(f"{PREFIX}.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                     "196\t49\tM\twriter\t55105\n186\t39\tF\texecutive\t00000\n")
    _script().main(["--out", str(tmp_path / "ml-100k"), "--wheel", str(wheel)])
    frame = sr.datasets.movielens(tmp_path / "ml-100k")
    assert len(frame) == 3
    assert frame["user_id"].tolist() == [196, 186, 196] and frame["rating"].tolist() == [3.0, 3.0, 5.0]
    toy = frame[frame["item_id"] == 1].iloc[0]
    assert toy["item_genres"] == ["Animation", "Children's", "Comedy"] and toy["item_year"] == 1995
    assert toy["item_title"] == "Toy Story (1995)"
    confidential = frame[frame["item_id"] == 302].iloc[0]
    assert confidential["item_genres"] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert (confidential["user_gender"], confidential["user_occupation"], confidential["user_age"]) == ("F", "executive", 39)
