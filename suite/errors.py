"""Errors meant for people.

A :class:`UsageError` is a mistake in what the user asked for (an unknown name, a bad
hyperparameter, a malformed spec). The CLI prints its message without a traceback and exits 2.
It is raised before any training starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(ValueError):
    """A user mistake; the CLI prints the message and exits with status 2."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UsageError:
    """An error for an unknown ``name`` that lists the valid ones and the closest match."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UsageError(f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid)}.")
