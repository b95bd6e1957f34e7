"""`schemaretrieval etl` and `schemaretrieval train` on its output, through cli.main."""

import json

import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import cli, datasets

ML100K = "tests/fixtures/ml-100k"


def test_etl_then_train_from_raw_files(tmp_path, capsys):
    raw = datasets.movielens(ML100K)
    train, valid = sr.data.random_split(raw, 0.25, seed=0)
    train.to_parquet(tmp_path / "train.parquet")
    valid.to_parquet(tmp_path / "valid.parquet")
    out = tmp_path / "etl"
    assert cli.main(["etl", "--schema", "schemas/movielens-100k.yaml", "--train", str(tmp_path / "train.parquet"),
                     "--valid", str(tmp_path / "valid.parquet"), "--out", str(out), "--device", "cpu"]) == 0
    assert "36 train and 12 valid rows" in capsys.readouterr().out
    assert sr.load_schema(out)["item_id"].properties["domain"]["max"] == train["item_id"].nunique() + 2
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(out), "--epochs", "1", "--batch-size", "16", "--ks", "5",
                     "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["two-tower"]["recall@5"] <= 1.0
    assert sr.load_schema(run / "schema.yaml") == sr.load_schema(out)


def test_etl_from_a_movielens_folder_with_leave_last_split(tmp_path, capsys):
    out = tmp_path / "ml"
    assert cli.main(["etl", "--movielens", ML100K, "--split", "leave-last", "--out", str(out),
                     "--device", "cpu"]) == 0
    report = json.loads((out / "etl_report.json").read_text())
    assert report["valid"]["rows"] == 8 and report["train"]["rows"] == 40   # one per user held out
    assert sr.load_schema(out).name == "movielens-100k"


def test_train_straight_from_movielens(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "--movielens", ML100K, "--variant", "ml-100k", "--split", "time", "--epochs", "1",
                     "--batch-size", "16", "--ks", "5", "--out", str(run), "--device", "cpu"]) == 0
    assert (run / "etl" / "schema.yaml").is_file() and (run / "metrics.json").is_file()


def test_etl_errors_exit_with_the_message(tmp_path, capsys):
    path = tmp_path / "raw.csv"
    pd.DataFrame({"user_id": [1]}).to_csv(path, index=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["etl", "--schema", "schemas/movielens-100k.yaml", "--train", str(path), "--out",
                  str(tmp_path / "o"), "--device", "cpu"])
    assert info.value.code == 2
    assert "raw.csv: column 'user_age'" in capsys.readouterr().err
