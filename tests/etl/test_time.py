"""Time features in the ETL: a time column's `transform:` derives hour / day of week / month ids and
normalised timestamps, tagged for a tower, with domains, reused by transform() and trainable."""

import numpy as np
import pandas as pd
import pytest

import schemaretrieval as sr
from schemaretrieval import etl
from schemaretrieval.schema import SchemaError, schema_from_dict

# 1970-01-01 was a Thursday; 2023-11-14 22:13:20 UTC a Tuesday
SECONDS = [0, 5 * 3600 + 59, 4 * 86400 + 23 * 3600, 1_700_000_000, -1, np.nan]
HOUR = [0, 5, 23, 22, 23, 24]
DAY_OF_WEEK = [3, 3, 0, 1, 2, 7]
MONTH = [0, 0, 0, 10, 11, 12]


def _schema(transform, dtype="float64"):
    return schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "string"},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "string"},
        "ts": {"tags": ["time"], "dtype": dtype, "transform": transform},
    }})


def _frame(ts):
    n = len(ts)
    return pd.DataFrame({"user_id": [f"u{i % 3}" for i in range(n)], "item_id": [f"i{i % 4}" for i in range(n)],
                         "ts": ts})


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    out = tmp_path_factory.mktemp("time")
    frame = _frame(SECONDS)
    schema = _schema(["hour", "day_of_week", "month", "normalize", "normalize_minmax"])
    return frame, etl.fit_transform(frame, frame, schema, out, device="cpu")


def test_calendar_features_by_hand(processed):
    _, res = processed
    out = sr.data.read_table(res.train)
    assert out["ts_hour"].tolist() == HOUR
    assert out["ts_day_of_week"].tolist() == DAY_OF_WEEK
    assert out["ts_month"].tolist() == MONTH
    assert out["ts_hour"].dtype == np.int64
    np.testing.assert_array_equal(out["ts"].to_numpy(), np.asarray(SECONDS))  # the time column is kept


def test_normalized_timestamps_use_train_statistics(processed):
    frame, res = processed
    out = sr.data.read_table(res.train)
    seen = np.asarray(SECONDS[:-1])
    norm, minmax = out["ts_normalized"].to_numpy(), out["ts_minmax"].to_numpy()
    assert norm.dtype == np.float32 and norm[-1] == 0.0 and minmax[-1] == 0.0  # missing -> 0
    assert (np.diff(norm[:-1][np.argsort(seen)]) >= 0).all()  # order kept (up to float32)
    np.testing.assert_allclose(minmax[:-1], (seen - seen.min()) / (seen.max() - seen.min()), atol=1e-6)
    np.testing.assert_allclose(norm[:-1] * seen.std(ddof=1) + seen.mean(), seen, rtol=1e-5, atol=1e-3 * seen.std())
    # new data through the saved workflow: the same statistics, hence the same values
    new = etl.transform(frame.iloc[[3, 0]], res.out_dir, device="cpu")
    np.testing.assert_allclose(new["ts_normalized"], norm[[3, 0]], rtol=1e-6)
    assert new["ts_hour"].tolist() == [22, 0]


def test_output_schema_tags_domains_and_the_model(processed):
    _, res = processed
    schema = sr.load_schema(res.out_dir)
    assert schema == res.schema
    for name, top in (("ts_hour", 24), ("ts_day_of_week", 7), ("ts_month", 12)):
        col = schema[name]
        assert {sr.Tags.USER, sr.Tags.CATEGORICAL} <= set(col.tags), col.tags
        assert col.properties["domain"]["min"] == 0 and col.properties["domain"]["max"] == top
    assert {sr.Tags.USER, sr.Tags.CONTINUOUS} <= set(schema["ts_normalized"].tags)
    assert schema["ts"].tags == res.schema["ts"].tags and sr.Tags.TIME in schema["ts"].tags
    query = sr.schema.query_schema(schema).column_names
    assert {"ts_hour", "ts_day_of_week", "ts_month", "ts_normalized", "ts_minmax"} <= set(query)
    assert "ts" not in query
    model = sr.TwoTowerModel(schema, query_units=(4,), candidate_units=(4,))
    model.compile(optimizer="adam")
    model.fit(res.train, batch_size=3, epochs=1, verbose=0)
    # the report counts no OOV for the time features (their ids are not Categorify's)
    assert set(res.report["train"]["oov"]) == {"user_id", "item_id"}


def test_units_datetimes_and_tags(tmp_path):
    ms = [s * 1000 if not np.isnan(s) else np.nan for s in SECONDS]
    res = etl.fit_transform(_frame(ms), None, _schema({"features": ["hour", "day_of_week"], "unit": "ms",
                                                       "tags": ["item"]}), tmp_path / "ms", device="cpu")
    out = sr.data.read_table(res.train)
    assert out["ts_hour"].tolist() == HOUR and out["ts_day_of_week"].tolist() == DAY_OF_WEEK
    assert sr.Tags.ITEM in res.schema["ts_hour"].tags and sr.Tags.USER not in res.schema["ts_hour"].tags
    # datetime64 values (the YAML has no datetime dtype: the data decides), tz-aware ones converted to UTC
    stamps = pd.to_datetime(pd.Series(SECONDS), unit="s")
    for values in (stamps, stamps.dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")):
        res = etl.fit_transform(_frame(values), None, _schema("month", dtype="int64"), tmp_path / "dt",
                                device="cpu")
        assert sr.data.read_table(res.train)["ts_month"].tolist() == MONTH


@pytest.mark.parametrize("transform, message", [
    (["hour", "minute"], "unknown time feature 'minute'"),
    ({"features": ["hour"], "unit": "days"}, "unit must be one of s, ms, us, ns"),
    ({"features": ["hour"], "tags": ["categorical"]}, "tags: 'categorical' is set by the ETL"),
    ({"features": ["hour"], "every": 2}, "unknown option 'every'"),
    ({"unit": "s"}, "features: expected a list"),
])
def test_bad_time_transforms_name_the_column(transform, message):
    with pytest.raises(SchemaError, match=message) as info:
        etl.build_workflow(_schema(transform))
    assert "ts" in str(info.value) and "transform" in str(info.value)


def test_text_timestamps_are_an_error_naming_the_column(tmp_path):
    frame = _frame(["2020-01-01"] * 3)
    with pytest.raises(Exception, match="column 'ts', row 0: .*found text \\(parse it with pd.to_datetime\\)"):
        etl.fit_transform(frame, None, _schema(["hour"], dtype="string"), tmp_path, device="cpu")


def test_the_workflow_tags_derived_features_without_the_time_tag():
    schema = _schema({"features": ["hour", "normalize"], "tags": ["user"]})
    workflow = etl.build_workflow(schema)
    workflow.fit_schema(schema)
    out = workflow.output_schema
    assert set(out["ts_hour"].tags) == {sr.Tags.CATEGORICAL, sr.Tags.USER}
    assert set(out["ts_normalized"].tags) == {sr.Tags.CONTINUOUS, sr.Tags.USER}
    assert out["ts_hour"].properties["domain"]["max"] == 24 and sr.Tags.TIME in out["ts"].tags
