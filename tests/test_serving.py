"""Serving export: the SavedModel answers in a process without schemaretrieval,
the same top-k as the library's own path; vocabularies, exclusions, bad input."""

import json
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import schemaretrieval as sr
from schemaretrieval import serving
from schemaretrieval.index import BruteForce

K = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    schema = sr.load_schema("schemas/synthetic.yaml")
    interactions = sr.data.synthetic(schema, 3000, seed=0)
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer="adam")
    model.fit(interactions, batch_size=512, epochs=1, verbose=0)
    catalog = sr.data.candidate_table(interactions, schema)
    users = interactions.drop_duplicates("user_id", keep="last").reset_index(drop=True)
    root = tmp_path_factory.mktemp("export")
    plain = serving.export_serving(model, catalog, root / "plain", k=K, users=interactions)
    vocab = {
        "user_id": {f"u{i}": i for i in range(2000)},
        "item_id": serving.Vocabulary([f"i{i}" for i in range(3000)], np.arange(3000), oov=0),
    }
    raw = serving.export_serving(model, catalog, root / "raw", k=K, workflow=vocab)
    return model, catalog, users, plain, raw


def library_topk(model, catalog, users, k=K, exclude=None):
    index = BruteForce().index(model.candidate_embeddings(catalog), catalog["item_id"].to_numpy())
    return index.search(model.query_embeddings(users), k, exclude=exclude)


