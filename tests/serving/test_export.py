"""Serving export: the SavedModel answers in a process without schemaretrieval,
the same top-k as the library's own path; vocabularies, exclusions, bad input;
an export from the ETL's artifacts takes raw ids and raw continuous values."""

import json
import re
import select
import shutil
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
from schemaretrieval.etl import Vocabulary
from schemaretrieval.etl.artifacts import read_artifacts
from schemaretrieval.schema import OOV_INDEX, schema_from_dict
from schemaretrieval.serving.indexes import BruteForce

K = 10


# The Python that `without_the_library` runs scripts in: it replies on a copy of its
# stdout and sends the scripts' own prints to stderr, so that they never mix.
WORKER = r"""
import json, os, sys, traceback
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import numpy as np, tensorflow as tf
for line in sys.stdin:
    job = json.loads(line)
    try:
        scope = {"sys": sys, "np": np, "tf": tf, "x": np.load(job["in"]), "out": {}}
        exec(job["script"], scope)
        imported = [m for m in sys.modules if m.startswith("schemaretrieval")]
        assert not imported, f"this process (it serves every script) has imported {imported}"
        np.savez(job["out"], **scope["out"])
        reply.write(json.dumps(None) + "\n")
    except BaseException:
        reply.write(json.dumps(traceback.format_exc()) + "\n")
    reply.flush()
"""


@pytest.fixture(scope="module")
def without_the_library(tmp_path_factory):
    """``without_the_library(tmp_path, script, **arrays)`` runs ``script`` in a Python
    that never imports schemaretrieval: one process for the module's scripts, so that
    TensorFlow's import (seconds) is paid once.

    The script has ``np``, ``tf``, the ``arrays`` as ``x`` and a dict ``out``
    of arrays to hand back; returns ``out``.
    """
    log = tmp_path_factory.mktemp("without-the-library") / "stderr.txt"
    with open(log, "w") as stderr:
        worker = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)

    def run(tmp_path, script, **arrays):
        np.savez(tmp_path / "in.npz", **arrays)
        job = {"script": textwrap.dedent(script), "in": str(tmp_path / "in.npz"), "out": str(tmp_path / "out.npz")}
        worker.stdin.write(json.dumps(job) + "\n")
        worker.stdin.flush()
        if not select.select([worker.stdout], [], [], 120)[0]:
            raise TimeoutError(f"the script took over 120 s; its process's stderr: {log}")
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"the process ended (exit code {worker.wait()}): {log.read_text()[-3000:]}")
        error = json.loads(line)
        assert error is None, error
        return np.load(tmp_path / "out.npz")

    yield run
    worker.stdin.close()
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def setup_vocab():
    return {
        # code 2 is left to unknown users (NVTabular's OOV id)
        "user_id": {f"u{i}": i for i in range(2000) if i != OOV_INDEX},
        "item_id": Vocabulary([f"i{i}" for i in range(3000)], np.arange(3000), oov=0),
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    schema = sr.load_schema("schemas/synthetic.yaml")
    interactions = sr.data.synthetic(schema, 3000, seed=0)
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema)
    model.compile(optimizer="adam")
    model.fit(interactions, batch_size=512, epochs=1, verbose=0)
    catalog = sr.data.Catalog.from_interactions(interactions, schema)
    users = interactions.drop_duplicates("user_id", keep="last").reset_index(drop=True)
    root = tmp_path_factory.mktemp("export")
    plain = serving.export_serving(model, catalog, root / "plain", k=K, users=interactions)
    known = users[users.user_id != OOV_INDEX]  # the vocabulary leaves the OOV code to unknown users
    raw = serving.export_serving(model, catalog, root / "raw", k=K, artifacts=setup_vocab(), users=known)
    return model, catalog, users, plain, raw


def library_topk(model, catalog, users, k=K, exclude=None):
    index = BruteForce().index(model.candidate_embeddings(catalog), catalog.ids)
    return index.search(model.query_embeddings(users), k, exclude=exclude)


