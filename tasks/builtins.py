"""Importing this module registers every built-in task (one file per family)."""

from tasks import digits_mlp, oracle, quadratic  # noqa: F401
