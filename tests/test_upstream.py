"""The adaptations of schemaretrieval/upstream.py to RAPIDS 24.12 under merlin 23.8."""

import os
import subprocess
import sys
import textwrap
import types

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemaretrieval as sr
from schemaretrieval import etl, upstream
from schemaretrieval.schema import schema_from_dict

LIST_SCHEMA = {"columns": {
    "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
    "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
    "genres": {"tags": ["item", "categorical", "list"], "dtype": "string"},
}}
FRAME = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [10, 11, 10, 12],
                      "genres": [["a", "b"], ["c"], ["a", "b"], ["b", "c", "d"]]})


def _python(code, **env):
    """Runs ``code`` in a fresh interpreter of this environment; (returncode, stderr)."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=os.path.dirname(os.path.dirname(__file__)),
                         timeout=300)
    return run.returncode, run.stdout, run.stderr


def test_the_settings_hold_in_this_process():
    assert dask.config.get("dataframe.query-planning") is False
    assert dask.config.get("dataframe.convert-string") is False
    import dask.dataframe as dd

    assert dd.DataFrame.__module__ == "dask.dataframe.core"  # the legacy DataFrame


def test_list_columns_stay_lists_when_the_caller_turns_string_conversion_on(tmp_path):
    # dask's default with pandas 2 turns each list into its text; the ETL sets it off itself.
    with dask.config.set({"dataframe.convert-string": True}):
        out = etl.fit_transform(FRAME, None, schema_from_dict(LIST_SCHEMA), tmp_path, device="cpu")
    genres = sr.data.read_table(out.train)["genres"]
    lengths = [len(v) for v in genres]
    assert lengths == [2, 1, 2, 3]
    assert len({int(i) for v in genres for i in v}) == 4  # a, b, c, d each their own id
    assert list(genres[0]) == list(genres[2])


def test_a_list_column_written_as_text_is_an_error(tmp_path):
    pq.write_table(pa.table({"genres": pa.array(["['a', 'b']"]), "item_id": [3]}), tmp_path / "part.parquet")
    schema = schema_from_dict(LIST_SCHEMA)
    with pytest.raises(etl.ETLError, match="column 'genres' is a list in the schema but was written as string"):
        etl.run.check_list_columns(tmp_path, pq.read_schema(tmp_path / "part.parquet"), schema)


ETL_SNIPPET = """
    import tempfile
    import pandas as pd
    import schemaretrieval as sr
    frame = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [5, 6, 5]})
    schema = sr.schema.schema_from_dict({"columns": {
        "user_id": {"tags": ["user_id", "categorical"], "dtype": "int64"},
        "item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"}}})
    out = sr.etl.fit_transform(frame, None, schema, tempfile.mkdtemp(), device="cpu")
    print("rows", out.report["train"]["rows"])
"""


def test_query_planning_asked_in_the_environment_is_turned_off_before_merlin():
    # Without upstream.configure_dask, this environment gives dask-expr DataFrames
    # and merlin's fit fails: "property 'dask' of 'DataFrame' object has no setter".
    code, out, err = _python(ETL_SNIPPET, DASK_DATAFRAME__QUERY_PLANNING="True")
    assert code == 0, err[-3000:]
    assert "rows 3" in out


def test_nvtabular_imported_first_runs_on_the_installed_dask_settings():
    # Merlin's own notebooks import nvtabular first; etc/dask/schemaretrieval.yaml,
    # installed with the package, is read at dask's first import.
    code, out, err = _python("import nvtabular\nimport merlin.schema\n" + textwrap.dedent(ETL_SNIPPET))
    assert code == 0, err[-3000:]
    assert "rows 3" in out


def test_merlin_imported_first_under_query_planning_is_a_clear_error():
    code, _, err = _python("import merlin.schema\nimport schemaretrieval\n",
                           DASK_DATAFRAME__QUERY_PLANNING="True")
    assert code != 0
    assert "UpstreamError: dask.dataframe was imported with query planning on before schemaretrieval" in err
    assert "Import schemaretrieval before merlin" in err


def test_cudf_24_12_gets_the_names_merlin_imports(monkeypatch):
    import merlin.core.compat as compat

    column = types.ModuleType("cudf.core.column")
    fake_cudf = types.SimpleNamespace(core=types.SimpleNamespace(column=column))
    fake_dask_cudf = types.ModuleType("dask_cudf")
    monkeypatch.setattr(compat, "cudf", fake_cudf)
    monkeypatch.setattr(compat, "dask_cudf", fake_dask_cudf)
    monkeypatch.setattr(upstream, "_applied", [])
    upstream.adapt_cudf()
    with pytest.raises(NotImplementedError, match="hive-partitioned parquet from a remote filesystem"):
        column.build_categorical_column(None, None)

    class Collection:
        def to_backend(self, backend):
            return ("moved to", backend)

    assert fake_dask_cudf.from_dask_dataframe(Collection()) == ("moved to", "cudf")
    assert "to_backend('cudf')" in upstream.describe()


def test_cpu_without_cudf_adapts_nothing_of_cudf(monkeypatch):
    import merlin.core.compat as compat

    monkeypatch.setattr(compat, "cudf", None)
    monkeypatch.setattr(upstream, "_applied", [])
    upstream.adapt_cudf()
    assert upstream.describe() == ""


def test_the_etl_names_its_engine_and_the_settings_once(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="schemaretrieval.etl"):
        etl.fit_transform(FRAME, None, schema_from_dict(LIST_SCHEMA), tmp_path, device="cpu")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ETL on ")]
    assert lines == [f"ETL on CPU (pandas {pd.__version__}); "
                     "dask legacy DataFrame (query-planning off, convert-string off)"]
