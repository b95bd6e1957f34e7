"""The error every schema check raises, the did-you-mean its messages use, and the check
that a schema argument is a schema."""

from __future__ import annotations

import difflib

from merlin.schema import Schema

__all__ = ["SchemaError", "did_you_mean", "require_schema"]


class SchemaError(ValueError):
    """A schema that cannot be used: says where (source, line, column, key) and what was expected.

    The message reads ``<source>[: line N][: column 'c'][, key 'k']: <problem; expectation>``;
    the parts are also kept as attributes for code that wants to react to them.

    >>> err = SchemaError("schemas/x.yaml", "unknown tag 'itme'", column="item_id", key="tags", line=4)
    >>> str(err)
    "schemas/x.yaml: line 4: column 'item_id', key 'tags': unknown tag 'itme'"
    >>> err.column, err.key
    ('item_id', 'tags')
    """

    def __init__(self, source, message, column=None, key=None, line=None):
        self.source, self.message = str(source), message
        self.column, self.key, self.line = column, key, line
        where = [self.source]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}" + (f", key {key!r}" if key is not None else ""))
        elif key is not None:
            where.append(f"key {key!r}")
        super().__init__(": ".join(where + [message]))

    def __reduce__(self):
        # Dask workers pickle exceptions; the default would call __init__ with the full text.
        return type(self), (self.source, self.message, self.column, self.key, self.line)


def did_you_mean(word, choices) -> str:
    """`` 'word' (did you mean 'x' or 'y'?)`` when close choices exist, else `` 'word'``.

    Two suggestions: a swap of letters ties ('itme' is as close to 'item' as to 'time').

    >>> did_you_mean("itme", ["item", "time", "user"])
    " 'itme' (did you mean 'time' or 'item'?)"
    >>> did_you_mean("zzz", ["item"])
    " 'zzz'"
    """
    close = " or ".join(repr(c) for c in difflib.get_close_matches(str(word), choices, n=2))
    return f" {word!r} (did you mean {close}?)" if close else f" {word!r}"


def require_schema(schema, where: str):
    """``schema`` when it is a merlin ``Schema``; anything else (a YAML path, a dict) is a
    TypeError naming ``where`` and how to get one, not an AttributeError from inside.

    >>> require_schema("schemas/synthetic.yaml", "Catalog.of_domain")
    Traceback (most recent call last):
    ...
    TypeError: Catalog.of_domain: schema must be a merlin Schema (sr.load_schema(path) reads a YAML file), got the str 'schemas/synthetic.yaml'
    """
    if not isinstance(schema, Schema):
        raise TypeError(f"{where}: schema must be a merlin Schema (sr.load_schema(path) reads a YAML file), "
                        f"got the {type(schema).__name__} {schema!r:.80}")
    return schema
