"""The ``gsibench`` parser and entry point.

Each command is a small module here with ``add_parser(subparsers)`` (standard library only at import
time) and a function that runs it, importing the engine when called. A ``UsageError`` anywhere prints
one line and exits 2, before any training starts.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from gsibench.core.errors import UsageError

COMMANDS: tuple[str, ...] = ("listing", "run", "grid", "invariance", "phase", "leaderboard", "check", "server")
"""Modules of ``gsibench.cli`` that add sub-commands, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsibench", description="Optimizer benchmark with a gradient-scale "
                                     "robustness battery. Results go to MLflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"gsibench.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # database set-up chatter; warnings still show
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"gsibench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsibench: interrupted; finished cells are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
