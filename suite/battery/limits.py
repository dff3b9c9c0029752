"""How long a cell may run: ``--cell-timeout SECONDS|off`` or ``cell_timeout`` in a battery file.

A cell past its limit is failed with reason ``timeout``; its worker process is killed and replaced, and
the battery goes on. The default is generous but finite, derived from the task's size::

    limit = STARTUP_SECONDS + steps × task.step_seconds

(``step_seconds`` is each task's CPU budget per step, tens of times what a step takes on a laptop core:
0.1 s for digits-mlp, 1 s for char-gpt, 30 s for cifar-resnet18). A number sets one limit for every
cell; ``off`` sets none. Building a plugin optimizer on probe parameters before training
(:meth:`gsibench.optimizers.registry.OptimizerEntry.check`) gets the same limit — :data:`STARTUP_SECONDS`
by default. The limit needs a worker process: cells run in the driver's own process (``--jobs 1``) can
only be limited by running them in a one-worker pool.

Standard library only at import (the command line's ``--help`` reads :data:`STARTUP_SECONDS`).
"""

from __future__ import annotations

import math
from typing import Any

from gsibench.core.errors import UsageError

STARTUP_SECONDS = 120.0
"""Allowance for starting a cell (imports, data loading, building the model) on top of its steps' budget."""
OFF = "off"


def parse_timeout(value: Any, source: str = "--cell-timeout") -> float | str | None:
    """``None`` (the default, derived per cell), a positive number of seconds, or ``'off'``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == OFF):
        return None if value is None else OFF
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UsageError(f"{source} takes a number of seconds or 'off', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value and math.isfinite(value)):
        raise UsageError(f"{source} must be a positive number of seconds or 'off', got {value!r}")
    return float(value)


def cell_limit(task_name: str, steps: int, setting: float | str | None) -> float | None:
    """Seconds a cell of ``task_name`` with ``steps`` steps may run (``None``: no limit)."""
    if setting == OFF:
        return None
    if setting is not None:
        return float(setting)
    from gsibench.tasks import registry as task_registry

    try:
        per_step = task_registry.get(task_name).step_seconds
    except Exception:  # a task that cannot be found here: the generic budget
        from gsibench.tasks.base import Task

        per_step = Task.step_seconds
    return STARTUP_SECONDS + steps * per_step


def probe_limit(setting: float | str | None) -> float | None:
    """Seconds the probe build of a plugin optimizer may take (``None``: no limit)."""
    if setting == OFF:
        return None
    return STARTUP_SECONDS if setting is None else float(setting)


def describe(setting: float | str | None) -> str:
    return "off" if setting == OFF else f"{setting:g} s" if setting is not None else (
        f"{STARTUP_SECONDS:g} s + steps × the task's per-step budget")
