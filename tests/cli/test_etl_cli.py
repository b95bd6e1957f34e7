"""`schemaretrieval etl` and `schemaretrieval train` on its output, through cli.main.

Training here skips the serving export (--no-export): tests/cli/test_output.py
exports a model trained on an ETL output and serves recommendations from it."""

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
                     "--no-export", "--out", str(run)]) == 0
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
                     "--batch-size", "16", "--ks", "5", "--no-export", "--out", str(run), "--device", "cpu"]) == 0
    assert (run / "etl" / "schema.yaml").is_file() and (run / "metrics.json").is_file()


def test_etl_errors_exit_with_the_message(tmp_path, capsys):
    path = tmp_path / "raw.csv"
    pd.DataFrame({"user_id": [1]}).to_csv(path, index=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["etl", "--schema", "schemas/movielens-100k.yaml", "--train", str(path), "--out",
                  str(tmp_path / "o"), "--device", "cpu"])
    assert info.value.code == 2
    assert "raw.csv: column 'user_age'" in capsys.readouterr().err


def test_train_and_evaluate_an_etl_output_whose_valid_part_has_unseen_items(tmp_path, capsys):
    # A random split of real data leaves some items only in the held-out part:
    # the ETL maps them to the OOV id, which must be a candidate like any other.
    raw = datasets.movielens(ML100K)
    unseen = raw["item_id"].iloc[0]
    valid = pd.concat([raw[raw["item_id"] == unseen], raw[raw["item_id"] != unseen].iloc[::5]])
    train = raw.drop(valid.index)
    train.to_parquet(tmp_path / "train.parquet")
    valid.to_parquet(tmp_path / "valid.parquet")
    out = tmp_path / "etl"
    assert cli.main(["etl", "--schema", "schemas/movielens-100k.yaml", "--train", str(tmp_path / "train.parquet"),
                     "--valid", str(tmp_path / "valid.parquet"), "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads((out / "etl_report.json").read_text())["valid"]["oov"]["item_id"] == (raw["item_id"] == unseen).sum()
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(out), "--epochs", "1", "--batch-size", "16", "--ks", "5",
                     "--no-export", "--out", str(run)]) == 0
    report = tmp_path / "report"
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(run), "--data", str(out), "--baseline", "popularity",
                     "--exclude-seen", "--ks", "5", "--out", str(report)]) == 0
    summary = json.loads((report / "evaluate.json").read_text())
    # the ETL directory's own parts, not every parquet file under it
    assert (summary["num_train"], summary["num_test"]) == (len(train), len(valid))
    assert summary["num_items"] == train["item_id"].nunique() + 1  # + the OOV id of the unseen item
    assert set(summary["metrics"]) == {"two-tower", "popularity"}
