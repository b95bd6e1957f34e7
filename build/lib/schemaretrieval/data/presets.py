"""Generated data sets with a schema of their own, by name: what ``--preset`` takes.

>>> frame, schema = preset("movielens-like", seed=0)
>>> len(frame), schema.column_names[0]
(100000, 'user_id')
"""

from __future__ import annotations

from schemaretrieval.data.movielens_like import movielens_like

__all__ = ["PRESETS", "preset"]

#: name -> a function (seed) -> (interactions, schema).
PRESETS = {"movielens-like": lambda seed: movielens_like(seed=seed)}


def preset(name: str, seed: int = 0):
    """``(interactions, schema)`` of a named generated preset.

    >>> preset("movielens-large")
    Traceback (most recent call last):
    ...
    ValueError: unknown preset 'movielens-large'; known: movielens-like
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](seed)