def test_saved_model_in_a_process_without_the_library_matches_the_library(without_the_library, setup, tmp_path):
    model, catalog, users, plain, raw = setup
    users = users.iloc[:20]
    exclude = [catalog.ids[i : i + 3] for i in range(20)]
    exclude[0] = library_topk(model, catalog, users.iloc[:1])[1][0, :3]  # its own best items
    exclude[1] = np.array([exclude[1][0], -1, -1])  # padding
    out = without_the_library(tmp_path, f"""
        loaded = tf.saved_model.load({str(plain)!r})
        feats = dict(user_id=tf.constant(x["user_id"]), user_age=tf.constant(x["user_age"]),
                     user_country=tf.constant(x["user_country"]))
        top = loaded.signatures["serving_default"](**feats)
        ex = loaded.signatures["recommend"](**feats, excluded=tf.constant(x["excluded"]), k=tf.constant(7))
        raw = tf.saved_model.load({str(raw)!r})
        r = raw.signatures["serving_default"](user_id=tf.constant(["u%d" % u for u in x["user_id"]] + ["nobody"]),
            user_age=tf.constant(np.append(x["user_age"], 0.5).astype("float32")),
            user_country=tf.constant(np.append(x["user_country"], 1)))
        tower = tf.saved_model.load({str(plain / 'query_tower')!r}).signatures["serving_default"](**feats)
        out.update(ids=top["ids"].numpy(), scores=top["scores"].numpy(), ex_ids=ex["ids"].numpy(),
                   raw_ids=r["ids"].numpy().astype(str), raw_scores=r["scores"].numpy(), emb=tower["embedding"].numpy())
    """, user_id=users.user_id.to_numpy(), user_age=users.user_age.to_numpy("float32"),
        user_country=users.user_country.to_numpy(), excluded=np.stack(exclude))
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
    assert pd.read_parquet(raw / "candidate_embeddings.parquet")["id"].iloc[0] == f"i{catalog.ids[0]}"
    assert set(pd.read_parquet(plain / "users.parquet").columns) == {"user_id", "user_age", "user_country"}
    meta = json.loads((plain / "serving.json").read_text())
    assert meta["catalog_size"] == len(catalog) and meta["k"] == K
    assert meta["exclude_seen"] is False  # exported without exclude=
    assert {f["name"]: f["dtype"] for f in json.loads((raw / "serving.json").read_text())["features"]}["user_id"] == "string"


def test_the_default_signature_declares_k_results_and_recommend_any_k(setup):
    signatures = tf.saved_model.load(str(setup[3])).signatures
    for name in ("ids", "scores"):
        assert signatures["serving_default"].structured_outputs[name].shape.as_list() == [None, K]
        assert signatures["recommend"].structured_outputs[name].shape.as_list() == [None, None]


def test_bad_requests_to_the_saved_model_say_what_is_wrong(setup):
    _, catalog, _, plain, _ = setup
    loaded = tf.saved_model.load(str(plain))
    feats = dict(user_id=tf.constant([5000], tf.int64), user_age=tf.constant([0.1]), user_country=tf.constant([1], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"column user_id: ids outside the schema domain \[0, 1999\].*offending ids:\] \[5000\]"):
        loaded.signatures["serving_default"](**feats)
    feats["user_id"] = tf.constant([5], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"catalog size {len(catalog)}"):
        loaded.signatures["recommend"](**feats, excluded=tf.zeros([1, 0], tf.int64), k=tf.constant(len(catalog) + 1))
    # finite, but too large for float32: the tower's unit normalisation would return zeros and rank
    # the catalog in its stored order; the error names the row and the continuous inputs
    huge = dict(feats, user_id=tf.constant([5, 6], tf.int64), user_age=tf.constant([1e20, 0.4]),
                user_country=tf.constant([1, 2], tf.int64))
    for signature in ("serving_default", "query_embedding"):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"the query tower output is not a usable vector.*\(user_age\).*in rows:\] \[0\]"):
            loaded.signatures[signature](**huge)
    assert loaded.signatures["serving_default"](**dict(huge, user_age=tf.constant([1e15, 0.4])))["ids"].shape == (2, K)
    del feats["user_age"]
    with pytest.raises(TypeError, match="user_age"):
        loaded.signatures["serving_default"](**feats)


