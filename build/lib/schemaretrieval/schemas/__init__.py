"""The bundled YAML schemas, shipped with the package (``schemas/`` in a checkout links here).

>>> schema_path("synthetic").name
'synthetic.yaml'
>>> "movielens-100k" in names()
True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["schema_path", "names"]

_HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The bundled schemas' names (their file names without ``.yaml``).

    >>> "synthetic" in names() and "movielens-100k" in names()
    True
    """
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def schema_path(name: str) -> Path:
    """The path of the bundled schema ``name`` (e.g. ``"movielens-100k"``).

    >>> schema_path("movielens-1m").name
    'movielens-1m.yaml'
    """
    path = _HERE / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no bundled schema {name!r}; bundled: {', '.join(names())}")
    return path
