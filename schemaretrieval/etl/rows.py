"""Raw rows the ETL refuses, or leaves out and counts: one pass over the input before the workflow.

NVTabular encodes what it is given: a null item id becomes the null id 1, a
scalar in a list column is written as a scalar, an empty list passes a
``value_count.min`` of 1, and some rows end in a ``TypeError`` naming no
column. So `inspect_rows` reads every partition once, before the workflow,
and finds per column the rows that cannot be encoded as the schema says:

| column | bad row |
| --- | --- |
| id (``user_id``/``item_id`` tag) | a missing id (None, NaN) |
| categorical of an integer ``dtype`` | text, a fraction, a bool or a value beyond int64 (it would be encoded as another kind of value than the serving and ``transform`` inputs) |
| list | a missing list, a value that is not a list, a missing value inside it, fewer values than ``value_count.min`` or more than ``value_count.max`` |
| continuous | text that is not a number, inf, a missing value when its ``transform:`` has no ``fill_missing`` |
| time | text, or anything else neither a number nor a datetime |

With ``on_bad_rows="error"`` (the default) the first bad row is an `ETLError`
naming the source, the column and the row of the caller's own input
(0-based; a csv's line too), with how many rows have that problem.
With ``"skip"`` the bad rows are left out (`drop_bad_rows` in each pass) and
counted in the report. Missing values that the ETL encodes on purpose (the
null id of another categorical column, a ``fill_missing``) are counted too
(``nulls``): nothing becomes a default uncounted.

>>> import pandas as pd
>>> from schemaretrieval.schema import schema_from_dict
>>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "string"}}})
>>> frame = pd.DataFrame({"item_id": ["a", None, "b"]})
>>> problems(frame, schema)["item_id: missing id (None/NaN)"].tolist()
[False, True, False]
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from merlin.schema import Schema, Tags

from schemaretrieval.data.read import DATAFRAME
from schemaretrieval.etl.options import ETLError, categorical_options, continuous_steps, etl_kind, is_derived

__all__ = ["ON_BAD_ROWS", "OTHER_SEPARATORS", "problems", "is_integer_column", "not_integers", "separators", "nulls",
           "inspect_rows", "drop_bad_rows", "check_columns", "csv_parser_message"]

#: What ``on_bad_rows`` takes.
ON_BAD_ROWS = ("error", "skip")


def check_columns(frame, source: str) -> None:
    """A table's column names are unique (pandas gives a repeated name as a frame).

    >>> check_columns(pd.DataFrame([[1, 2]], columns=["a", "a"]), "<DataFrame>")
    Traceback (most recent call last):
    ...
    schemaretrieval.etl.options.ETLError: <DataFrame>: column 'a' appears 2 times; each column must be named once
    """
    names = pd.Index(frame.columns)
    if names.has_duplicates:
        name = names[names.duplicated()][0]
        raise ETLError(f"{source}: column {name!r} appears {int((names == name).sum())} times; each column must be "
                       "named once")


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT


def _list_problem(value, sep, low, high):
    if _is_missing(value):
        return "missing list (None/NaN); an empty row is []"
    if isinstance(value, str):
        text = value.strip()
        # pandas's to_csv writes a list cell as "['A', 'B']": one token to a separator split
        if text.startswith("[") and text.endswith("]") and any(c in text for c in "',\""):
            return (f"a list written as Python/JSON text ({text[:40]!r}); expected the values joined by "
                    f"{sep!r} (the column's separator), or a DataFrame or parquet with real lists")
        value = [t for t in value.split(sep) if t]
    elif not isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return f"expected a list of values, found {type(value).__name__}"
    if any(_is_missing(v) for v in value):
        return "a missing value (None/NaN) inside the list"
    if low is not None and len(value) < low:
        return f"fewer values than value_count.min {low}"
    if high is not None and len(value) > high:
        return f"more values than value_count.max {high}"
    return None


def problems(frame: pd.DataFrame, schema: Schema) -> dict:
    """``{"column: problem": boolean row mask}`` of the bad rows of ``frame`` (see the
    module's table; masks with no row are left out).

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"price": {"tags": ["item", "continuous"], "dtype": "float32"}}})
    >>> {key: mask.tolist() for key, mask in problems(pd.DataFrame({"price": ["1.5", "cheap", "inf"]}), schema).items()}
    {'price: expected a number, found text': [False, True, False], 'price: inf': [False, False, True]}
    """
    out = {}

    def add(name, problem, mask):
        mask = np.asarray(mask, bool)
        if mask.any():
            key = f"{name}: {problem}"
            out[key] = out[key] | mask if key in out else mask

    for col in schema:
        if is_derived(col) or col.name not in frame.columns:
            continue
        values = frame[col.name]
        kind = etl_kind(col)
        if kind == "categorical" and col.is_list:
            count = col.value_count
            low = count.min if count is not None and count.min else None
            high = count.max if count is not None and count.max else None
            sep = categorical_options(col).get("separator", "|")
            found = values.map(lambda v: _list_problem(v, sep, low, high))
            for problem in found.dropna().unique():
                add(col.name, problem, (found == problem).to_numpy())
        elif kind == "categorical":
            if Tags.ID in col.tags:  # merlin keeps user_id / item_id as the tags user / item + id
                add(col.name, "missing id (None/NaN)", values.isna().to_numpy())
            if is_integer_column(col):
                add(col.name, f"expected an integer (the schema's dtype is {col.dtype.to('numpy')}), found text, "
                    "a fraction, a bool or a value beyond int64", not_integers(values))
        elif kind == "continuous":
            numbers = pd.to_numeric(values, errors="coerce") if values.dtype.kind not in "biuf" else values
            add(col.name, "expected a number, found text", (numbers.isna() & values.notna()).to_numpy())
            add(col.name, "inf", np.isinf(numbers.to_numpy(np.float64, na_value=np.nan)))
            if "fill_missing" not in [step for step, _ in continuous_steps(col)]:
                add(col.name, "missing value (None/NaN), and its transform: has no fill_missing",
                    values.isna().to_numpy())
        elif kind == "time":
            if values.dtype.kind == "O":
                text = values.map(lambda v: not _is_missing(v) and not isinstance(v, (int, float, np.number,
                                                                                       pd.Timestamp)))
                add(col.name, "expected numbers since 1970 or datetimes, found text (parse it with pd.to_datetime)",
                    text.to_numpy())
    return out


def is_integer_column(col) -> bool:
    """A categorical column whose schema ``dtype`` is an integer one.

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "int64"},
    ...                                        "brand": {"tags": ["item", "categorical"], "dtype": "string"}}})
    >>> is_integer_column(schema["item_id"]), is_integer_column(schema["brand"])
    (True, False)
    """
    return etl_kind(col) == "categorical" and not col.is_list and col.dtype.element_type.value in ("int", "uint")


def not_integers(values: pd.Series) -> np.ndarray:
    """Rows an integer id cannot hold: text that is no number, a fraction, a bool, a value beyond int64
    (a missing value is not one: `problems` and the null id see to it).

    >>> not_integers(pd.Series([3, "4", "bob", 2.5, 7.0, None, 10**30, True], dtype=object)).tolist()
    [False, False, True, True, False, False, True, True]
    """
    if values.dtype.kind in "iu":
        return values.to_numpy() > np.iinfo(np.int64).max if values.dtype.kind == "u" else np.zeros(len(values), bool)
    if values.dtype.kind == "b":
        return np.ones(len(values), bool)
    bools = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool) if values.dtype.kind == "O" else 0
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    present = values.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (np.abs(numbers) < 2.0 ** 63)
    return present & (~whole | bools)


def nulls(frame: pd.DataFrame, schema: Schema) -> dict:
    """``{column: rows}`` of missing values the ETL encodes on purpose: a categorical
    column's null id, a continuous ``fill_missing``, a time column's missing features.

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"brand": {"tags": ["item", "categorical"], "dtype": "string"}}})
    >>> nulls(pd.DataFrame({"brand": ["a", None]}), schema)
    {'brand': 1}
    """
    out = {}
    for col in schema:
        if is_derived(col) or col.name not in frame.columns or col.is_list:
            continue
        if etl_kind(col) in ("categorical", "continuous", "time"):
            count = int(frame[col.name].isna().sum())
            if count:
                out[col.name] = count
    return out


def drop_bad_rows(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``frame`` without the rows `problems` finds (``on_bad_rows="skip"``, each pass).

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"item_id": {"tags": ["item_id", "categorical"], "dtype": "string"}}})
    >>> drop_bad_rows(pd.DataFrame({"item_id": ["a", None]}), schema)["item_id"].tolist()
    ['a']
    """
    found = problems(frame, schema)
    if not found:
        return frame
    bad = np.logical_or.reduce(list(found.values()))
    return frame[~bad]


