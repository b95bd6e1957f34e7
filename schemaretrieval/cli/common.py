"""What the commands share: where the data comes from, how it is split, and a plain-text table.

Every command that reads interactions takes one of ``--data`` (a table, or
the output directory of ``schemaretrieval etl``: its schema, ``valid/`` and
artifacts come with it), ``--synthetic N``, ``--preset NAME`` or
``--movielens DIR`` (run through the ETL into ``OUT/etl`` first), and splits
it the same way from ``--valid``, ``--test-fraction`` and ``--seed``.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from schemaretrieval import arguments
from schemaretrieval import data as data_lib
from schemaretrieval.data import parquet
from schemaretrieval.data.presets import PRESETS, preset
from schemaretrieval.data.read import read_frame
from schemaretrieval.schema import load_schema

log = logging.getLogger("schemaretrieval")

__all__ = ["ArgumentParser", "Sources", "add_source_arguments", "sources", "is_etl_dir", "format_table",
           "users_table", "interactions_table", "num_rows", "number", "positive_int", "positive_float", "fraction",
           "seed", "cutoffs"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (what is wrong and where to read more),
    exit status 2, instead of the usage block and then the error.

    >>> parser = ArgumentParser(prog="schemaretrieval train")
    >>> _ = parser.add_argument("--epochs", type=positive_int)
    >>> parser.parse_args(["--epochs", "0"])  # doctest: +SKIP
    schemaretrieval train: error: argument --epochs: expected an integer >= 1, got 0 (see schemaretrieval train --help)
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def seed(text: str) -> int:
    """argparse type: a seed, an integer in [0, 2**32 - 1] (what NumPy and TensorFlow take).

    >>> seed("7")
    7
    """
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 4294967295], got {text!r}")
    return value


def cutoffs(text: str) -> list[int]:
    """argparse type of ``--ks``: comma-separated distinct cut-offs >= 1.

    >>> cutoffs("10,100")
    [10, 100]
    """
    from schemaretrieval.evaluation.metrics import check_ks

    try:
        return list(check_ks([int(k) for k in text.split(",") if k.strip()]))
    except ValueError:  # a value that is not an int, or what check_ks refuses
        raise argparse.ArgumentTypeError(f"expected comma-separated distinct integers >= 1 such as 10,100, "
                                         f"got {text!r}") from None


def number(**bounds):
    """argparse type: a finite number within ``bounds`` (`sr.arguments.number`'s: ``above``,
    ``at_least``, ``at_most``, ``below``), checked and worded as the Python API checks it.

    >>> number(above=0, below=1)("0.2")
    0.2
    """
    def parse(text: str) -> float:
        try:
            return arguments.number(float(text), "", "", **bounds)
        except ValueError:  # not a number, NaN, inf, or outside the bounds
            raise argparse.ArgumentTypeError(f"expected {arguments.number_expected(**bounds)}, got {text!r}") from None
    return parse


#: argparse types of a learning rate, a regulariser, and a share of the rows.
positive_float, fraction = number(above=0), number(above=0, below=1)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, as `sr.arguments.integer` checks it."""
    try:
        return arguments.integer(int(text), "", "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def directory(text: str) -> str:
    """argparse type of an output directory: new, or an existing directory, not a file
    (found before any work, rather than when the first file is written)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a directory (new or existing), got the file {text!r}")
    return text


def add_source_arguments(p, group):
    """--data/--synthetic/--preset go into ``group`` (one of them is required); --valid and the split."""
    group.add_argument("--data", help="interactions: a parquet file or directory, a csv file, "
                       "or the output directory of `schemaretrieval etl` (schema, valid/ and artifacts included)")
    group.add_argument("--synthetic", type=positive_int, metavar="N", help="generate N interactions from the schema")
    group.add_argument("--preset", choices=sorted(PRESETS), help="a generated preset with its own schema")
    p.add_argument("--valid", help="held-out interactions; default: --test-fraction of the data")
    p.add_argument("--test-fraction", type=fraction, default=0.2,
                   help="held out when --valid is not given (default 0.2)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seeds data generation, the split, shuffling and initialisation (an integer in [0, 2**32 - 1])")


def is_etl_dir(path) -> bool:
    """True for a directory written by `sr.etl.fit_transform` (schema.yaml and train/)."""
    path = Path(path)
    return path.is_dir() and (path / "schema.yaml").is_file() and (path / "train").is_dir()


@dataclass
class Sources:
    """The data of a command: ``train`` and ``test`` (DataFrames or parquet paths read as
    they are needed), ``everything`` (both, for the catalog), the schema, how to name
    the data, and the ETL output whose artifacts the export reads (or None)."""

    schema: object
    train: object
    test: object
    everything: list
    source: str
    etl_dir: Path | None = None


def sources(args, schema=None) -> Sources:
    """The data of ``args`` (see the module docstring); ``schema`` overrides the data's own."""
    etl_dir = None
    if getattr(args, "movielens", None):
        from schemaretrieval.cli.etl import run_etl

        result = run_etl(argparse.Namespace(**{**vars(args), "train": None, "valid": None,
                                               "out": str(Path(args.out) / "etl")}))
        args.data = str(result.out_dir)
    if getattr(args, "preset", None):
        frame, preset_schema = preset(args.preset, args.seed)
        schema = schema or preset_schema
        source = f"--preset {args.preset}"
    elif args.synthetic is not None:
        if schema is None:
            raise ValueError("--synthetic generates from --schema: give --schema")
        frame = data_lib.synthetic(schema, args.synthetic, seed=args.seed)
        source = f"--synthetic {args.synthetic}"
    else:
        root = Path(args.data)
        if is_etl_dir(root):
            etl_dir = root
            schema = schema or load_schema(root / "schema.yaml")
            if not args.valid and (root / "valid").is_dir():
                args.valid = str(root / "valid")
            log.info("ETL output %s: schema, train/ and %s", root, "valid/" if args.valid else "no valid/")
            frame, source = str(root / "train"), str(root / "train")
        else:
            frame, source = args.data, args.data
        if schema is None:
            raise ValueError("give --schema (only an ETL output --data or a --preset brings its own)")
    if args.valid:
        # Paths stay paths: the training path streams what is too large to hold.
        # The catalog holds the items of either part: held-out items that
        # training never saw (the ETL's OOV id among them) are ranked too.
        return Sources(schema, frame, args.valid, [frame, args.valid], source, etl_dir)
    frame = read_frame(frame, "--data")[0] if not isinstance(frame, pd.DataFrame) else frame
    if getattr(args, "on_bad_rows", "error") == "error":
        # before the split renumbers them: an error names the row of the user's own file
        data_lib.to_arrays(frame, schema, source=source)
    train, test = data_lib.random_split(frame, args.test_fraction, seed=args.seed)
    return Sources(schema, train, test, [frame], source, etl_dir)


def num_rows(data) -> int:
    """Rows of a DataFrame, or of a table at a path (a parquet path from its footers)."""
    if isinstance(data, pd.DataFrame):
        return len(data)
    groups = parquet.row_groups(data)
    return sum(g.num_rows for g in groups) if groups else len(read_frame(data, "--data")[0])


def interactions_table(data, names) -> pd.DataFrame:
    """The columns ``names`` of a table or path (a parquet path read a row group at a time)."""
    if not isinstance(data, pd.DataFrame) and parquet.row_groups(data):
        return pd.concat([table.to_pandas() for table in parquet.iter_tables(data, names)], ignore_index=True)
    return read_frame(data, "interactions")[0][list(names)]


def users_table(sources_list, names, user_id) -> pd.DataFrame:
    """One row of the columns ``names`` per user (the last one) over every source."""
    frames = []
    for data in sources_list:
        frame = interactions_table(data, names)
        frames.append(frame.drop_duplicates(user_id, keep="last") if user_id in names else frame)
    users = pd.concat(frames, ignore_index=True)
    return users.drop_duplicates(user_id, keep="last") if user_id in names else users


def format_table(rows: dict[str, dict[str, float]], columns: list[str]) -> str:
    """A plain-text table: one row per ranker, one column per metric.

    >>> print(format_table({"model": {"recall@10": 0.25}}, ["recall@10"]))
            recall@10
    model      0.2500
    """
    width = max(len(name) for name in rows)
    lines = [" ".join([" " * width] + [f"{c:>11}" for c in columns])]
    for name, metrics in rows.items():
        lines.append(" ".join([f"{name:<{width}}"] + [f"{metrics[c]:>11.4f}" for c in columns]))
    return "\n".join(lines)
