"""Importing this module registers every built-in optimizer (one file per family)."""

from gsibench.optimizers import adam, lion, muon, scion, sgd  # noqa: F401
