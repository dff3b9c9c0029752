"""The optimizer registry: one interface for built-ins and user optimizers.

An :class:`OptimizerEntry` is a name, a one-line description, default hyperparameters and a
factory ``factory(params: list[ParamInfo], **hparams) -> torch.optim.Optimizer``.

A user optimizer gets in three ways, all accepted wherever an optimizer name is:

1. the :func:`register` decorator in user code (on a factory or a ``torch.optim.Optimizer`` subclass),
2. an entry point in the group ``gsibench.optimizers`` (``name = "pkg.module:attr"``),
3. an import path ``package.module:attr`` naming an entry, a factory or an Optimizer subclass.

Hyperparameters ride in the same spec string: ``adam-balanced[beta=0.99,lr=3e-4]``.
"""

from __future__ import annotations

import importlib
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import torch

from optimizers.params import ParamInfo, probe_params
from suite.errors import UsageError, unknown_name
from suite.specs import format_named, parse_named

ENTRY_POINT_GROUP = "gsibench.optimizers"
Factory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer. ``validate(hparams)`` raises ``ValueError`` naming a bad value."""

    name: str
    description: str
    factory: Factory
    defaults: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[dict[str, Any]], None] | None = None
    scale_invariant: bool = True
    """Whether the update is unchanged (up to ε) when every gradient is multiplied by a constant."""
    open_hparams: bool = False
    """Accept hyperparameters not listed in ``defaults`` (user classes whose signature is unknown)."""

    def hparams(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``; unknown keys and invalid values raise UsageError."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown and not self.open_hparams:
            raise UsageError(
                f"optimizer '{self.name}' has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(self.defaults)) or '(none)'}"
            )
        merged = {**self.defaults, **overrides}
        lr = merged.get("lr", 1.0)
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr < float("inf")):
            raise UsageError(f"optimizer '{self.name}': lr must be a positive number, got {merged['lr']!r}")
        if self.validate is not None:
            try:
                self.validate(merged)
            except (ValueError, TypeError) as error:
                raise UsageError(f"optimizer '{self.name}': {error}") from None
        return merged

    def build(self, params: list[ParamInfo], **overrides: Any) -> torch.optim.Optimizer:
        """The optimizer over ``params`` with defaults overridden by ``overrides``."""
        return self.factory(params, **self.hparams(overrides))

    def check(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resolve hyperparameters and build the optimizer once on a tiny probe set, so that a bad
        value or a broken plugin fails before any training starts. Returns the hyperparameters."""
        merged = self.hparams(overrides)
        try:
            optimizer = self.factory(probe_params(), **merged)
        except (ValueError, TypeError) as error:
            raise UsageError(f"optimizer '{self.name}' rejected {merged}: {error}") from None
        except Exception as error:  # a plugin that cannot even be constructed
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            raise UsageError(f"optimizer '{self.name}' could not be built: {detail}") from None
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UsageError(
                f"optimizer '{self.name}': factory returned {type(optimizer).__name__}, "
                "expected a torch.optim.Optimizer"
            )
        return merged


_REGISTRY: dict[str, OptimizerEntry] = {}
_BUILTINS_LOADED = False


def _class_factory(cls: type[torch.optim.Optimizer]) -> Factory:
    def factory(params: list[ParamInfo], **hparams: Any) -> torch.optim.Optimizer:
        return cls([p.tensor for p in params], **hparams)

    factory.__name__ = cls.__name__
    return factory


def _class_defaults(cls: type) -> dict[str, Any]:
    """Keyword defaults of an Optimizer subclass's constructor (its hyperparameters)."""
    defaults = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "params") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is not inspect.Parameter.empty and isinstance(
            parameter.default, (int, float, bool, str, tuple, type(None))
        ):
            defaults[name] = parameter.default
    return defaults


def as_entry(obj: Any, name: str, description: str | None = None, **options: Any) -> OptimizerEntry:
    """Wrap an entry, an Optimizer subclass or a factory function as an :class:`OptimizerEntry`."""
    if isinstance(obj, OptimizerEntry):
        return obj
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    description = description or (doc[0] if doc else f"user optimizer {name}")
    if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
        defaults = options.pop("defaults", None) or _class_defaults(obj)
        return OptimizerEntry(name, description, _class_factory(obj), defaults, open_hparams=True, **options)
    if callable(obj):
        defaults = options.pop("defaults", None)
        if defaults is None:
            defaults = {
                k: p.default
                for k, p in inspect.signature(obj).parameters.items()
                if p.default is not inspect.Parameter.empty
            }
        return OptimizerEntry(name, description, obj, defaults, open_hparams=True, **options)
    raise UsageError(
        f"'{name}' is a {type(obj).__name__}; expected an OptimizerEntry, a torch.optim.Optimizer "
        "subclass or a factory(params, **hparams)"
    )


def register(name: str, description: str | None = None, **options: Any) -> Callable[[Any], Any]:
    """Decorator: register a factory or an Optimizer subclass under ``name``.

    >>> @register("my-adam", defaults={"lr": 1e-3})
    ... def my_adam(params, lr):
    ...     return torch.optim.Adam([p.tensor for p in params], lr=lr)
    """

    def decorate(obj: Any) -> Any:
        add(as_entry(obj, name, description, **options))
        return obj

    return decorate


def add(entry: OptimizerEntry) -> OptimizerEntry:
    """Put ``entry`` in the registry (replacing one of the same name)."""
    _REGISTRY[entry.name] = entry
    return entry


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("optimizers.builtins")


def _entry_point_names() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_import_path(path: str, kind: str = "optimizer") -> Any:
    """``'package.module:attr'`` -> the attribute, with errors that say which part is wrong."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UsageError(f"import path '{path}' must look like package.module:attr")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import module '{module_name}' for {kind} '{path}': {error}") from None
    except Exception as error:
        raise UsageError(f"importing '{module_name}' for {kind} '{path}' failed: {error!r}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [a for a in dir(module) if not a.startswith("_")]
            raise unknown_name(f"attribute of {module_name}", attr, public)
        obj = getattr(obj, part)
    return obj


def get(name: str) -> OptimizerEntry:
    """The entry for a registered name, an entry-point name, or an import path."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return add(as_entry(load_import_path(name), name))
    entry_point = _entry_point_names().get(name)
    if entry_point is not None:
        try:
            obj = entry_point.load()
        except Exception as error:
            raise UsageError(f"entry point '{name}' ({entry_point.value}) failed to load: {error!r}") from None
        return add(as_entry(obj, name))
    raise unknown_name("optimizer", name, available())


def available() -> list[str]:
    """Every name usable right now: built-ins, decorated, entry points."""
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_entry_point_names()))


def resolve(spec: str) -> tuple[OptimizerEntry, dict[str, Any]]:
    """``'adam-balanced[beta=0.99]'`` -> (entry, full checked hyperparameters)."""
    name, overrides = parse_named(spec)
    entry = get(name)
    return entry, entry.check(overrides)


def canonical(spec: str) -> str:
    """The spec with hyperparameters sorted (defaults not filled in): a stable display name."""
    name, overrides = parse_named(spec)
    return format_named(name, overrides)
