"""The NVTabular ETL built from the schema: encodings, domains, OOV, bad data, Dask, model on the output."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import datasets, etl
from schemaretrieval.etl.options import check_transforms
from schemaretrieval.schema import OOV_INDEX, schema_from_dict

FIXTURES = "tests/fixtures"


@pytest.fixture(scope="module")
def raw():
    return datasets.movielens(f"{FIXTURES}/ml-100k")


@pytest.fixture(scope="module")
def schema():
    return sr.load_schema("schemas/movielens-100k.yaml")


@pytest.fixture(scope="module")
def processed(raw, schema, tmp_path_factory):
    train, valid = sr.data.random_split(raw, 0.25, seed=0)
    valid = valid.copy()
    valid.loc[0, "user_zip"] = "00000"            # unseen scalar value
    valid.at[1, "item_genres"] = ["Documentary-ish"]  # unseen list value
    out = tmp_path_factory.mktemp("etl")
    return train, valid, etl.fit_transform(train, valid, schema, out, device="cpu")


def _table(path):
    return sr.data.read_table(path)


def test_output_schema_loads_and_domains_cover_the_ids(processed):
    train, valid, res = processed
    for place in (res.out_dir, res.out_dir / "schema.yaml", res.train, res.valid):
        schema = sr.load_schema(place)
        assert schema == res.schema
    encoded = pd.concat([_table(res.train), _table(res.valid)])
    for col in res.schema.select_by_tag(sr.Tags.CATEGORICAL):
        values = encoded[col.name]
        flat = np.concatenate(values.to_numpy()) if col.is_list else values.to_numpy()
        domain = col.properties["domain"]
        assert domain["min"] == 0 and flat.min() >= 0 and flat.max() <= domain["max"], col.name
        assert values.dtype == object if col.is_list else values.dtype == np.int64
    # Categorify: 0 padding, 1 null, 2 OOV, the training vocabulary from 3
    n_users = train["user_id"].nunique()
    assert res.schema["user_id"].properties["domain"]["max"] == n_users + 2
    assert res.schema["user_age"].dtype.to_numpy == np.float32
    assert sr.schema.cardinality(res.schema["item_id"]) == train["item_id"].nunique() + 3


def test_tags_are_carried_by_the_workflow_itself(schema):
    wf = etl.build_workflow(schema)
    wf.fit_schema(schema)  # the output schema without data
    out = wf.output_schema
    assert sr.Tags.USER in out["user_id"].tags and sr.Tags.ID in out["user_id"].tags
    assert sr.Tags.ITEM in out["item_id"].tags and sr.Tags.CATEGORICAL in out["item_genres"].tags
    assert sr.Tags.TARGET in out["rating"].tags and sr.Tags.TIME in out["timestamp"].tags


def test_item_counts_and_report(processed):
    train, valid, res = processed
    counts = pd.read_parquet(res.out_dir / "artifacts" / "item_counts.parquet")
    assert len(counts) == sr.schema.cardinality(res.schema["item_id"])
    np.testing.assert_array_equal(sr.etl.read_artifacts(res.out_dir).item_counts, counts["count"])
    assert counts["count"].sum() == len(train) and counts["count"].iloc[:3].sum() == 0
    encoded = _table(res.train)
    np.testing.assert_array_equal(np.bincount(encoded["item_id"], minlength=len(counts)), counts["count"])
    np.testing.assert_array_equal(res.item_counts, counts["count"])
    # the most frequent raw item gets the largest count
    top_raw = train["item_id"].value_counts().max()
    assert counts["count"].max() == top_raw
    report = json.loads((res.out_dir / "etl_report.json").read_text())
    assert report["device"] == "cpu"
    assert report["train"]["rows"] == len(train) and report["valid"]["rows"] == len(valid)
    assert report["valid"]["oov"]["user_zip"] == 1 and report["valid"]["oov"]["item_genres"] == 1
    assert report["valid"]["oov"]["item_id"] == 0 and report["train"]["oov"]["user_zip"] == 0


def test_unseen_values_go_to_the_oov_id_at_transform(processed, caplog):
    train, valid, res = processed
    new = valid.head(3).copy()
    new["user_id"] = [10_000, new["user_id"].iloc[1], 10_001]
    with caplog.at_level(logging.WARNING, logger="schemaretrieval.etl"):
        frame = etl.transform(new, res.out_dir, device="cpu")
    assert frame["user_id"].iloc[0] == OOV_INDEX and frame["user_id"].iloc[2] == OOV_INDEX
    assert frame["user_id"].iloc[1] >= 3
    assert frame.attrs["oov"]["user_id"] == 2
    assert "user_id" in caplog.text and "OOV" in caplog.text
    # the same vocabulary as fit_transform: known rows encode identically
    same = _table(res.valid).head(3)
    assert list(frame["item_id"]) == list(same["item_id"])


def test_two_tower_model_trains_on_the_output(processed):
    _, _, res = processed
    schema = sr.load_schema(res.out_dir)
    model = sr.TwoTowerModel(schema, query_units=(8,), candidate_units=(8,))
    model.compile(optimizer="adam")
    model.fit(res.train, batch_size=16, epochs=1, verbose=0)
    train = _table(res.train)
    catalog = sr.data.Catalog.from_interactions(train, schema)
    metrics = model.evaluate_topk(_table(res.valid), catalog, ks=[5])
    assert 0.0 <= metrics["recall@5"] <= 1.0


def test_csv_and_parquet_inputs_give_the_same_output(raw, schema, tmp_path, processed):
    train, valid, res = processed
    csv = tmp_path / "train.csv"
    text = train.assign(item_genres=train["item_genres"].map("|".join))  # lists as 'A|B' in csv
    text.to_csv(csv, index=False)
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    train.iloc[:20].to_parquet(pq_dir / "part-0.parquet")
    train.iloc[20:].to_parquet(pq_dir / "part-1.parquet")
    expected = _table(res.train)
    for source in (csv, pq_dir):
        out = etl.fit_transform(source, None, schema, tmp_path / f"out-{source.name}", device="cpu")
        got = _table(out.train)
        pd.testing.assert_frame_equal(got.drop(columns="item_genres"), expected.drop(columns="item_genres"))
        assert [list(v) for v in got["item_genres"]] == [list(v) for v in expected["item_genres"]]
        assert out.valid is None


def _tiny_schema(transform=None, item_transform=None):
    columns = {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "string"},
        "price": {"tags": ["item", "continuous"], "dtype": "float32"},
    }
    if transform is not None:
        columns["price"]["transform"] = transform
    if item_transform is not None:
        columns["item_id"]["transform"] = item_transform
    return schema_from_dict({"columns": columns})


def test_continuous_steps_in_order(tmp_path):
    price = np.array([1.0, np.nan, 50.0, 1000.0, -3.0])
    frame = pd.DataFrame({"user_id": range(5), "item_id": list("abcde"), "price": price})
    spec = [{"fill_missing": 2.0}, {"clip": {"min": 0, "max": 100}}, "log", "normalize"]
    res = etl.fit_transform(frame, None, _tiny_schema(spec), tmp_path, device="cpu")
    got = _table(res.train)["price"].to_numpy()
    x = np.log1p(np.clip(np.nan_to_num(price, nan=2.0), 0, 100))
    expected = (x - x.mean()) / x.std(ddof=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert got.dtype == np.float32


def test_freq_threshold_and_max_size(tmp_path):
    items = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]
    frame = pd.DataFrame({"user_id": range(len(items)), "item_id": items, "price": 1.0})
    res = etl.fit_transform(frame, None, _tiny_schema(item_transform={"freq_threshold": 3}),
                            tmp_path / "f", device="cpu")
    ids = _table(res.train)["item_id"].to_numpy()
    assert len(set(ids[:8])) == 2 and (ids[:8] >= 3).all()        # a, b kept
    assert (ids[8:] == OOV_INDEX).all()                         # c, d rare
    assert res.report["train"]["oov"]["item_id"] == 3
    res = etl.fit_transform(frame, None, _tiny_schema(item_transform={"max_size": 4}),
                            tmp_path / "m", device="cpu")
    assert res.schema["item_id"].properties["domain"]["max"] == 3    # one kept value: ids 0..3


@pytest.mark.parametrize("spec, message", [
    ({"freq_treshold": 3}, "unknown option 'freq_treshold'"),
    ({"freq_threshold": 2, "max_size": 10}, "cannot be combined"),
    ({"max_size": -1}, "non-negative integer"),
    # was: ignored on a scalar column; "empty separator" / a TypeError in the run, naming no column
    ({"separator": "|"}, "separator splits the text of a list column, and 'item_id' is not one"),
    # was: ValueError: invalid literal for int() with base 10: 'a', from inside the run
    ({"kind": "passthrough"}, "passthrough keeps ids as the integers they are, and this column holds strings"),
    # was: RuntimeError: Failed to categorical encode column item_id, from inside the run
    ({"max_size": 3}, r"max_size must be at least num_buckets \+ 3"),
])
def test_bad_categorical_transform(spec, message):
    with pytest.raises(sr.SchemaError, match=message) as info:
        etl.build_workflow(_tiny_schema(item_transform=spec))
    assert info.value.column == "item_id"


@pytest.mark.parametrize("steps, message", [
    (["standardize"], "unknown step 'standardize'"),
    # was: every value 1.0; NaN bounds did nothing; NaN or inf written as the fill; arguments ignored
    ([{"clip": {"min": 5, "max": 1}}], "clip: min 5 is above max 1: every value would be 1"),
    ([{"clip": {"min": float("nan")}}], r"clip takes \{min: ..., max: ...\} of finite numbers, got \{'min': nan\}"),
    ([{"clip": {"min": "a"}}], "of finite numbers"),
    ([{"fill_missing": float("inf")}], "fill_missing takes a finite number or 'median', got inf"),
    ([{"log": "yes"}], "log takes no argument, got 'yes'"),
    ([{"normalize": {"mean": 3}}], r"normalize takes no argument, got \{'mean': 3\}"),
])
def test_bad_continuous_transform(steps, message):
    with pytest.raises(sr.SchemaError, match=message) as info:
        etl.build_workflow(_tiny_schema(steps))
    assert info.value.column == "price" and info.value.key == "transform"


def test_a_list_separator_must_be_a_non_empty_string():
    for separator in ("", 5):
        schema = sr.schema.schema_from_dict({"columns": {"genres": {
            "tags": ["item", "categorical", "list"], "dtype": "string", "transform": {"separator": separator}}}})
        with pytest.raises(sr.SchemaError, match=f"separator must be a non-empty string such as '\\|', got {separator!r}"):
            check_transforms(schema)


def test_a_freq_threshold_that_keeps_no_value_is_named(tmp_path):
    # was: RuntimeError: Failed to categorical encode column item_id (an IndexError inside NVTabular)
    frame = pd.DataFrame({"user_id": range(12), "item_id": list("aabbccddeeff"), "price": 1.0})
    with pytest.raises(etl.ETLError, match=r"<DataFrame>: column 'item_id': Categorify failed .* with transform "
                                           r"\{'freq_threshold': 1000, 'kind': 'categorify'\}; a freq_threshold above "
                                           r"every value's count keeps no value"):
        etl.fit_transform(frame, None, _tiny_schema(item_transform={"freq_threshold": 1000}), tmp_path / "f",
                          device="cpu")


def test_missing_column_names_it_and_the_file(tmp_path):
    path = tmp_path / "raw.csv"
    pd.DataFrame({"user_id": [1], "item_id": ["a"]}).to_csv(path, index=False)
    with pytest.raises(etl.ETLError, match=r"raw\.csv: column 'price'.*missing"):
        etl.fit_transform(path, None, _tiny_schema(), tmp_path / "out", device="cpu")


def test_uncastable_value_names_column_and_file(tmp_path):
    path = tmp_path / "raw.csv"
    pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "price": ["1.5", "cheap"]}).to_csv(path, index=False)
    with pytest.raises(etl.ETLError, match=r"raw\.csv: column 'price', row 1 \(line 3 .*expected a number, found text"):
        etl.fit_transform(path, None, _tiny_schema(), tmp_path / "out", device="cpu")


def test_empty_inputs(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("user_id,item_id,price\n")
    for path in (empty, header_only):
        with pytest.raises(etl.ETLError, match=rf"{path.name}: .*empty"):
            etl.fit_transform(path, None, _tiny_schema(), tmp_path / "out", device="cpu")
    with pytest.raises(etl.ETLError, match="<DataFrame>: the data is empty"):
        etl.fit_transform(pd.DataFrame({"user_id": [], "item_id": [], "price": []}), None,
                          _tiny_schema(), tmp_path / "out", device="cpu")


def test_two_dask_workers_give_the_single_process_output(raw, schema, tmp_path, processed):
    import distributed  # a core dependency: missing must fail, not skip
    train, valid, res = processed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out = etl.fit_transform(train, valid, schema, tmp_path / "dask", device="cpu", dask=client,
                                npartitions=2)
    assert out.schema == res.schema
    for split in ("train", "valid"):
        got, expected = _table(out.out_dir / split), _table(res.out_dir / split)
        pd.testing.assert_frame_equal(got.drop(columns="item_genres"), expected.drop(columns="item_genres"))
        assert [list(v) for v in got["item_genres"]] == [list(v) for v in expected["item_genres"]]
    np.testing.assert_array_equal(out.item_counts, res.item_counts)
    assert out.report["valid"]["oov"] == res.report["valid"]["oov"]


def test_nulls_in_later_partitions(tmp_path):
    # NVTabular 23.8 on CPU fails on nulls outside the first partition unless the index is reset;
    # a missing value of a categorical feature (not an id: that is a bad row) is the null id 1
    years = [1995.0, np.nan, 1977.0, 1995.0, np.nan, 1996.0, np.nan, 1995.0, 1977.0]
    frame = pd.DataFrame({"user_id": range(9), "item_id": list("abcdefghi"), "year": years, "price": 1.0})
    schema = schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "string"},
        "year": {"tags": ["item", "categorical"], "dtype": "float64"},
        "price": {"tags": ["item", "continuous"], "dtype": "float32"},
    }})
    res = etl.fit_transform(frame, None, schema, tmp_path, device="cpu", npartitions=3)
    ids = _table(res.train)["year"].to_numpy()
    assert list(ids[[1, 4, 6]]) == [1, 1, 1]                # the null id
    assert len(set(ids[[0, 3, 7]])) == 1 and ids[0] >= 3    # one id per value
    assert ids[2] == ids[8] != ids[0]
    assert res.report["train"]["missing"]["year"] == 3      # encoded on purpose, and counted


@pytest.mark.parametrize("options", [{}, {"freq_threshold": 3}, {"max_size": 6}])
def test_lookup_categorify_gives_nvtabulars_ids(tmp_path, options):
    # LookupCategorify (under copy-on-write, as the ETL runs it) against NVTabular's
    # Categorify (without): the same vocabulary files, ids and output schema
    import dask.dataframe as dd
    import nvtabular as nvt
    from nvtabular import ops

    from schemaretrieval.etl.workflow import LookupCategorify

    rng = np.random.default_rng(0)
    n = 600
    words = pd.Series([f"w{k}" for k in rng.integers(0, 12, n)], dtype=object)
    words[rng.random(n) < 0.1] = None
    train = pd.DataFrame({"i": rng.integers(0, 9, n), "s": words,
                          "f": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 7, n).astype(float)),
                          "e": words.astype("string")})
    new = train.assign(i=train["i"] + 5, s=train["s"].where(train.index % 5 > 0, "unseen"))

    def dataset(frame):
        return nvt.Dataset(dd.from_pandas(frame, npartitions=3, sort=False)
                           .map_partitions(lambda df: df.reset_index(drop=True)), cpu=True)

    outputs = []
    for op, cow in ((ops.Categorify, False), (LookupCategorify, True)):
        stats = tmp_path / "stats"  # one place, so that the schemas' paths agree
        with pd.option_context("mode.copy_on_write", cow):
            workflow = nvt.Workflow(list(train.columns) >> op(out_path=str(stats), dtype="int64", **options))
            workflow.fit(dataset(train))
            outputs.append(([workflow.transform(dataset(frame)).to_ddf().compute().reset_index(drop=True)
                             for frame in (train, new)], workflow.output_schema))
    (expected, expected_schema), (got, got_schema) = outputs
    for a, b in zip(expected, got):
        pd.testing.assert_frame_equal(b, a)
    assert got_schema == expected_schema
    assert (got[1]["i"] == OOV_INDEX).any() and (got[1]["s"] == 1).any()  # unseen and null rows were there


def test_hashed_oov_buckets_and_the_returned_frame(tmp_path):
    # num_buckets runs NVTabular's own transform, without copy-on-write (etl.copy_on_write)
    items = ["a"] * 5 + ["b"] * 3 + ["c", "d", "e"]
    frame = pd.DataFrame({"user_id": range(len(items)), "item_id": items, "price": 1.0})
    res = etl.fit_transform(frame, None, _tiny_schema(item_transform={"max_size": 6, "num_buckets": 3}),
                            tmp_path, device="cpu")
    ids = _table(res.train)["item_id"].to_numpy()
    assert (ids[:5] == 5).all()                                  # a: the one kept value
    rare = ids[5:]
    assert ((rare >= OOV_INDEX) & (rare < OOV_INDEX + 3)).all()  # hashed into the 3 OOV ids
    assert res.report["train"]["oov"]["item_id"] == 6

    # made under copy-on-write, the returned frame is still the caller's own (dask's
    # from_pandas copies the input): changing it leaves the input alone
    schema = schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
                                           "title": {"tags": ["item", "text"], "dtype": "string"}}})
    plain = pd.DataFrame({"user_id": range(6), "title": list("abcdef")})
    res = etl.fit_transform(plain, None, schema, tmp_path / "plain", device="cpu")
    assert etl.engine.copy_on_write(schema)
    out = etl.transform(plain, res.out_dir, device="cpu")
    out.loc[0, "title"] = "changed"
    assert plain.loc[0, "title"] == "a"
