"""The ``gsibench`` command line: a leaf of the package that nothing else imports.

``main`` parses arguments with only the standard library loaded; each command imports the engine (and
torch, MLflow) when it runs, so ``gsibench --help`` and usage errors come back fast.
"""

from gsibench.cli.parser import main

__all__ = ["main"]
