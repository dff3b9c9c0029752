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

import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gsibench.core.errors import UsageError
from gsibench.core.isolation import call_isolated
from gsibench.core.params import ParamInfo, probe_params
from gsibench.core.registry import Registry
from gsibench.core.specs import format_named, parse_named

ENTRY_POINT_GROUP = "gsibench.optimizers"
Factory = Callable[..., Any]
"""``factory(params: list[ParamInfo], **hparams) -> torch.optim.Optimizer``."""

if TYPE_CHECKING:  # torch loads with the first optimizer built: naming or checking one needs none
    import torch
PROBE_TIMEOUT = 120.0
"""Seconds a plugin optimizer may take to build on the probe parameters (the cell timeout's start-up
allowance, :data:`gsibench.battery.limits.STARTUP_SECONDS`, unless a battery sets another)."""


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
    """Accept hyperparameters not listed in ``defaults`` (a user class or factory taking ``**kwargs``)."""

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

    @property
    def builtin(self) -> bool:
        """Whether the factory is one of gsibench's own (trusted to come back when called)."""
        return getattr(self.factory, "__module__", "").startswith("gsibench.optimizers.")

    def check(self, overrides: dict[str, Any] | None = None, timeout: float | None = PROBE_TIMEOUT) -> dict[str, Any]:
        """Resolve hyperparameters and build the optimizer once on a tiny probe set, so that a bad
        value or a broken plugin fails before any training starts. Returns the hyperparameters.

        A plugin is built in a child process (:func:`gsibench.core.isolation.call_isolated`) limited to
        ``timeout`` seconds (``None``: no limit): a constructor that hangs, exits or crashes is a
        UsageError here, not the end of the driver."""
        merged = self.hparams(overrides)
        if self.builtin:
            _build_on_probe(self, merged)
        else:
            call_isolated(_build_on_probe, (self, merged), timeout,
                          f"building optimizer '{self.name}' on probe parameters")
        return merged


def _build_on_probe(entry: OptimizerEntry, hparams: dict[str, Any]) -> None:
    import torch

    try:
        optimizer = entry.factory(probe_params(), **hparams)
    except (ValueError, TypeError) as error:
        raise UsageError(f"optimizer '{entry.name}' rejected {hparams}: {error}") from None
    except Exception as error:  # a plugin that cannot even be constructed
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        raise UsageError(f"optimizer '{entry.name}' could not be built: {detail}") from None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UsageError(
            f"optimizer '{entry.name}': factory returned {type(optimizer).__name__}, "
            "expected a torch.optim.Optimizer"
        )


def _class_factory(cls: type[torch.optim.Optimizer]) -> Factory:
    def factory(params: list[ParamInfo], **hparams: Any) -> torch.optim.Optimizer:
        return cls([p.tensor for p in params], **hparams)

    factory.__name__, factory.__module__ = cls.__name__, cls.__module__  # the class's module owns it
    return factory


def _signature_hparams(func: Callable[..., Any], skip: int) -> tuple[dict[str, Any], bool]:
    """(keyword parameters with plain defaults, whether ``**kwargs`` is taken) of a signature, skipping
    its first ``skip`` parameters (``self, params`` or ``params``)."""
    defaults, open_ = {}, False
    for index, (name, parameter) in enumerate(inspect.signature(func).parameters.items()):
        if index < skip or parameter.kind is parameter.VAR_POSITIONAL:
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            open_ = True
        elif parameter.default is not inspect.Parameter.empty and isinstance(
            parameter.default, (int, float, bool, str, tuple, type(None))
        ):
            defaults[name] = parameter.default
    return defaults, open_


def as_entry(obj: Any, name: str, description: str | None = None, **options: Any) -> OptimizerEntry:
    """Wrap an entry, an Optimizer subclass or a factory function as an :class:`OptimizerEntry`.

    The hyperparameters of a class or a factory are the keyword parameters of its signature; unknown
    ones are refused before training, as for a built-in, unless the signature takes ``**kwargs``."""
    import torch

    if isinstance(obj, OptimizerEntry):
        return obj
    if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
        found, open_ = _signature_hparams(obj.__init__, skip=2)
        factory = _class_factory(obj)
    elif inspect.isfunction(obj) or inspect.ismethod(obj):
        found, open_ = _signature_hparams(obj, skip=1)
        factory = obj
    else:
        raise UsageError(f"'{name}' is a {type(obj).__name__}; expected an OptimizerEntry, a torch.optim.Optimizer "
                         "subclass or a factory(params, **hparams)")
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    defaults = options.pop("defaults", None)
    return OptimizerEntry(name, description or (doc[0] if doc else f"user optimizer {name}"), factory,
                          found if defaults is None else defaults, open_hparams=open_, **options)


def is_optimizer(obj: Any) -> bool:
    """What an import path may name: an entry, an Optimizer subclass or a factory function."""
    import torch

    return isinstance(obj, OptimizerEntry) or inspect.isfunction(obj) or (
        isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer))


REGISTRY: Registry[OptimizerEntry] = Registry("optimizer", ENTRY_POINT_GROUP, "gsibench.optimizers.builtins",
                                             as_entry, accepts=is_optimizer)


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
    return REGISTRY.add(entry.name, entry)


def get(name: str) -> OptimizerEntry:
    """The entry for a registered name, an import path ``pkg.module:attr`` or an entry-point name."""
    return REGISTRY.get(name)


def available() -> list[str]:
    """Every name usable right now: built-ins, decorated, entry points."""
    return REGISTRY.available()


def resolve(spec: str, timeout: float | None = PROBE_TIMEOUT, build: bool = True
            ) -> tuple[OptimizerEntry, dict[str, Any]]:
    """``'adam-balanced[beta=0.99]'`` -> (entry, full checked hyperparameters); a plugin's probe build may
    take ``timeout`` seconds (:meth:`OptimizerEntry.check`). ``build=False`` checks the values but leaves
    the probe build to :func:`check_builds`, for the cells that will actually run."""
    name, overrides = parse_named(spec)
    entry = get(name)
    return entry, entry.check(overrides, timeout) if build else entry.hparams(overrides)


def check_builds(named: list[tuple[str, dict[str, Any]]], timeout: float | None = PROBE_TIMEOUT) -> None:
    """Build each distinct (optimizer name, hyperparameters) once on the probe parameters: a broken
    plugin or a value only its constructor refuses fails here, before training."""
    seen = []
    for name, hparams in named:
        if (name, hparams) not in seen:
            seen.append((name, hparams))
            get(name).check(hparams, timeout)


def canonical(spec: str) -> str:
    """The spec with hyperparameters sorted (defaults not filled in): a stable display name."""
    name, overrides = parse_named(spec)
    return format_named(name, overrides)