def test_recommend_in_python(setup):
    model, catalog, users, _, _ = setup
    scores, ids = serving.recommend(model, users.iloc[:3], k=5, catalog=catalog)
    np.testing.assert_array_equal(ids, library_topk(model, catalog, users.iloc[:3], k=5)[1])
    one = {"user_id": 3, "user_age": 0.2, "user_country": 4}
    assert serving.recommend(model, one, k=5, catalog=catalog)[1].shape == (1, 5)
    with pytest.raises(ValueError, match=r"lacks the query feature\(s\) \['user_age'\]"):
        serving.recommend(model, {"user_id": [1], "user_country": [1]}, k=5, catalog=catalog)
    with pytest.raises(ValueError, match=f"catalog size {len(catalog)}"):
        serving.recommend(model, users.iloc[:1], k=len(catalog) + 1, catalog=catalog)
    # finite but too large for float32: the SavedModel's error, in Python
    with pytest.raises(ValueError, match=r"recommend: the query tower output is not a usable vector .*"
                                         r"\(user_age\) .*; in rows \[1\]"):
        serving.recommend(model, {"user_id": [3, 4], "user_age": [0.2, 1e20], "user_country": [4, 4]}, k=5,
                          catalog=catalog)
    with pytest.raises(ValueError, match=r"user_id.*5000.*\[0, 1999\]"):
        serving.recommend(model, {**one, "user_id": 5000}, k=5, catalog=catalog)


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
    assert len(serving.recommend_from_export(raw, f"u{users.user_id.iloc[0]}", 4)) == 4
    with pytest.warns(UserWarning, match=r"user 'somebody-new' has no row in .*users.parquet: \['user_age', "
                                         r"'user_country'\] take default values"):
        assert len(serving.recommend_from_export(raw, "somebody-new", 4)) == 4
    # was: an export without users.parquet ranked with user_age 0 and user_country 0, saying nothing
    # (the export as export_serving writes it without users=: no users.parquet, "users": false)
    bare = tmp_path / "raw-without-users"
    shutil.copytree(raw, bare)
    (bare / "users.parquet").unlink()
    meta = json.loads((bare / "serving.json").read_text())
    (bare / "serving.json").write_text(json.dumps({**meta, "users": False}))
    with pytest.raises(ValueError, match=r"user 'u7': the query tower also reads \['user_age', 'user_country'\], "
                                         r"and the export has no users.parquet"):
        serving.recommend_from_export(bare, "u7", 4)
    # bad input: the message and exit 2
    for argv, message in [
        (["recommend", "--model", str(plain), "--user", "5000"], r"unknown user id '5000': user_id takes ids in \[0, 1999\]"),
        (["recommend", "--model", str(plain), "--user", "1", "-k", "99999"], f"catalog size {len(catalog)}"),
        (["recommend", "--model", str(tmp_path), "--user", "1"], "holds no export"),
        (["similar-items", "--model", str(plain), "--item", "nope"], f"unknown item id 'nope': not among the {len(catalog)} items"),
        (["recommend", "--model", str(plain), "--user", "1", "--exclude", "3,abc"],
         r"exclude: this export's item ids are integers; got 'abc'"),
        (["recommend", "--model", str(plain), "--user", "1", "--exclude", "1.5"],
         r"exclude: this export's item ids are integers; got '1.5'"),
        (["recommend", "--model", str(plain), "--user", "1", "--exclude", "99999999999999999999999"],
         r"exclude: item id '99999999999999999999999' is outside int64"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert re.search(message, capsys.readouterr().err), message
    # the same from Python, where a caller can also send the wrong types
    user_id = int(user.user_id)
    for kwargs, message in [
        ({"user": None}, r"user: expected one user id, an int or a str \(a raw id\), got None"),
        ({"user": 5.0}, r"user: expected one user id, .* got 5.0"),
        ({"user": [user_id]}, r"user: expected one user id, .* got \[\d+\]"),
        ({"user": user_id, "k": "3"}, r"k='3' must be an int in \[1, the catalog size"),
        ({"user": user_id, "exclude": "16"}, r"exclude: expected a list of item ids, got '16'"),
        ({"user": user_id, "exclude": [1.7, 2.2]}, r"exclude: expected item ids \(int or str\), got 1.7"),
        ({"user": user_id, "exclude": [None]}, r"exclude: expected item ids \(int or str\), got None"),
    ]:
        with pytest.raises(ValueError, match=message):
            serving.recommend_from_export(plain, **kwargs)
    with pytest.raises(ValueError, match=r"item: expected one item id, .* got 2.0"):
        serving.similar_items(plain, 2.0)
    with pytest.raises(ValueError, match=r"recommend: user_features must be a DataFrame or a mapping .* got a list"):
        serving.recommend(model, [{"user_id": 1, "user_age": 0.3, "user_country": 1}], k=3, catalog=catalog)
    item = catalog.ids[3]
    assert cli.main(["similar-items", "--model", str(plain), "--item", str(item), "-k", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    vectors = model.candidate_embeddings(catalog)
    scores = vectors @ vectors[3]
    scores[3] = -np.inf
    assert [int(line.split()[1]) for line in printed[1:]] == catalog.ids[np.argsort(-scores)[:3]].tolist()


def test_recommend_from_export_loads_an_export_once_and_checks_a_request_before_loading(setup, tmp_path, monkeypatch):
    model, catalog, users, plain, raw = setup
    copy = tmp_path / "export"
    shutil.copytree(plain, copy)
    loads = []
    real_load = tf.saved_model.load
    monkeypatch.setattr(tf.saved_model, "load", lambda path: loads.append(path) or real_load(path))
    user = int(users.user_id.iloc[0])
    first = serving.recommend_from_export(copy, user, 5)
    assert serving.recommend_from_export(copy / ".." / "export", user, 3) == first[:3]  # one path, spelled twice
    assert len(loads) == 1
    # a rewritten export (a new saved_model.pb) is loaded again, not served from the old one
    (copy / "saved_model.pb").touch()
    assert serving.recommend_from_export(copy, user, 5) == first
    assert len(loads) == 2
    # was: a malformed request loaded the SavedModel (seconds) before its k and exclude were read
    shutil.copytree(plain, tmp_path / "other")
    for kwargs in [{"k": 0}, {"exclude": "16"}, {"user": 5000, "k": 3}]:
        with pytest.raises(ValueError):
            serving.recommend_from_export(tmp_path / "other", **{"user": user, **kwargs})
    assert len(loads) == 2


# ------------------------------------------------------------------ seen items left out

# Ten items; each user's training items. User 2 has seen all but two (8, 9);
# user 5 is in the domain but has no training rows.
SEEN = {0: [0, 1, 2], 1: [3], 2: [0, 1, 2, 3, 4, 5, 6, 7], 3: [9], 4: [4, 5]}
SEEN_K = 4


@pytest.fixture(scope="module")
def seen_export(tmp_path_factory):
    """A model fit on the SEEN table, exported with exclude=train (int ids), and
    with exclude= and vocabularies whose OOV user id is 5 (raw ids)."""
    schema = schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 5}},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64", "domain": {"min": 0, "max": 9}},
    }})
    train = pd.DataFrame([(u, i) for u, items in SEEN.items() for i in items] * 4, columns=["user_id", "item_id"])
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    model.compile(optimizer="adam")
    model.fit(train, batch_size=8, epochs=2, verbose=0)
    root = tmp_path_factory.mktemp("seen")
    plain = serving.export_serving(model, None, root / "plain", k=SEEN_K, exclude=train)
    vocab = {
        "user_id": Vocabulary([f"u{u}" for u in range(5)], np.arange(5), oov=5),
        "item_id": [f"i{i}" for i in range(10)],
    }
    # rows under the OOV id (e.g. users below a frequency threshold) are not any one user's
    with_oov_rows = pd.concat([train, pd.DataFrame({"user_id": [5, 5], "item_id": [0, 8]})])
    raw = serving.export_serving(model, None, root / "raw", k=SEEN_K, artifacts=vocab, exclude=with_oov_rows)
    return model, train, plain, raw


