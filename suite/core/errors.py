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


def unknown_name(kind: str, name: str, valid: Iterable[str], *, plural: str | None = None,
                 where: str = "") -> UsageError:
    """An error for an unknown ``name`` that lists the valid ones and the closest match.

    ``unknown_name("optimizer", "adma", [...])`` -> "unknown optimizer 'adma'. Did you mean 'adam'?
    Valid optimizers: adam, …". ``plural`` where adding an s is wrong ("quantities"); ``where`` names
    the place looked in ("module mypkg.opt", "--tolerance").
    """
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    place = f" in {where}" if where else ""
    listed = ", ".join(valid) if valid else "(none)"
    return UsageError(f"unknown {kind} '{name}'{place}.{hint} Valid {plural or kind + 's'}: {listed}.")
