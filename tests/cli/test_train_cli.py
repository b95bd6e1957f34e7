"""The `schemaretrieval` command as a user runs it."""

import json

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import serving
from schemaretrieval.cli import main

# Enough for the model to clear popularity by far (about 0.31 against 0.16 at recall@10)
ROWS = 10_000


def test_train_on_synthetic_data_reports_model_and_popularity_and_saves(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", str(ROWS), "--epochs", "3",
          "--batch-size", "512", "--learning-rate", "0.003", "--out", str(out)])
    printed = capsys.readouterr().out
    header, *table = [line for line in printed.splitlines() if "recall@" in line or line.startswith(("two-tower", "popularity"))][-5:]
    assert header.split() == ["recall@10", "recall@100"]
    metrics = json.loads((out / "metrics.json").read_text())
    names = ["two-tower", "popularity", "two-tower, seen excluded", "popularity, seen excluded"]
    assert list(metrics) == names
    for name, line in zip(names, table):  # the printed table is metrics.json's
        assert line.startswith(name) and line.split()[-2:] == [f"{metrics[name]['recall@10']:.4f}", f"{metrics[name]['recall@100']:.4f}"]
    assert metrics["two-tower"]["recall@10"] > metrics["popularity"]["recall@10"]
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # loss and recall@k per epoch
    assert sr.load_schema(out / "schema.yaml").column_names == sr.load_schema("schemas/synthetic.yaml").column_names
    model = sr.load_model(out / "model.keras")
    assert model.candidate_id_column == "item_id"
    assert (type(model.optimizer), model.optimizer.ema_momentum) == (sr.AveragedAdam, 0.9995)  # the measured one
    # the serving export leaves out each user's training items, still k of them
    schema = sr.load_schema("schemas/synthetic.yaml")
    frame = sr.data.synthetic(schema, ROWS, seed=0)
    train, test = sr.data.random_split(frame, 0.2, seed=0)  # as the CLI splits
    excluded = model.evaluate_topk(test, sr.data.Catalog.from_interactions(frame, schema), ks=[10, 100], exclude=train)
    assert metrics["two-tower, seen excluded"]["recall@10"] == pytest.approx(excluded["recall@10"])
    assert json.loads((out / "serving" / "serving.json").read_text())["exclude_seen"] is True
    users = train["user_id"].value_counts().index[:3].to_numpy()
    rows = pd.read_parquet(out / "serving" / "users.parquet").set_index("user_id").loc[users].reset_index()
    unfiltered = serving.recommend(model, rows, k=100, catalog=sr.data.Catalog.from_interactions(frame, schema))[1]
    for user, before in zip(users, unfiltered):
        seen = set(train.loc[train["user_id"] == user, "item_id"])
        items = [item for item, _ in serving.recommend_from_export(out, user, 100)]
        assert len(items) == 100 and not set(items) & seen
        assert set(before) & seen  # what a model trained on them would otherwise recommend


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--schema", "--data", "--synthetic", "--valid", "--epochs", "--batch-size", "--learning-rate",
                   "--ema-momentum", "--out", "example:"):
        assert option in text


def test_a_bad_schema_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  item_id: {tags: [itme_id], dtype: int64}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--schema", str(bad), "--synthetic", "100", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("schemaretrieval train: error: ")
    assert "bad.yaml" in error and "'item_id'" in error and "'itme_id'" in error
    # a check when the model is built, after loading, named '<schema>': the command names the file
    raw = tmp_path / "nodomain.yaml"
    raw.write_text("columns:\n  user_id: {tags: [user_id, categorical], dtype: int64}\n"
                   "  item_id: {tags: [item_id, categorical], dtype: int64, domain: {min: 0, max: 9}}\n")
    pd.DataFrame({"user_id": [1, 3, 5], "item_id": [2, 4, 6]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(SystemExit):
        main(["train", "--schema", str(raw), "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "o")])
    assert capsys.readouterr().err.startswith(f"schemaretrieval train: error: {raw}: column 'user_id', key 'domain': "
                                              "categorical column without a domain max")


@pytest.mark.parametrize("momentum", ["1.5", "-0.1"])
def test_a_bad_ema_momentum_is_named_before_training(tmp_path, capsys, momentum):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "500", "--ema-momentum", momentum,
              "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert f"argument --ema-momentum: expected a finite number >= 0 and <= 1, got '{momentum}'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "model.keras").exists()


def test_data_and_synthetic_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--schema", "schemas/synthetic.yaml", "--data", "x.parquet", "--synthetic", "10", "--out", "o"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_train_with_early_stopping_watches_a_split_of_the_training_data(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "4000", "--epochs", "20", "--batch-size", "256",
          "--learning-rate", "0.01", "--early-stopping", "1", "--validation-fraction", "0.2", "--ks", "10,100",
          "--no-export", "--out", str(out)])
    log = pd.read_csv(out / "training.csv")
    watched = log["early_stopping_recall@10"].to_numpy()
    # patience 1: the run ends one epoch after its best, well before --epochs
    assert len(log) == int(watched.argmax()) + 2 < 20
    assert "stopping" in capsys.readouterr().out
    assert "val_recall@10" in log  # the test data is logged, not watched


def test_train_with_user_history_saves_the_history_in_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "4000", "--epochs", "1", "--batch-size", "256",
          "--user-history", "--no-export", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["two-tower"]["recall@10"] <= 1.0
    history = sr.load_model(out / "model.keras").query_tower.history
    assert history is not None and history.has_interactions()
    frame = sr.data.synthetic(sr.load_schema("schemas/synthetic.yaml"), 4000, seed=0)
    train, _ = sr.data.random_split(frame, 0.2, seed=0)  # as the CLI splits: the history is the training part's
    expected = sr.layers.history.history_table(train["user_id"], train["item_id"], history.num_users, history.max_length)
    np.testing.assert_array_equal(np.asarray(history.items), expected)