def test_the_saved_model_leaves_out_each_users_training_items(seen_export, without_the_library, tmp_path):
    model, train, plain, raw = seen_export
    users = np.arange(6)
    out = without_the_library(tmp_path, f"""
        loaded = tf.saved_model.load({str(plain)!r})
        top = loaded.signatures["serving_default"](user_id=tf.constant(x["users"]))
        ex = loaded.signatures["recommend"](user_id=tf.constant(x["users"]), excluded=tf.constant(x["caller"]),
                                            k=tf.constant(2))
        raw = tf.saved_model.load({str(raw)!r}).signatures["serving_default"](
            user_id=tf.constant(["u0", "u1", "u2", "u3", "u4", "nobody"]))
        out.update(ids=top["ids"].numpy(), scores=top["scores"].numpy(), ex_ids=ex["ids"].numpy(),
                   raw_ids=raw["ids"].numpy().astype(str))
    """, users=users, caller=np.array([[8, -1], [8, 4], [-1, -1], [9, -1], [0, 3], [5, -1]]))
    assert out["ids"].shape == (6, SEEN_K)
    for user, items in SEEN.items():
        assert not set(out["ids"][user]) & set(items), user
    # the same ranking as the library's with the training items excluded (user 2 has only 2 left)
    known = pd.DataFrame({"user_id": [0, 1, 3, 4]})
    scores, ids = serving.recommend(model, known, k=SEEN_K, exclude=train)
    np.testing.assert_array_equal(out["ids"][[0, 1, 3, 4]], ids)
    np.testing.assert_allclose(out["scores"][[0, 1, 3, 4]], scores, rtol=1e-4, atol=1e-5)
    per_query = train.groupby("user_id").item_id.apply(list).loc[known.user_id].tolist()
    assert (serving.recommend(model, known, k=SEEN_K, exclude=per_query)[1] == ids).all()
    # one row of ids per query as an array too (was a TypeError naming only Exclusions and interactions)
    first = [sorted(items)[:1] for items in per_query]
    assert (serving.recommend(model, known, k=SEEN_K, exclude=np.array(first))[1] ==
            serving.recommend(model, known, k=SEEN_K, exclude=first)[1]).all()
    # fewer than k left: the left ones best first, then filled slots (id -1, score -inf)
    only = serving.recommend(model, {"user_id": 2}, k=2, exclude=train)[1][0]
    assert sorted(only) == [8, 9]
    np.testing.assert_array_equal(out["ids"][2], [*only, -1, -1])
    assert np.isneginf(out["scores"][2, 2:]).all() and np.isfinite(out["scores"][2, :2]).all()
    with pytest.raises(ValueError, match=r"query 0 excludes 8 of the catalog's 10 items, leaving 2 \(< k\)"):
        serving.recommend(model, {"user_id": 2}, k=SEEN_K, exclude=train)  # the library refuses instead
    # a user without training rows: the unfiltered top-k
    np.testing.assert_array_equal(out["ids"][5], serving.recommend(model, {"user_id": 5}, k=SEEN_K)[1][0])
    # the caller's excluded combine with the seen items
    caller = [[8], [8, 4], [], [9], [0, 3], [5]]  # -1 pads the graph's rows
    both = sr.data.Exclusions(np.concatenate([train.user_id, np.repeat(users, [len(c) for c in caller])]),
                              np.concatenate([train.item_id, np.concatenate(caller)]).astype(int))
    np.testing.assert_array_equal(out["ex_ids"], serving.recommend(model, pd.DataFrame({"user_id": users}), k=2,
                                                                   exclude=both)[1])
    # raw ids: the same items; the OOV user has seen nothing, though the table has rows under its id
    np.testing.assert_array_equal(out["raw_ids"][:2], np.char.add("i", out["ids"][:2].astype(str)))
    assert list(out["raw_ids"][2]) == [f"i{i}" for i in only] + ["", ""]
    np.testing.assert_array_equal(out["raw_ids"][5], np.char.add("i", out["ids"][5].astype(str)))


