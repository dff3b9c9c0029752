"""Task options: what values each one takes, checked when a battery is planned.

A task declares its options in ``Task.options`` as ``name -> default`` or ``name -> Option(...)``. A plain
default declares the type by example: ``{"width": 128}`` takes integers, ``{"noise": 1.0}`` numbers,
``{"init": "default"}`` strings, ``{"verify": True}`` true or false; a ``None`` default takes anything.
:class:`Option` adds bounds, a list of choices, or a type for a ``None`` default::

    options = {"width": Option(128, low=1, high=16384), "init": Option("default", choices=INITS),
               "text": Option(None, kind=str)}

A value of the wrong type or out of range is a one-line :class:`~gsibench.core.errors.UsageError` naming
the task, the option and what it takes, raised before anything trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gsibench.core.errors import UsageError

KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One task option: its default and the values it takes.

    ``kind`` is a type (``int``, ``float``, ``str``, ``bool``), inferred from the default when not given (a
    ``None`` default then takes anything); a ``float`` option also takes integers, and ``None`` stays
    allowed where the default is ``None``. ``low``/``high`` bound numbers (inclusive); ``choices`` lists
    the allowed values.
    """

    default: Any
    kind: type | None = None
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def type(self) -> type | None:
        if self.kind is not None:
            return self.kind
        return None if self.default is None else type(self.default)

    def takes(self) -> str:
        """What the option takes, in words: ``an integer in [1, 16384]``, ``one of default, sinusoidal``."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = KIND_WORDS.get(self.type, f"a {getattr(self.type, '__name__', 'value')}")
            if self.low is not None and self.high is not None:
                text += f" in [{self.low:g}, {self.high:g}]"
            elif self.low is not None:
                text += f" >= {self.low:g}"
            elif self.high is not None:
                text += f" <= {self.high:g}"
        return text + (" (or none)" if self.default is None and self.type is not None else "")

    def accepts(self, value: Any) -> bool:
        if value is None and self.default is None:
            return True
        if self.choices is not None:
            return any(value == choice and type(value) is type(choice) for choice in self.choices)
        kind = self.type
        if kind is None:
            return True
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if ok and kind in (int, float):
            ok = (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        return ok


def declared(options: dict[str, Any]) -> dict[str, Option]:
    """``Task.options`` with every plain default turned into an :class:`Option`."""
    return {name: value if isinstance(value, Option) else Option(value) for name, value in options.items()}


def check_options(task: str, declarations: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The defaults merged with ``given``, every given value checked; a UsageError names the first bad one."""
    options = declared(declarations)
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise UsageError(f"task '{task}' has no option {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(sorted(options)) or '(none)'}")
    for name, value in given.items():
        option = options[name]
        if not option.accepts(value):
            raise UsageError(f"task '{task}': option {name} takes {option.takes()}, got {value!r}")
    return {**{name: option.default for name, option in options.items()}, **given}
