"""One row per id: `unique_rows_by_features`, Merlin Models' table of unique users or items."""

from __future__ import annotations

from merlin.schema import Tags

from schemaretrieval.data.read import is_merlin_dataset, merlin_table, read_table

__all__ = ["unique_rows_by_features"]


def unique_rows_by_features(dataset, features_tag, grouping_tag=Tags.ID):
    """The columns tagged ``features_tag``, one row per value of the column among them
    tagged ``grouping_tag`` (its first row), as Merlin's
    ``merlin.models.utils.dataset.unique_rows_by_features``.

    Takes and returns a ``merlin.io.Dataset``; the result keeps the input
    schema's columns (tags and domains included), so that it can be handed to
    ``model.to_top_k_encoder`` or ``model.candidate_embeddings``. Rows keep
    the order of their first appearance.

    >>> import pandas as pd
    >>> from merlin.io import Dataset
    >>> from merlin.schema import ColumnSchema, Schema, Tags
    >>> schema = Schema([ColumnSchema("user_id", tags=[Tags.USER, Tags.ID]),
    ...                  ColumnSchema("item_id", tags=[Tags.ITEM, Tags.ID]),
    ...                  ColumnSchema("item_year", tags=[Tags.ITEM])])
    >>> data = Dataset(pd.DataFrame({"user_id": [1, 2, 3], "item_id": [7, 5, 7], "item_year": [90, 91, 90]}),
    ...                schema=schema)
    >>> items = unique_rows_by_features(data, Tags.ITEM, Tags.ITEM_ID)
    >>> items.compute().to_dict("list"), items.schema.column_names
    ({'item_id': [7, 5], 'item_year': [90, 91]}, ['item_id', 'item_year'])
    """
    from merlin.io import Dataset

    if not is_merlin_dataset(dataset):
        raise TypeError(f"unique_rows_by_features: dataset must be a merlin.io.Dataset, got {type(dataset).__name__}")
    selected = dataset.schema.select_by_tag(features_tag)
    if not selected.column_names:
        raise ValueError(f"unique_rows_by_features: no column of {dataset.schema.column_names} is tagged "
                         f"{features_tag!r}")
    groups = selected.select_by_tag(grouping_tag).column_names
    if not groups:
        raise ValueError(f"unique_rows_by_features: no column tagged {features_tag!r} ({selected.column_names}) "
                         f"is also tagged {grouping_tag!r}")
    table = merlin_table(dataset)
    frame = read_table(table) if not hasattr(table, "columns") else table
    frame = frame[selected.column_names].drop_duplicates(groups[0], keep="first").reset_index(drop=True)
    return Dataset(frame, schema=selected)