def test_serving_json_and_recommend_from_export_with_seen_items(seen_export, tmp_path, capsys):
    from schemaretrieval import cli

    model, _, plain, raw = seen_export
    meta = json.loads((plain / "serving.json").read_text())
    assert meta["exclude_seen"] is True and meta["seen_users"] == 5
    assert json.loads((raw / "serving.json").read_text())["seen_users"] == 5  # not the OOV id
    only_oov = serving.export_serving(model, None, tmp_path / "only-oov", k=2, exclude=pd.DataFrame(
        {"user_id": [5], "item_id": [0]}), artifacts={"user_id": Vocabulary(["u0"], [0], oov=5)})
    assert json.loads((only_oov / "serving.json").read_text())["seen_users"] == 0
    assert len(serving.recommend_from_export(only_oov, "u0", 2)) == 2
    want = serving.recommend(model, {"user_id": 0}, k=3, exclude=seen_export[1])[1][0]
    assert [i for i, _ in serving.recommend_from_export(plain, 0, 3)] == want.tolist()
    assert [i for i, _ in serving.recommend_from_export(raw, "u0", 3)] == [f"i{i}" for i in want]
    # with --exclude too; user 2 has two items left and gets two, not k
    assert cli.main(["recommend", "--model", str(plain), "--user", "0", "-k", "2", "--exclude", str(want[0])]) == 0
    assert [int(line.split()[1]) for line in capsys.readouterr().out.splitlines()[1:]] == want[1:3].tolist()
    assert sorted(i for i, _ in serving.recommend_from_export(plain, 2, SEEN_K)) == [8, 9]
    assert serving.recommend_from_export(plain, 2, SEEN_K, exclude=[8, 9]) == []


def test_exclusions_are_checked_before_anything_is_written(seen_export, tmp_path):
    model, train, plain, _ = seen_export
    with pytest.raises(ValueError, match=r"exclude= \(interactions: user id, item id\) needs column \['item_id'\]"):
        serving.export_serving(model, None, tmp_path / "x", k=2, exclude=train[["user_id"]])
    with pytest.raises(ValueError, match=r"exclude= holds object user ids; .* the encoded \(integer\) user id"):
        serving.export_serving(model, None, tmp_path / "x", k=2, exclude=train.assign(user_id="u" + train.user_id.astype(str)))
    with pytest.raises(ValueError, match="exclude has 1 entries for 2 queries"):
        serving.recommend(model, {"user_id": [0, 1]}, k=2, exclude=[[0]])
    assert not (tmp_path / "x").exists()
    # the graph looks seen items up by the user id: a query tower must read it
    schema = sr.load_schema("schemas/synthetic.yaml")
    no_id = sr.TwoTowerModelV2(sr.Encoder(schema.select_by_name(["user_age"]), sr.MLPBlock([4])),
                               sr.Encoder(schema.select_by_name(["item_id"]), sr.MLPBlock([4])), schema=schema)
    interactions = sr.data.synthetic(schema, 50, seed=0)
    with pytest.raises(ValueError, match=r"exclude= matches users by 'user_id', which the query tower does not read "
                                         r"\(it reads \['user_age'\]\)"):
        serving.export_serving(no_id, None, tmp_path / "x", k=2, exclude=interactions)


