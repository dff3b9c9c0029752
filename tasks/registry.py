"""The task registry: built-ins, a decorator, entry points (group ``gsibench.tasks``) and import
paths ``package.module:Class`` — the same three ways as optimizers."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from suite.errors import UsageError, unknown_name
from suite.specs import parse_named
from tasks.base import Task

ENTRY_POINT_GROUP = "gsibench.tasks"
_REGISTRY: dict[str, type[Task]] = {}
_BUILTINS_LOADED = False


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"@register expects a Task subclass, got {cls!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("tasks.builtins")


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_entry_points()))


def get(name: str) -> Task:
    """A task instance by registered name, entry-point name or import path."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]()
    if ":" in name:
        from optimizers.registry import load_import_path

        obj = load_import_path(name, kind="task")
    elif name in _entry_points():
        obj = _entry_points()[name].load()
    else:
        raise unknown_name("task", name, available())
    if isinstance(obj, type) and issubclass(obj, Task):
        return obj()
    if isinstance(obj, Task):
        return obj
    raise UsageError(f"'{name}' is a {type(obj).__name__}, expected a gsibench Task subclass")


def resolve(spec: str) -> tuple[Task, dict[str, Any]]:
    """``'digits-mlp[width=256]'`` -> (task, full options)."""
    name, overrides = parse_named(spec, example="digits-mlp[width=256]")
    task = get(name)
    return task, task.resolve_options(overrides)
