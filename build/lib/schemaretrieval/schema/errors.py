"""The error every schema check raises, and the did-you-mean its messages use."""

from __future__ import annotations

import difflib

__all__ = ["SchemaError", "did_you_mean"]


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