def test_export_options_are_checked_before_anything_is_written(setup, tmp_path):
    model, catalog, _, _, _ = setup
    # was: written, every feature "vocabulary: false"; a TypeError about paths; one about scalar indexes
    with pytest.raises(ValueError, match=r"artifacts has a vocabulary of 'usr_id' \(did you mean 'user_id'\?\), "
                                         r"a column the model does not read \(it reads user_id, "):
        serving.export_serving(model, catalog, tmp_path / "x", k=5, artifacts={"usr_id": ["a", "b"]})
    with pytest.raises(TypeError, match=r"artifacts must be None, an ETL output .* got list \['a'\]"):
        serving.export_serving(model, catalog, tmp_path / "x", k=5, artifacts=["a"])
    with pytest.raises(TypeError, match=r"index must be None \(exact\) or a TopKIndex .* got 'faiss'"):
        serving.export_serving(model, catalog, tmp_path / "x", k=5, index="faiss")
    assert not (tmp_path / "x").exists()
    # was: FileExistsError [Errno 17] after the embeddings were computed
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"path '.*file' is a file; expected a directory \(new or existing\)"):
        serving.export_serving(model, catalog, tmp_path / "file", k=5)


# ------------------------------------------------------------------ from the ETL's output

AGE_STEPS = [{"fill_missing": 30}, {"clip": {"min": 18, "max": 65}}, "normalize"]
SPEND_STEPS = [{"fill_missing": "median"}, "log", "normalize_minmax"]


@pytest.fixture(scope="module")
def etl_export(tmp_path_factory):
    """Raw interactions (string ids, raw continuous user features with gaps) ->
    `etl.fit_transform` -> a model trained on its output -> `export_serving(artifacts=)`."""
    rng = np.random.default_rng(0)
    n_users, n = 40, 400
    age = rng.integers(14, 80, n_users).astype("float64")  # some below and above the clip
    age[3] = np.nan
    spend = rng.exponential(40.0, n_users)
    spend[5] = np.nan
    users = rng.integers(0, n_users, n)
    raw = pd.DataFrame({
        "user_id": [f"u{u}" for u in users],
        "user_age": age[users],
        "user_spend": spend[users],
        "item_id": [f"i{i}" for i in rng.integers(0, 50, n)],
        "timestamp": rng.integers(1_600_000_000, 1_700_000_000, n),
    })
    schema = schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "string"},
        "user_age": {"tags": ["user", "continuous"], "dtype": "float64", "transform": AGE_STEPS},
        "user_spend": {"tags": ["user", "continuous"], "dtype": "float64", "transform": SPEND_STEPS},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "string"},
        # derives timestamp_normalized, a user feature the graph cannot compute from raw inputs
        "timestamp": {"tags": ["time"], "dtype": "int64", "transform": ["normalize"]},
    }})
    root = tmp_path_factory.mktemp("etl-export")
    res = sr.etl.fit_transform(raw, None, schema, root / "etl", device="cpu")
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(res.schema.excluding_by_name(["timestamp_normalized"]),
                             query_units=(16,), candidate_units=(16,))
    model.compile(optimizer="adam")
    model.fit(res.train, batch_size=64, epochs=1, verbose=0)
    train = sr.data.read_table(res.train)
    catalog = sr.data.Catalog.from_interactions(train, model.schema)
    path = serving.export_serving(model, catalog, root / "export", k=K, artifacts=res, users=train)
    return raw, res, model, catalog, path


