"""`schemaretrieval evaluate` and exclusions: models and baselines side by side."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval.cli import main

SCHEMA = "schemas/synthetic.yaml"
N, SEED = 4000, 0


@pytest.fixture(scope="module")
def split():
    schema = sr.load_schema(SCHEMA)
    frame = sr.data.synthetic(schema, N, seed=SEED)
    train, test = sr.data.random_split(frame, 0.2, seed=SEED)  # as the CLI splits
    return schema, frame, train, test


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, split):
    schema, _, train, _ = split
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(train, batch_size=512, epochs=1, verbose=0)
    out = tmp_path_factory.mktemp("run")
    model.save(out / "model.keras")
    sr.save_schema(schema, out / "schema.yaml")
    return out, model


def test_one_exclusion_type_for_the_model_and_the_baselines(split, model_dir):
    schema, frame, train, test = split
    _, model = model_dir
    catalog = sr.data.Catalog.from_interactions(frame, schema)
    seen = sr.data.Exclusions.from_interactions(train, "user_id", "item_id")
    excluded = model.evaluate_topk(test, catalog, ks=[10], exclude=seen)
    assert excluded == model.evaluate_topk(test, catalog, ks=[10], exclude=train)
    assert excluded != model.evaluate_topk(test, catalog, ks=[10])
    for fitted in (sr.baselines.Popularity().fit(train, "user_id", "item_id"),
                   sr.baselines.EASE(100.0).fit(train, "user_id", "item_id")):
        assert (fitted.evaluate_topk(test, candidate_ids=catalog.ids, ks=[10], exclude=seen)
                == fitted.evaluate_topk(test, candidate_ids=catalog.ids, ks=[10], exclude=train))
        _, ids = fitted.recommend(test["user_id"][:5], k=3, candidate_ids=catalog.ids, exclude=seen)
        for user, row in zip(test["user_id"][:5], ids):
            assert not set(row) & set(train.loc[train["user_id"] == user, "item_id"])


def test_evaluate_model_and_baselines_writes_table_and_plot(split, model_dir, tmp_path, capsys):
    schema, frame, train, test = split
    out = tmp_path / "report"
    main(["evaluate", "--model", str(model_dir[0]), "--synthetic", str(N), "--seed", str(SEED),
          "--baseline", "popularity", "--baseline", "ease", "--exclude-seen", "--out", str(out)])
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.startswith(("two-tower", "popularity", "ease"))}
    assert set(rows) == {"two-tower", "popularity", "ease"}
    curves = pd.read_csv(out / "recall_at_k.csv", index_col="k")
    assert list(curves.index) == list(range(1, 101))
    assert list(curves.columns) == ["two-tower", "popularity", "ease"]
    assert (curves.diff().dropna() >= 0).all().all()  # recall@k never falls with k
    catalog = sr.data.Catalog.from_interactions(frame, schema)
    expected = model_dir[1].evaluate_topk(test, catalog, ks=[10, 100], exclude=train)
    assert rows["two-tower"][0] == f"{expected['recall@10']:.4f}"
    assert curves.loc[100, "two-tower"] == pytest.approx(expected["recall@100"], abs=1e-6)
    popularity = sr.baselines.Popularity().fit(train, "user_id", "item_id")
    assert curves.loc[10, "popularity"] == pytest.approx(popularity.evaluate_topk(
        test, candidate_ids=catalog.ids, ks=[10], exclude=train)["recall@10"], abs=1e-6)
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "evaluate.json").read_text())
    assert summary["exclude_seen"] is True and summary["num_test"] == len(test)


def test_evaluate_baselines_alone_on_a_table(split, tmp_path, capsys):
    _, frame, _, _ = split
    path = tmp_path / "interactions.parquet"
    frame.drop(columns=["item_tags"]).to_parquet(path)
    schema_path = tmp_path / "schema.yaml"
    schema = sr.load_schema(SCHEMA)
    sr.save_schema(schema.excluding_by_name(["item_tags"]), schema_path)
    main(["evaluate", "--schema", str(schema_path), "--data", str(path), "--baseline", "popularity", "--ks", "5,50"])
    printed = capsys.readouterr().out
    assert printed.splitlines()[-2].split() == ["recall@5", "recall@50"]
    assert printed.splitlines()[-1].startswith("popularity")


def test_evaluate_needs_a_model_or_a_baseline(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--schema", SCHEMA, "--synthetic", "100"])
    assert exit_info.value.code == 2
    assert "--baseline" in capsys.readouterr().err


def test_a_model_directory_that_is_not_one_names_the_option(tmp_path, capsys):
    # was: "[Errno 20] Not a directory: 'afile/schema.yaml'", naming no option
    (tmp_path / "afile").write_text("")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "schema.yaml").write_text("")
    for folder, what in (("afile", "is not a directory"), ("nope", "is not a directory"), ("half", "lacks model.keras")):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "--model", str(tmp_path / folder), "--synthetic", "100"])
        assert exit_info.value.code == 2
        assert f"--model {tmp_path / folder}: {what}; give a directory written by `schemaretrieval train --out`" in \
            capsys.readouterr().err