#: What a list written as text may be joined by when the schema leaves ``separator`` at its default.
OTHER_SEPARATORS = (",", ";", "\t")


def separators(frame: pd.DataFrame, schema: Schema) -> dict:
    """``{column: {separator: rows}}``: for each list column written as text whose schema
    leaves ``separator`` at its default ``|``, how many rows hold ``|`` and each of
    `OTHER_SEPARATORS`.

    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"genres": {"tags": ["item", "categorical", "list"], "dtype": "string"}}})
    >>> separators(pd.DataFrame({"genres": ["Action,Drama", "Comedy"]}), schema)
    {'genres': {'|': 0, ',': 1, ';': 0, '\\t': 0}}
    """
    out = {}
    for col in schema:
        if is_derived(col) or col.name not in frame.columns or not col.is_list or etl_kind(col) != "categorical":
            continue
        if "separator" in (col.properties.get("transform") or {}):
            continue  # chosen on purpose
        text = frame[col.name][frame[col.name].map(type) == str]
        if len(text):
            out[col.name] = {sep: int(text.str.contains(sep, regex=False).sum()) for sep in ("|", *OTHER_SEPARATORS)}
    return out


def _check_separators(counts: dict, source: str) -> None:
    """A text list column that never holds the default ``|`` but holds another separator
    would be read as one value a row ("Action,Drama"): an error naming the column."""
    for column, found in counts.items():
        other = max(OTHER_SEPARATORS, key=lambda sep: found[sep])
        if found["|"] == 0 and found[other]:
            raise ETLError(f"{source}: column {column!r} is a list written as text, and no row holds the default "
                           f"separator '|' while {found[other]} hold {other!r}: each row would be one value. Give the "
                           f"column `transform: {{separator: {other!r}}}` in the schema, or `{{separator: '|'}}` to "
                           "keep each row one value")


