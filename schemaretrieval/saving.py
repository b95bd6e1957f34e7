"""Loading a saved model back."""

from __future__ import annotations

import keras


def load_model(path):
    """Loads a model written by `model.save(path)` (a `.keras` file).

    The library's layers register themselves with Keras when
    `schemaretrieval` is imported, so no `custom_objects` are needed.

    >>> import schemaretrieval as sr  # doctest: +SKIP
    >>> model = sr.load_model("runs/synthetic/model.keras")  # doctest: +SKIP
    """
    return keras.saving.load_model(path)
