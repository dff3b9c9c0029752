"""The task registry: built-ins, the :func:`register` decorator, entry points (group ``gsibench.tasks``)
and import paths ``package.module:Class`` — the same ways in as optimizers
(:class:`gsibench.core.registry.Registry`)."""

from __future__ import annotations

from typing import Any

from gsibench.core.errors import UsageError
from gsibench.core.registry import Registry
from gsibench.core.specs import parse_named
from gsibench.tasks.base import Task

ENTRY_POINT_GROUP = "gsibench.tasks"


def _as_task_class(obj: Any, name: str) -> type[Task]:
    if isinstance(obj, type) and issubclass(obj, Task):
        return obj
    if isinstance(obj, Task):
        return type(obj)
    raise UsageError(f"'{name}' is a {type(obj).__name__}, expected a gsibench Task subclass")


def _is_task(obj: Any) -> bool:
    return isinstance(obj, Task) or (isinstance(obj, type) and issubclass(obj, Task) and obj is not Task)


REGISTRY: Registry[type[Task]] = Registry("task", ENTRY_POINT_GROUP, "gsibench.tasks.builtins", _as_task_class,
                                          accepts=_is_task)


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"@register expects a Task subclass, got {cls!r}")
    REGISTRY.add(cls.name, cls)
    return cls


def available() -> list[str]:
    return REGISTRY.available()


def get(name: str) -> Task:
    """A task instance by registered name, import path or entry-point name."""
    return REGISTRY.get(name)()


def resolve(spec: str) -> tuple[Task, dict[str, Any]]:
    """``'digits-mlp[width=256]'`` -> (task, full checked options)."""
    name, overrides = parse_named(spec, example="digits-mlp[width=256]")
    task = get(name)
    return task, task.resolve_options(overrides)