def test_export_from_the_etl_takes_raw_ids_and_raw_continuous_values(etl_export, without_the_library, tmp_path):
    raw, res, model, catalog, path = etl_export
    rows = raw.drop_duplicates("user_id").reset_index(drop=True)  # u3 has no age, u5 no spend
    assert rows.user_age.isna().any() and rows.user_spend.isna().any()
    assert ((rows.user_age < 18) | (rows.user_age > 65)).any()  # clipped
    nobody = {"user_id": "nobody", "user_age": np.nan, "user_spend": np.nan, "item_id": "i0", "timestamp": 0}
    rows = pd.concat([rows, pd.DataFrame([nobody])], ignore_index=True)
    out = without_the_library(tmp_path, f"""
        loaded = tf.saved_model.load({str(path)!r})
        feats = dict(user_id=tf.constant(x["user_id"]), user_age=tf.constant(x["user_age"]),
                     user_spend=tf.constant(x["user_spend"]))
        top = loaded.signatures["serving_default"](**feats)
        out.update(ids=top["ids"].numpy().astype(str), scores=top["scores"].numpy(),
                   emb=loaded.signatures["query_embedding"](**feats)["embedding"].numpy())
    """, user_id=rows.user_id.to_numpy(str), user_age=rows.user_age.to_numpy("float32"),
        user_spend=rows.user_spend.to_numpy("float32"))
    # the library's path: the ETL's own transform of the same raw rows, then the model
    encoded = sr.etl.transform(rows, res.out_dir, device="cpu")
    assert encoded.user_id.iloc[-1] == OOV_INDEX
    scores, ids = serving.recommend(model, encoded, k=K, catalog=catalog)
    item_ids = read_artifacts(res.out_dir).vocabularies["item_id"].decode(ids.ravel()).reshape(ids.shape)
    np.testing.assert_array_equal(out["ids"], item_ids.astype(str))
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["emb"], model.query_embeddings(encoded), rtol=1e-4, atol=1e-5)
    # the continuous inputs matter: raw values fed to the tower as they are give other embeddings
    untransformed = encoded.assign(user_age=rows.user_age.fillna(30).to_numpy("float32"))
    assert np.abs(model.query_embeddings(untransformed) - out["emb"]).max() > 1e-3
    # the CLI's path: users.parquet holds the encoded rows, found by the raw id
    row_of_u3 = rows.index[rows.user_id == "u3"][0]  # the user without an age
    assert [i for i, _ in serving.recommend_from_export(path, "u3", K)] == list(out["ids"][row_of_u3])
    assert "raw_user_id" in pd.read_parquet(path / "users.parquet").columns
    # without users.parquet the export has no features to give a user: an error, not made-up values
    bare = serving.export_serving(model, catalog, tmp_path / "bare", k=K, artifacts=res)
    with pytest.raises(ValueError, match=r"the query tower also reads \['user_age', 'user_spend'\], and the export "
                                         r"has no users.parquet"):
        serving.recommend_from_export(bare, "somebody-new", K)
    # with users.parquet, a user it has no row for is the OOV user whose continuous features are
    # missing, filled in the graph as the ETL fills them: the "nobody" row's items, and a warning
    with pytest.warns(UserWarning, match=r"\['user_age', 'user_spend'\] take default values"):
        assert [i for i, _ in serving.recommend_from_export(path, "somebody-new", K)] == list(out["ids"][-1])


