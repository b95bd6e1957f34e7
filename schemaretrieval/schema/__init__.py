"""The YAML schema: files, checks, and what each column means.

* ``io``: `load_schema` / `save_schema` (our YAML, merlin's pbtxt / json).
* ``validation``: `schema_from_dict` / `schema_to_dict` and the checks a model build runs.
* ``columns``: a column's kind, domain, ids, list shape and tower; ``PAD``, ``OOV_INDEX``.
* ``errors``: `SchemaError`, which names the source, line, column and key.
"""

from schemaretrieval.schema import columns
from schemaretrieval.schema.columns import (
    OOV_INDEX,
    PAD,
    candidate_schema,
    cardinality,
    embedding_dim,
    item_id_column,
    query_schema,
    user_id_column,
)
from schemaretrieval.schema.errors import SchemaError, require_schema
from schemaretrieval.schema.io import load_schema, save_schema
from schemaretrieval.schema.validation import (
    check_towers,
    require_domains,
    schema_from_dict,
    schema_to_dict,
    validate_for_retrieval,
)

__all__ = [
    "columns",
    "OOV_INDEX",
    "PAD",
    "SchemaError",
    "require_schema",
    "load_schema",
    "save_schema",
    "schema_from_dict",
    "schema_to_dict",
    "validate_for_retrieval",
    "require_domains",
    "check_towers",
    "cardinality",
    "embedding_dim",
    "item_id_column",
    "user_id_column",
    "query_schema",
    "candidate_schema",
]
