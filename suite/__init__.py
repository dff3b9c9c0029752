"""gsibench: an optimizer benchmark with a gradient-scale robustness battery.

Everything a plugin author needs is importable from here::

    from gsibench import register_optimizer, register_task, ParamInfo, Task, Problem, Score, UsageError

The names are loaded on first use, so ``import gsibench`` (and ``gsibench --help``) does not import
torch. The engine lives in sub-packages, bottom to top: ``core`` (errors, specs, roles, the registry),
``optimizers`` and ``tasks``, ``battery``, ``measure``, ``tracking``, ``execution``, then
``reproductions``, ``regression`` and ``leaderboard``; ``cli`` is a leaf that nothing imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "register_optimizer": ("gsibench.optimizers.registry", "register"),
    "register_task": ("gsibench.tasks.registry", "register"),
    "OptimizerEntry": ("gsibench.optimizers.registry", "OptimizerEntry"),
    "ParamInfo": ("gsibench.core.params", "ParamInfo"),
    "Role": ("gsibench.core.params", "Role"),
    "ROLES": ("gsibench.core.params", "ROLES"),
    "infer_roles": ("gsibench.core.params", "infer_roles"),
    "Task": ("gsibench.tasks.base", "Task"),
    "Problem": ("gsibench.tasks.base", "Problem"),
    "Score": ("gsibench.tasks.base", "Score"),
    "TaskOption": ("gsibench.tasks.options", "Option"),
    "EpochSampler": ("gsibench.tasks.base", "EpochSampler"),
    "step_generator": ("gsibench.tasks.base", "step_generator"),
    "UsageError": ("gsibench.core.errors", "UsageError"),
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gsibench' has no attribute '{name}'")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
