"""Spec strings: ``name[key=value,...]`` and ``kind:key=value,...``.

Optimizers and tasks are named as ``adam-balanced[beta=0.99,lr=3e-4]`` or
``mypkg.opt:MyAdam[lr=1e-3]``; perturbations as ``ramp:start=0.3,end=0.6,factor=100``.
Values are parsed as Python literals where possible (numbers, booleans, tuples), else kept as strings.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from gsibench.core.errors import UsageError


def parse_value(text: str) -> Any:
    """``'3e-4'`` -> 3e-4, ``'true'`` -> True, ``'(0.9,0.99)'`` -> (0.9, 0.99), else the string."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets/parentheses: ``'a[x=1,y=2],b'`` -> ``['a[x=1,y=2]', 'b']``."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth < 0:
                raise UsageError(f"unbalanced brackets in '{text}'")
        if char == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise UsageError(f"unbalanced brackets in '{text}'")
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_kwargs(text: str, context: str, example: str) -> dict[str, Any]:
    """``'lr=1e-3,beta=0.9'`` -> ``{'lr': 0.001, 'beta': 0.9}``; errors name the bad field."""
    kwargs: dict[str, Any] = {}
    for item in split_top_level(text):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier() or not value.strip():
            raise UsageError(f"bad field '{item}' in '{context}': expected key=value, e.g. {example}")
        if key in kwargs:
            raise UsageError(f"field '{key}' given twice in '{context}'")
        kwargs[key] = parse_value(value)
    return kwargs


def parse_named(spec: str, example: str = "adam-balanced[beta=0.99,lr=3e-4]") -> tuple[str, dict[str, Any]]:
    """``'adam-balanced[beta=0.99]'`` -> ``('adam-balanced', {'beta': 0.99})``."""
    spec = spec.strip()
    if not spec:
        raise UsageError(f"empty name; expected e.g. {example}")
    if "[" not in spec:
        if "]" in spec:
            raise UsageError(f"unbalanced brackets in '{spec}'; expected e.g. {example}")
        return spec, {}
    name, _, rest = spec.partition("[")
    if not rest.endswith("]"):
        raise UsageError(f"'{spec}' must end with ']'; expected e.g. {example}")
    return name.strip(), parse_kwargs(rest[:-1], spec, example)


def format_named(name: str, kwargs: dict[str, Any]) -> str:
    """Inverse of :func:`parse_named`, with keys sorted so equal specs print equally."""
    if not kwargs:
        return name
    return f"{name}[{','.join(f'{k}={v!r}' if isinstance(v, str) else f'{k}={v}' for k, v in sorted(kwargs.items()))}]"


def split_list(text: str | list[str] | None) -> Iterator[str]:
    """A comma list from the CLI (brackets respected), or a list from TOML, item by item."""
    if text is None:
        return iter(())
    if isinstance(text, str):
        return iter(split_top_level(text))
    return iter(str(t) for t in text)
