"""`load_model`: a model written by ``model.save(path)``, read back with its own layers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

__all__ = ["load_model"]


def load_model(path):
    """Loads a model written by `model.save(path)` (a `.keras` file).

    The library's layers register themselves with Keras when
    `schemaretrieval` is imported, so no `custom_objects` are needed.

    >>> import tempfile, os
    >>> import schemaretrieval as sr
    >>> model = sr.TwoTowerModel(sr.load_schema("schemas/synthetic.yaml"))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> model.save(path)
    >>> type(load_model(path)).__name__
    'TwoTowerModelV2'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: {str(path)!r}: no such file (model.save(path) writes one)")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras says "File not found" of one that is there
        raise ValueError(f"load_model: {str(path)!r} is not a readable .keras archive (empty, truncated or not a zip)")
    try:
        return keras.saving.load_model(path)
    except (KeyError, zipfile.BadZipFile) as err:  # a zip without config.json, or a damaged member
        raise ValueError(f"load_model: {str(path)!r} is not a .keras archive Keras wrote ({err})") from None
