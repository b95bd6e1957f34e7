"""Small builders the test modules share."""

from pathlib import Path

from merlin.schema import ColumnSchema, Tags

from schemaretrieval.schema import load_schema

SYNTHETIC_YAML = Path(__file__).resolve().parents[1] / "schemas" / "synthetic.yaml"


def column(name, tags, dtype, **properties):
    """A merlin ColumnSchema; a `list` tag makes it a ragged list column."""
    is_list = Tags.LIST in tags
    return ColumnSchema(name, tags=tags, dtype=dtype, is_list=is_list, is_ragged=is_list, properties=properties)


def synthetic_schema():
    """The bundled schemas/synthetic.yaml."""
    return load_schema(SYNTHETIC_YAML)


def module_examples_pass(module, at_least=1):
    """Runs the docstring examples of `module`; True when at least
    `at_least` ran and none failed (failures are printed)."""
    import doctest

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    return result.attempted >= at_least and result.failed == 0
