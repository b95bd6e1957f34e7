import pytest

from helpers import synthetic_schema


@pytest.fixture(scope="module")
def schema():
    """The bundled schemas/synthetic.yaml (a module may override it)."""
    return synthetic_schema()
