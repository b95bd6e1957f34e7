"""The ``schemaretrieval`` command (also ``python -m schemaretrieval``), one module per command.

* ``train``: TwoTowerModel(schema) trained, reported, saved and exported.
* ``etl``: raw interactions encoded by the workflow built from the schema.
* ``evaluate``: a saved model beside baselines, recall@1..100.
* ``serve``: ``recommend`` and ``similar-items`` from an export.
* ``common``: the data sources and splits they share.
* ``startup``: TensorFlow's devices started without the cuInit line of a machine with no GPU,
  and the process ended without the crash of the stack's teardown.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["main"]


def main(argv=None) -> int:
    """Parses ``argv`` and runs the command; a user's error is one line on stderr and exit status 2.

    Without ``argv`` (the ``schemaretrieval`` command, ``python -m schemaretrieval``)
    it is the whole process and ends it (`startup.end_process`).

    >>> main(["train", "--epochs", "0"])  # doctest: +SKIP
    """
    if argv is None:
        from schemaretrieval.cli.startup import end_process

        end_process(main, sys.argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The library's own INFO (the ETL engine, what was written) and every
    # library's warnings; TensorFlow's INFO (the SavedModel's renamed captured
    # inputs, "Assets written to") says nothing a user can act on.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("schemaretrieval").setLevel(logging.INFO)
    from schemaretrieval.cli import etl, evaluate, serve, startup, train
    from schemaretrieval.cli.common import ArgumentParser

    parser = ArgumentParser(prog="schemaretrieval", description="Schema-first two-tower retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parser(sub)
    etl.add_etl_parser(sub)
    evaluate.add_parser(sub)
    serve.add_parsers(sub)
    args = parser.parse_args(argv)
    startup.start_devices()
    try:
        if getattr(args, "check", None) is not None:
            args.check(args)  # the arguments together, before any work
        args.run(args)
    except (ValueError, KeyError, OSError) as error:
        # Bad input is the user's to fix: the message, not a traceback.
        from schemaretrieval.schema import SchemaError

        if isinstance(error, SchemaError) and error.source == "<schema>" and getattr(args, "schema", None):
            # a check after loading knows the Schema object, not its file; the command knows the file
            error = SchemaError(args.schema, error.message, error.column, error.key, error.line)
        message = str(error).strip().replace("\n", " ") if not isinstance(error, KeyError) else f"missing {error}"
        parser.exit(2, f"schemaretrieval {args.command}: error: {message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