def test_saved_model_in_a_process_without_the_library_matches_the_library(setup, tmp_path):
    model, catalog, users, plain, raw = setup
    users = users.iloc[:20]
    exclude = [catalog["item_id"].to_numpy()[i : i + 3] for i in range(20)]
    exclude[0] = library_topk(model, catalog, users.iloc[:1])[1][0, :3]  # its own best items
    exclude[1] = np.array([exclude[1][0], -1, -1])  # padding
    np.savez(tmp_path / "in.npz", user_id=users.user_id.to_numpy(), user_age=users.user_age.to_numpy("float32"),
             user_country=users.user_country.to_numpy(), excluded=np.stack(exclude))
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        x = np.load({str(tmp_path / 'in.npz')!r})
        loaded = tf.saved_model.load({str(plain)!r})
        feats = dict(user_id=tf.constant(x["user_id"]), user_age=tf.constant(x["user_age"]),
                     user_country=tf.constant(x["user_country"]))
        out = loaded.signatures["serving_default"](**feats)
        ex = loaded.signatures["recommend"](**feats, excluded=tf.constant(x["excluded"]), k=tf.constant(7))
        raw = tf.saved_model.load({str(raw)!r})
        r = raw.signatures["serving_default"](user_id=tf.constant(["u%d" % u for u in x["user_id"]] + ["nobody"]),
            user_age=tf.constant(np.append(x["user_age"], 0.5).astype("float32")),
            user_country=tf.constant(np.append(x["user_country"], 1)))
        tower = tf.saved_model.load({str(plain / 'query_tower')!r}).signatures["serving_default"](**feats)
        assert not [m for m in sys.modules if m.startswith("schemaretrieval")]
        np.savez({str(tmp_path / 'out.npz')!r}, ids=out["ids"].numpy(), scores=out["scores"].numpy(),
                 ex_ids=ex["ids"].numpy(), raw_ids=r["ids"].numpy().astype(str), raw_scores=r["scores"].numpy(),
                 emb=tower["embedding"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    out = np.load(tmp_path / "out.npz")
    scores, ids = library_topk(model, catalog, users)
    np.testing.assert_array_equal(out["ids"], ids)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-4, atol=1e-5)
    _, ex_ids = library_topk(model, catalog, users, k=7, exclude=exclude)
    np.testing.assert_array_equal(out["ex_ids"], ex_ids)
    assert not set(out["ex_ids"][0]) & set(exclude[0])
    # raw string ids through the vocabulary; an unknown user is OOV (code 2) and still gets k items
    np.testing.assert_array_equal(out["raw_ids"][:20], np.char.add("i", ids.astype(str)))
    assert out["raw_ids"].shape == (21, K)
    oov = pd.DataFrame({"user_id": [2], "user_age": [0.5], "user_country": [1]})
    np.testing.assert_array_equal(out["raw_ids"][20], np.char.add("i", library_topk(model, catalog, oov)[1][0].astype(str)))
    np.testing.assert_allclose(out["emb"], model.query_embeddings(users), rtol=1e-4, atol=1e-5)


def test_export_writes_embeddings_users_and_metadata(setup):
    model, catalog, users, plain, raw = setup
    emb = pd.read_parquet(plain / "candidate_embeddings.parquet")
    assert list(emb.columns) == ["id", "vector"] and len(emb) == len(catalog)
    np.testing.assert_allclose(np.stack(emb["vector"]), model.candidate_embeddings(catalog), rtol=1e-5, atol=1e-6)
    assert pd.read_parquet(raw / "candidate_embeddings.parquet")["id"].iloc[0] == f"i{catalog.item_id.iloc[0]}"
    assert set(pd.read_parquet(plain / "users.parquet").columns) == {"user_id", "user_age", "user_country"}
    meta = json.loads((plain / "serving.json").read_text())
    assert meta["catalog_size"] == len(catalog) and meta["k"] == K
    assert {f["name"]: f["dtype"] for f in json.loads((raw / "serving.json").read_text())["features"]}["user_id"] == "string"


def test_bad_requests_to_the_saved_model_say_what_is_wrong(setup):
    _, catalog, _, plain, _ = setup
    loaded = tf.saved_model.load(str(plain))
    feats = dict(user_id=tf.constant([5000], tf.int64), user_age=tf.constant([0.1]), user_country=tf.constant([1], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"user_id: ids must be in \[0, 1999\], the domain of the schema; got\] \[5000\]"):
        loaded.signatures["serving_default"](**feats)
    feats["user_id"] = tf.constant([5], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"catalog size {len(catalog)}"):
        loaded.signatures["recommend"](**feats, excluded=tf.zeros([1, 0], tf.int64), k=tf.constant(len(catalog) + 1))
    del feats["user_age"]
    with pytest.raises(TypeError, match="user_age"):
        loaded.signatures["serving_default"](**feats)


def test_recommend_in_python(setup):
    model, catalog, users, _, _ = setup
    scores, ids = model.recommend(users.iloc[:3], k=5, candidates=catalog)
    np.testing.assert_array_equal(ids, library_topk(model, catalog, users.iloc[:3], k=5)[1])
    one = {"user_id": 3, "user_age": 0.2, "user_country": 4}
    assert serving.recommend(model, one, k=5, candidates=catalog)[1].shape == (1, 5)
    with pytest.raises(ValueError, match=r"lacks the query feature\(s\) \['user_age'\]"):
        model.recommend({"user_id": [1], "user_country": [1]}, k=5, candidates=catalog)
    with pytest.raises(ValueError, match=f"catalog size {len(catalog)}"):
        model.recommend(users.iloc[:1], k=len(catalog) + 1, candidates=catalog)
    with pytest.raises(ValueError, match=r"user_id.*5000.*\[0, 1999\]"):
        model.recommend({**one, "user_id": 5000}, k=5, candidates=catalog)


def test_cli_recommend_and_similar_items(setup, tmp_path, capsys):
    from schemaretrieval import cli

    model, catalog, users, plain, raw = setup
    run = tmp_path / "run"
    run.mkdir()
    (run / "serving").symlink_to(plain)  # what `train --out run` writes
    user = users.iloc[0]
    assert cli.main(["recommend", "--model", str(run), "--user", str(user.user_id), "-k", "5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    want = library_topk(model, catalog, users.iloc[:1], k=5)[1][0]
    assert [int(line.split()[1]) for line in printed[1:]] == want.tolist()
    # excluded ids are left out, k still returned
    items = serving.recommend_from_export(plain, user.user_id, 5, exclude=[str(want[0])])
    assert [i for i, _ in items] == library_topk(model, catalog, users.iloc[:1], k=6)[1][0][1:].tolist()
    # raw ids through the vocabulary; an unknown one is OOV and still gets k items
    assert len(serving.recommend_from_export(raw, "u7", 4)) == 4
    assert len(serving.recommend_from_export(raw, "somebody-new", 4)) == 4
    # bad input: the message and exit 2
    for argv, message in [
        (["recommend", "--model", str(plain), "--user", "5000"], r"unknown user id '5000': user_id takes ids in \[0, 1999\]"),
        (["recommend", "--model", str(plain), "--user", "1", "-k", "99999"], f"catalog size {len(catalog)}"),
        (["recommend", "--model", str(tmp_path), "--user", "1"], "holds no export"),
        (["similar-items", "--model", str(plain), "--item", "nope"], f"unknown item id 'nope': not among the {len(catalog)} items"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert re.search(message, capsys.readouterr().err), message
    item = catalog.item_id.iloc[3]
    assert cli.main(["similar-items", "--model", str(plain), "--item", str(item), "-k", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    vectors = model.candidate_embeddings(catalog)
    scores = vectors @ vectors[3]
    scores[3] = -np.inf
    assert [int(line.split()[1]) for line in printed[1:]] == catalog.item_id.to_numpy()[np.argsort(-scores)[:3]].tolist()
