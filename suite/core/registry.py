"""One registry for every kind of plugin (optimizers, tasks): four ways in, one way out.

A name resolves, in this order, to

1. an item put in with :meth:`Registry.add` — the built-ins (each family module imported the first time
   one of its names is asked for) and whatever a ``@register`` decorator in user code added,
2. an import path ``package.module:attr`` (modules in the working directory are found, as with
   ``python -m``),
3. an entry point of the registry's group (``[project.entry-points."gsibench.optimizers"]``).

What an item is — an :class:`~gsibench.optimizers.registry.OptimizerEntry`, a
:class:`~gsibench.tasks.base.Task` subclass — is the caller's business: the registry takes a
``convert(obj, name)`` that turns whatever a plugin module holds into an item, or raises
:class:`UsageError` saying what was expected. Every failure is a one-line ``UsageError`` naming the
valid choices.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from gsibench.core.errors import UsageError, unknown_name

T = TypeVar("T")


def importable_from_cwd() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does, so that ``--import
    mymodule`` and ``mymodule:MyAdam`` find a module beside the user's battery file. Child processes
    started with spawn or forkserver inherit ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def import_module(name: str, purpose: str) -> Any:
    """``importlib.import_module`` with a one-line error that says what the module was for."""
    importable_from_cwd()
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise UsageError(f"cannot import module '{name}' ({purpose}): {error}") from None
    except Exception as error:  # the module itself raised while importing
        raise UsageError(f"importing module '{name}' ({purpose}) failed: {error!r}") from None


def import_plugins(modules: Iterable[str]) -> None:
    """Import the modules that ``@register`` plugins (``--import``, a battery's ``imports``)."""
    for module in modules:
        import_module(module, "a plugin module named by --import or imports")


def load_import_path(path: str, kind: str, accepts: Callable[[Any], bool] | None = None) -> Any:
    """``'package.module:attr'`` -> the attribute, with errors that say which part is wrong.

    ``accepts`` picks the attributes listed as valid when ``attr`` is missing (so that an error lists
    the module's optimizers, not the ``math`` and ``torch`` it imported)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UsageError(f"import path '{path}' must look like package.module:attr")
    module = import_module(module_name, f"{kind} '{path}'")
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            valid = [name for name, value in vars(module).items()
                     if not name.startswith("_") and _defined_in(value, module_name)
                     and (accepts is None or accepts(value))]
            raise unknown_name(kind, attr, valid, where=f"module {module_name}")
        obj = getattr(obj, part)
    return obj


def _defined_in(value: Any, module_name: str) -> bool:
    """Whether ``value`` belongs to the module: not an imported module, class or function."""
    if inspect.ismodule(value):
        return False
    if inspect.isclass(value) or inspect.isroutine(value):
        return getattr(value, "__module__", None) == module_name
    return True


class Registry(Generic[T]):
    """Named items of one kind (see the module docstring for the ways in).

    ``builtins`` names a module holding ``BUILTINS``, a table of built-in name -> the module that
    registers it; a module is imported when one of its names is first asked for, so a name can be
    checked (:meth:`require`) without importing any of them.
    """

    def __init__(self, kind: str, group: str, builtins: str, convert: Callable[[Any, str], T],
                 accepts: Callable[[Any], bool] | None = None):
        self.kind = kind
        self.group = group
        """Entry-point group, e.g. ``gsibench.optimizers``."""
        self.builtins = builtins
        self.convert = convert
        self.accepts = accepts
        self._items: dict[str, T] = {}
        self._table: dict[str, str] | None = None

    @property
    def builtin_modules(self) -> dict[str, str]:
        """Built-in name -> the module that registers it."""
        if self._table is None:
            self._table = dict(importlib.import_module(self.builtins).BUILTINS)
        return self._table

    def _load(self, name: str) -> None:
        module = self.builtin_modules.get(name)
        if module is not None and name not in self._items:
            importlib.import_module(module)

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name`` (replacing one of the same name)."""
        self._items[name] = item
        return item

    def names(self) -> list[str]:
        """Every name usable right now — built-ins, decorated, entry points — without importing any."""
        return sorted(set(self.builtin_modules) | set(self._items) | set(self._entry_points()))

    def require(self, name: str) -> None:
        """Raise the one-line error for a name that does not exist (import paths are checked on use)."""
        if ":" not in name and name not in self._items and name not in self.builtin_modules \
                and name not in self._entry_points():
            raise unknown_name(self.kind, name, self.names())

    def get(self, name: str) -> T:
        """The item for a registered name, an import path or an entry-point name."""
        self._load(name)
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return self.add(name, self.convert(load_import_path(name, self.kind, self.accepts), name))
        entry_point = self._entry_points().get(name)
        if entry_point is None:
            raise unknown_name(self.kind, name, self.names())
        try:
            obj = entry_point.load()
        except Exception as error:
            raise UsageError(f"entry point '{name}' ({entry_point.value}) of group {self.group} failed to load: "
                             f"{error!r}") from None
        return self.add(name, self.convert(obj, name))

    def available(self) -> list[str]:
        """Every name usable right now, with every built-in family imported (for listing them)."""
        for module in dict.fromkeys(self.builtin_modules.values()):
            importlib.import_module(module)
        return self.names()
