"""One registry for what a user may write and name: samplers, losses and input readers.

``@register(kind, name)`` does two things at once: it registers the class
with Keras's serialization (package ``schemaretrieval``), so that a model
holding an instance saves and loads with ``model.save`` / ``sr.load_model``
with no ``custom_objects``; and, with a ``name``, it makes the class
available by that short string wherever its kind is accepted
(``negative_samplers="in-batch"``, ``loss="bpr"``). The library's own
classes register the same way.

>>> import keras
>>> @register("sampler", "first-two")
... class FirstTwo(keras.layers.Layer):
...     pass
>>> type(get("sampler", "first-two")).__name__
'FirstTwo'
>>> keras.saving.get_registered_object("schemaretrieval>FirstTwo") is FirstTwo
True
>>> get("sampler", "frist-two")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown sampler 'frist-two' (did you mean 'first-two'?); known: cross-batch, first-two, ...
"""

from __future__ import annotations

import difflib
import numbers

import keras

__all__ = ["KINDS", "register", "get", "names", "lookup"]

KINDS = ("sampler", "loss", "input")
_NAMED: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str | None = None, replace: bool = False):
    """Class decorator: Keras-serializable, and (with ``name``) known by that string for its ``kind``.

    A name already taken by another class is an error unless ``replace`` (to swap
    the library's own reader of a tag, say).

    >>> @register("loss", "my-loss")
    ... class MyLoss:
    ...     def get_config(self):
    ...         return {}
    >>> lookup("loss", "my-loss") is MyLoss
    True
    """
    if kind not in KINDS:
        raise ValueError(f"register: kind must be one of {KINDS}, got {kind!r}")

    def wrap(cls):
        if hasattr(cls, "get_config"):  # input readers are rebuilt from the schema, not saved
            keras.saving.register_keras_serializable(package="schemaretrieval")(cls)
        if name is not None:
            other = _NAMED[kind].get(name)
            if other is not None and other.__qualname__ != cls.__qualname__ and not replace:
                raise ValueError(f"register: the {kind} name {name!r} is taken by {other.__qualname__}; "
                                 "pass replace=True to swap it")
            _NAMED[kind][name] = cls
        return cls

    return wrap


def names(kind: str) -> list[str]:
    """The registered names of ``kind``, sorted.

    >>> "in-batch" in names("sampler")
    True
    """
    return sorted(_known(kind))


def _known(kind: str) -> dict[str, type]:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; known: {', '.join(KINDS)}")
    return _NAMED[kind]


def lookup(kind: str, name: str) -> type:
    """The class registered as ``name`` for ``kind``; an error with a did-you-mean otherwise.

    >>> lookup("sampler", "in-batch").__name__
    'InBatchSampler'
    """
    known = _known(kind)
    if not isinstance(name, str):
        raise TypeError(f"a {kind} name must be a string, got {name!r}; known: {', '.join(sorted(known))}")
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"unknown {kind} {name!r}{hint}; known: {', '.join(sorted(known))}")
    return known[name]


def get(kind: str, spec, **kwargs):
    """An instance from ``spec``: a registered name (built with ``kwargs``), a Keras config
    dict (deserialized), or an instance, returned as it is.

    >>> type(get("loss", "bpr")).__name__
    'BPRLoss'
    """
    known = _known(kind)
    if isinstance(spec, str):
        return lookup(kind, spec)(**kwargs)
    if isinstance(spec, dict) and "class_name" in spec:
        return keras.saving.deserialize_keras_object(spec)
    if spec is None or isinstance(spec, (dict, bool, numbers.Number, list, tuple, set)):
        raise TypeError(f"a {kind} must be a registered name ({', '.join(sorted(known))}), a Keras config dict "
                        f"or an instance, got {spec!r}")
    return spec
