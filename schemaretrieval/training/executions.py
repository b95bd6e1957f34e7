"""Step counts that Keras's multi-step calls honour.

With ``steps_per_execution`` S, Keras runs whole calls of S steps: ``fit(...,
steps_per_epoch=2)`` under S = 16 trains 16 steps an epoch, and
``evaluate(..., steps=1)`` scores 16 batches, without a word. `TwoTowerModelV2`
compiles with S = 16 unless told otherwise, so a Merlin program's
``steps_per_epoch`` would change meaning. `whole_calls` runs a call with S
lowered to the greatest common divisor of S and the counts given, which every
count is a multiple of, and puts S back after.
"""

from __future__ import annotations

import contextlib
import math

from schemaretrieval.arguments import integer

__all__ = ["whole_calls"]


@contextlib.contextmanager
def whole_calls(model, where: str, **steps):
    """Within it, ``model.steps_per_execution`` divides each step count of ``steps``
    (None: not given); each count is checked, an error naming it.

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse", steps_per_execution=16)
    >>> with whole_calls(model, "fit", steps_per_epoch=6, validation_steps=None):
    ...     model.steps_per_execution
    2
    >>> _ = model.fit(np.ones((64, 1)), np.ones((64, 1)), batch_size=4, steps_per_epoch=6, verbose=0)
    >>> with whole_calls(model, "fit", steps_per_epoch=6):
    ...     _ = model.fit(np.ones((64, 1)), np.ones((64, 1)), batch_size=4, steps_per_epoch=6, verbose=0)
    >>> int(model.optimizer.iterations), model.steps_per_execution  # 16, then 6
    (22, 16)
    """
    counts = [integer(value, where, name) for name, value in steps.items() if value is not None]
    before = model.steps_per_execution
    lowered = math.gcd(before, *counts)
    if lowered == before:
        yield
        return
    _set(model, lowered)
    try:
        yield
    finally:
        _set(model, before)


def _set(model, steps_per_execution):
    # Keras reads S when it traces its step functions: they are made again.
    model.steps_per_execution = steps_per_execution
    model.train_function = model.test_function = model.predict_function = None
