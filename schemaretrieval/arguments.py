"""Checks of a caller's options, each error naming the function, the option and what it expects.

Constructors and functions check their options where they are called, through
these, so that every option reads the same way: NumPy's integers are
integers, a bool is neither a count nor a number, NaN and inf are in no range,
and a string is not taken for a number or a flag by its truthiness.

>>> import numpy as np
>>> integer(np.int64(3), "fit", "epochs")
3
>>> integer(0, "fit", "epochs")
Traceback (most recent call last):
...
ValueError: fit: epochs must be an integer >= 1, got 0
>>> number(float("nan"), "EASE", "l2", above=0)
Traceback (most recent call last):
...
ValueError: EASE: l2 must be a finite number > 0, got nan
>>> flag("no", "TwoTowerModel", "l2_normalize")
Traceback (most recent call last):
...
TypeError: TwoTowerModel: l2_normalize must be True or False, got 'no'
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["integer", "number", "number_expected", "flag", "counts", "machine_memory"]


def integer(value, where: str, name: str, minimum: int = 1):
    """``value`` as an int when it is an integer (Python's or NumPy's, not a bool) ``>= minimum``.

    >>> integer(5, "UniformSampler", "num_samples"), integer(0, "fit", "seed", minimum=0)
    (5, 0)
    >>> integer(2.5, "UniformSampler", "num_samples")
    Traceback (most recent call last):
    ...
    ValueError: UniformSampler: num_samples must be an integer >= 1, got 2.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def number(value, where: str, name: str, *, above=None, at_least=None, at_most=None, below=None) -> float:
    """``value`` as a float when it is a finite real number (not a bool, not a string)
    inside the bounds given: ``> above``, ``>= at_least``, ``<= at_most``, ``< below``.

    >>> number(0.5, "Dropout", "rate", at_least=0, at_most=1)
    0.5
    >>> number("0.1", "TwoTowerModel", "logits_temperature", above=0)
    Traceback (most recent call last):
    ...
    ValueError: TwoTowerModel: logits_temperature must be a finite number > 0, got '0.1'
    """
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
          and (above is None or value > above) and (at_least is None or value >= at_least)
          and (at_most is None or value <= at_most) and (below is None or value < below))
    if not ok:
        expected = number_expected(above=above, at_least=at_least, at_most=at_most, below=below)
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return float(value)


def number_expected(*, above=None, at_least=None, at_most=None, below=None) -> str:
    """What `number` expects within these bounds, in its messages' words (the CLI's too).

    >>> number_expected(above=0, below=1)
    'a finite number > 0 and < 1'
    """
    bounds = [f"> {above}" if above is not None else None, f">= {at_least}" if at_least is not None else None,
              f"<= {at_most}" if at_most is not None else None, f"< {below}" if below is not None else None]
    expected = " and ".join(b for b in bounds if b)
    return f"a finite number{' ' + expected if expected else ''}"


def flag(value, where: str, name: str) -> bool:
    """``value`` when it is True or False (NumPy's bool too); anything else is a TypeError.

    >>> flag(np.bool_(True), "ContrastiveOutput", "store_negative_ids")
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


def counts(values, where: str, name: str, *, length: int | None = None, positive_total: bool = True) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite counts >= 0 (``length`` long when
    given; not all zero unless ``positive_total`` is False).

    >>> counts([3, 0, 1], "InBatchSampler", "item_counts").tolist()
    [3.0, 0.0, 1.0]
    >>> counts([1.0, float("nan")], "InBatchSampler", "item_counts")
    Traceback (most recent call last):
    ...
    ValueError: InBatchSampler: item_counts must be a 1-D array of finite counts >= 0, got a NaN or inf at position 1
    """
    expected = f"{where}: {name} must be a 1-D array of finite counts >= 0"
    try:
        array = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(f"{expected}, got {values!r:.100}") from None
    if array.ndim != 1 or not array.size:
        raise ValueError(f"{expected}, got shape {array.shape}")
    if length is not None and len(array) != length:
        raise ValueError(f"{expected} with one count per item ({length}), got {len(array)}")
    for bad, what in ((~np.isfinite(array), "a NaN or inf"), (array < 0, "a negative count")):
        if bad.any():
            raise ValueError(f"{expected}, got {what} at position {int(np.argmax(bad))}")
    if positive_total and array.sum() <= 0:
        raise ValueError(f"{where}: {name} sum to zero: no item can be drawn")
    return array


def machine_memory() -> int | None:
    """This machine's physical memory in bytes, the bound a table sized by an option is checked
    against before TensorFlow allocates it; None where the system does not say (no sysconf).

    >>> machine_memory() is None or machine_memory() > 2**20
    True
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
