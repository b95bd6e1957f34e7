"""Where the ETL runs (etl.engine): the device chosen, and pandas' copy-on-write only where it is safe."""

import pytest

import schemaretrieval as sr
from schemaretrieval import etl
from schemaretrieval.schema import schema_from_dict


def _schema(item_transform=None):
    item_id = {"tags": ["item_id", "categorical"], "dtype": "string"}
    if item_transform is not None:
        item_id["transform"] = item_transform
    return schema_from_dict({"columns": {"user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
                                         "item_id": item_id}})


def test_device_selection():
    assert etl.select_device("cpu") == "cpu"
    chosen = etl.select_device("auto")
    from merlin.core.compat import HAS_GPU
    if not HAS_GPU:
        assert chosen == "cpu"
        with pytest.raises(ValueError, match="needs cudf and a visible GPU"):
            etl.select_device("gpu")
    with pytest.raises(ValueError):
        etl.select_device("tpu")


def test_the_cli_asked_for_a_gpu_it_lacks_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    import merlin.core.compat

    from schemaretrieval import cli

    monkeypatch.setattr(merlin.core.compat, "HAS_GPU", False)  # a machine without one, wherever this runs
    raw = tmp_path / "raw.parquet"
    sr.data.raw_log(50, seed=0).to_parquet(raw)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["etl", "--schema", "schemas/raw-log.yaml", "--train", str(raw), "--device", "gpu",
                  "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "schemaretrieval etl: error: device='gpu' needs cudf and a visible GPU (cudf importable: " in err


def test_copy_on_write_only_where_lookup_categorify_encodes():
    import nvtabular as nvt
    from nvtabular import ops

    assert etl.engine.copy_on_write(_schema())
    assert not etl.engine.copy_on_write(_schema(item_transform={"max_size": 10, "num_buckets": 3}))
    assert not etl.engine.copy_on_write(sr.load_schema("schemas/movielens-100k.yaml"))  # item_genres is a list
    saved_before = nvt.Workflow(["item_id"] >> ops.Categorify())  # a workflow saved before LookupCategorify
    assert not etl.engine.copy_on_write(_schema(), saved_before)
    assert etl.engine.copy_on_write(_schema(), etl.build_workflow(_schema()))


def test_a_cluster_whose_workers_run_dask_otherwise_is_refused_by_name():
    class Client:  # a cluster of one worker started without upstream.DASK_SETTINGS
        def run(self, function):
            return {"tcp://10.0.0.7:4001": {**sr.upstream.DASK_SETTINGS, "dataframe.query-planning": True}}

    with pytest.raises(etl.ETLError, match=r"Dask worker tcp://10.0.0.7:4001: \{'dataframe.query-planning': True\} "
                                           r"but merlin 23.8 needs .*DASK_DATAFRAME__QUERY_PLANNING=False"):
        with etl.engine.engine_context(Client(), "cpu"):
            pass
