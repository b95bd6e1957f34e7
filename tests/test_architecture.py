"""The layer order docs/ARCHITECTURE.md states: a module imports only from its own
subpackage and from the rows below it, and never a private name of another module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "schemaretrieval"

# Bottom to top: a row may import any row below it (docs/ARCHITECTURE.md).
ROWS = [
    {"upstream", "registry", "replicas", "progress", "rows", "arguments"},
    {"schema", "schemas"},
    {"data", "datasets"},
    {"etl"},
    {"layers"},
    {"retrieval"},
    {"evaluation"},
    {"training"},
    {"models"},
    {"serving"},
    {"tfrs", "merlin"},
    {"cli"},
]
ROW = {name: i for i, row in enumerate(ROWS) for name in row}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
                  or p.parent != PACKAGE)


def _top(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path):
    """(line, imported schemaretrieval module, [names]) of every import, lazy ones included."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("schemaretrieval"):
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("schemaretrieval"):
                    yield node.lineno, alias.name, []


def test_every_subpackage_has_a_row():
    tops = {_top(path) for path in _modules()}
    assert tops <= set(ROW), sorted(tops - set(ROW))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layer_order(path):
    own = _top(path)
    wrong = []
    for line, module, names in _imports(path):
        parts = module.split(".")
        if len(parts) == 1:  # `from schemaretrieval import x`: x is the subpackage
            targets = names
        else:
            targets = [parts[1]]
        for target in targets:
            if target in ROW and target != own and ROW[target] >= ROW[own]:
                wrong.append(f"line {line}: {module} ({target}, row {ROW[target]}) from {own} (row {ROW[own]})")
    assert not wrong, wrong


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_module(path):
    private = [f"line {line}: {module}.{name}" for line, module, names in _imports(path)
               for name in names if name.startswith("_")]
    assert not private, private