def _inspect(frame, schema):
    found = problems(frame, schema)
    bad = np.logical_or.reduce(list(found.values())) if found else np.zeros(len(frame), bool)
    return {"rows": len(frame), "skipped": int(bad.sum()), "nulls": nulls(frame[~bad], schema),
            "problems": {key: (int(mask.sum()), int(np.argmax(mask))) for key, mask in found.items()},
            "separators": separators(frame, schema)}


def csv_parser_message(err) -> str:
    """pandas's own words of a csv ParserError (which line, how many fields), without the
    preamble dask adds ("An error occurred while calling the read_csv method ...").

    >>> csv_parser_message(ValueError("An error occurred while calling the read_csv method registered to "
    ...                               "the pandas backend. Original Message: Expected 3 fields in line 3, saw 4"))
    'Expected 3 fields in line 3, saw 4'
    """
    return str(err).split("Original Message: ")[-1]


def inspect_rows(ddf, schema: Schema, source: str, on_bad_rows: str = "error") -> dict:
    """One pass over the raw dask partitions: ``{"skipped": rows, "problems": {"column:
    problem": rows}, "nulls": {column: rows}}`` for the report; with ``on_bad_rows="error"``
    the first bad row (in input order) is an `ETLError` naming it (module docstring).

    >>> import dask.dataframe as dd
    >>> from schemaretrieval.schema import schema_from_dict
    >>> schema = schema_from_dict({"columns": {"tags": {"tags": ["item", "categorical", "list"], "dtype": "string"}}})
    >>> ddf = dd.from_pandas(pd.DataFrame({"tags": [["a"], ["b"], None]}), npartitions=2, sort=False)
    >>> inspect_rows(ddf, schema, "<DataFrame>")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemaretrieval.etl.options.ETLError: <DataFrame>: column 'tags', row 2: missing list (None/NaN); ...
    >>> inspect_rows(ddf, schema, "<DataFrame>", on_bad_rows="skip")["skipped"]
    1
    """
    import dask

    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    try:
        parts = dask.compute(*[dask.delayed(_inspect)(part, schema) for part in ddf.to_delayed()])
    except pd.errors.ParserError as err:  # a csv row of more fields than the header, past dask's sample
        raise ETLError(f"{source}: cannot read the csv file: {csv_parser_message(err)}") from None
    offsets = np.cumsum([0] + [part["rows"] for part in parts])
    report = {"rows": int(offsets[-1]), "skipped": 0, "problems": {}, "nulls": {}}
    first, seps = None, {}
    for offset, part in zip(offsets, parts):
        report["skipped"] += part["skipped"]
        for column, found in part["separators"].items():
            seps.setdefault(column, Counter()).update(found)
        for name, count in part["nulls"].items():
            report["nulls"][name] = report["nulls"].get(name, 0) + count
        for key, (count, row) in part["problems"].items():
            report["problems"][key] = report["problems"].get(key, 0) + count
            if first is None or offset + row < first[1]:
                first = (key, int(offset + row))
    if first is not None and on_bad_rows == "error":
        key, row = first
        column, problem = key.split(": ", 1)
        line = f" (line {row + 2} of the file, after its header)" if source != DATAFRAME and \
            str(source).lower().endswith((".csv", ".tsv")) else ""
        count = report["problems"][key]
        raise ETLError(f"{source}: column {column!r}, row {row}{line}: {problem}; {count} such row(s) in all. "
                       "Fix them, or leave them out with on_bad_rows='skip' (--on-bad-rows skip), which counts them "
                       "in the report")
    if report["skipped"] and report["skipped"] == report["rows"]:
        raise ETLError(f"{source}: every one of its {report['rows']} rows is bad ({report['problems']}); nothing is "
                       "left to encode")
    _check_separators(seps, source)  # a whole column misread: not rows to skip
    return report