def test_the_graph_replays_the_fitted_continuous_steps(etl_export):
    raw, res, model, catalog, path = etl_export
    transforms = read_artifacts(res.out_dir).continuous
    # the statistics by hand, on the raw training column
    age = np.clip(np.nan_to_num(raw.user_age.to_numpy(), nan=30.0), 18, 65)
    mean, std = age.mean(), age.std(ddof=1)
    median = np.nanmedian(raw.user_spend.to_numpy())
    logged = np.log1p(np.nan_to_num(raw.user_spend.to_numpy(), nan=median))
    low, high = logged.min(), logged.max()
    probe = np.array([40.0, np.nan, 10.0, 99.0, -5.0, 0.0])
    want = {
        "user_age": (np.clip(np.nan_to_num(probe, nan=30.0), 18, 65) - mean) / std,
        "user_spend": (np.log1p(np.maximum(np.nan_to_num(probe, nan=median), 0)) - low) / (high - low),
    }
    encoded = sr.data.read_table(res.train)
    for name in ("user_age", "user_spend"):
        got = transforms[name](tf.constant(probe, tf.float32)).numpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want[name], rtol=1e-5, atol=1e-6, err_msg=name)
        # and what the workflow's transform wrote for the training rows
        np.testing.assert_allclose(transforms[name](raw[name].to_numpy()).numpy(), encoded[name].to_numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    assert [s for s, _ in transforms["user_age"].steps] == ["fill_missing", "clip", "normalize"]
    assert transforms["user_age"].steps[2][1] == pytest.approx({"mean": mean, "std": std})
    assert transforms["user_spend"].steps[0][1] == pytest.approx({"value": median})
    # serving.json records what the graph applies
    features = {f["name"]: f for f in json.loads((path / "serving.json").read_text())["features"]}
    assert features["user_age"]["transform"][1] == ["clip", {"min": 18.0, "max": 65.0}]
    assert features["user_id"]["dtype"] == "string" and "transform" not in features["user_id"]


def test_export_refuses_a_query_column_the_graph_cannot_replay(etl_export, tmp_path):
    raw, res, model, catalog, path = etl_export
    needs_time = sr.TwoTowerModel(res.schema, query_units=(4,), candidate_units=(4,))
    assert "timestamp_normalized" in needs_time.query_tower.column_names
    with pytest.raises(ValueError, match=r"reads 'timestamp_normalized', but the ETL computes it from "
                                         r"'timestamp'.*export without artifacts="):
        serving.export_serving(needs_time, catalog, tmp_path / "time", k=K, artifacts=res)
    assert not (tmp_path / "time").exists()
    # a continuous step the graph does not know is named, not skipped
    unknown = sr.etl.ContinuousTransform("user_spend", (("square", {}),))
    with pytest.raises(ValueError, match="user_spend: unknown continuous step 'square'; expected one of fill_missing"):
        unknown(tf.constant([1.0]))


def test_a_query_vocabulary_must_leave_the_code_of_unknown_values_free(setup, tmp_path):
    model, catalog, *_ = setup
    # "b" and every unknown user would be served as one user
    with pytest.raises(ValueError, match=r"the vocabulary of 'user_id' gives 'b' code 2, the code of unknown values"):
        serving.export_serving(model, catalog, tmp_path / "x", k=K, artifacts={"user_id": {"a": 3, "b": 2}})
    with pytest.raises(ValueError, match=r"gives 'b' code 5"):
        serving.export_serving(model, catalog, tmp_path / "x", k=K,
                               artifacts={"user_id": Vocabulary(["a", "b"], [3, 5], oov=5)})
    assert not (tmp_path / "x").exists()
    # the item id's vocabulary only decodes: code 2 is an item like any other
    items = {"item_id": [f"i{i}" for i in range(3000)], "user_id": Vocabulary(["a"], [3], oov=2)}
    path = serving.export_serving(model, catalog, tmp_path / "ok", k=K, artifacts=items)
    ids = pd.read_parquet(path / "candidate_embeddings.parquet")["id"].tolist()
    assert ids == [f"i{i}" for i in catalog.ids] and "i2" in ids


def test_codes_with_no_raw_value_are_neither_served_items_nor_users(tmp_path, caplog):
    # Integer raw ids, as MovieLens has, and held-out rows whose users and items training did not see:
    # the ETL gives them code 2, whose text "2" is also a real user's and a real item's raw id.
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user_id": np.r_[2, rng.integers(1, 30, 399)], "item_id": np.r_[2, rng.integers(1, 40, 399)]})
    held_out = pd.DataFrame({"user_id": [500, 501, 3], "item_id": [3, 4, 900]})
    schema = schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
                                           "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"}}})
    res = sr.etl.fit_transform(train, held_out, schema, tmp_path / "etl", device="cpu")
    rows = pd.concat([sr.data.read_table(res.train), sr.data.read_table(res.valid)], ignore_index=True)
    assert (rows.user_id == OOV_INDEX).sum() == 2 and (rows.item_id == OOV_INDEX).sum() == 1
    keras.utils.set_random_seed(0)
    model = sr.TwoTowerModel(res.schema)
    model.compile(optimizer="adam")
    model.fit(res.train, batch_size=64, epochs=1, verbose=0)
    catalog = sr.data.Catalog.from_interactions(rows, res.schema)
    with caplog.at_level("WARNING", logger="schemaretrieval.serving"):
        path = serving.export_serving(model, catalog, tmp_path / "export", k=K, artifacts=res, users=rows)
    messages = [record.getMessage() for record in caplog.records]
    assert any("1 catalog item(s) are not served, code(s) [2]" in m for m in messages), messages
    assert any("users= has 1 id(s) with no raw value, code(s) [2]" in m for m in messages), messages
    # was: item "2" twice (the real one and the unknown items' code), and export failed on the duplicate
    served = pd.read_parquet(path / "candidate_embeddings.parquet")["id"].tolist()
    assert sorted(served, key=int) == [str(i) for i in sorted(train.item_id.unique())]
    users = pd.read_parquet(path / "users.parquet")
    assert not users.raw_user_id.duplicated().any()
    vocabularies = read_artifacts(res.artifacts_dir).vocabularies
    assert users.loc[users.raw_user_id == "2", "user_id"].tolist() == [vocabularies["user_id"].encode([2])[0]]
    # was: the client found the unknown users' row under "2" and answered with another user's features
    loaded = tf.saved_model.load(str(path))
    graph = [x.decode() for x in loaded.signatures["serving_default"](user_id=tf.constant(["2"]))["ids"].numpy()[0]]
    assert [item for item, _ in serving.recommend_from_export(path, 2, K)] == graph
    with pytest.raises(ValueError, match=r"Vocabulary.decode: code\(s\) \[2\] have no raw value"):
        vocabularies["item_id"].decode([OOV_INDEX])


def test_an_encoded_user_id_is_a_number_and_a_raw_one_utf8_text(setup):
    model, catalog, users, plain, raw = setup
    user = int(users.user_id.iloc[3])
    # was: "user '03' has no row in users.parquet" (matched as text), though the domain check read it as 3
    expected = serving.recommend_from_export(plain, user, 5)
    for text in (f"0{user}", f" {user}", f"+{user}"):
        assert serving.recommend_from_export(plain, text, 5) == expected
    # was: TensorFlow's "Unable to convert element to UTF-8", naming no argument (a command's non-UTF-8 bytes)
    with pytest.raises(ValueError, match=r"user: '\\udcff' is not UTF-8 text; raw ids are"):
        serving.recommend_from_export(raw, "\udcff", 5)
    with pytest.raises(ValueError, match=r"exclude: 'i\\udcff' is not UTF-8 text"):
        serving.recommend_from_export(raw, "u5", 5, exclude=["i\udcff"])
