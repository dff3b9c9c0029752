"""Hyperparameter checks shared by the built-ins; each names the bad value."""

from __future__ import annotations

from typing import Any


def require_range(hparams: dict[str, Any], key: str, low: float, high: float, *, closed_high: bool = False) -> None:
    """``low <= hparams[key] < high`` (or ``<= high`` when ``closed_high``)."""
    value = hparams[key]
    ok = isinstance(value, (int, float)) and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{key} must be in [{low}, {high}{bracket}, got {value!r}")


def require_nonnegative(hparams: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = hparams[key]
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be >= 0, got {value!r}")


def require_positive(hparams: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = hparams[key]
        if not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{key} must be > 0, got {value!r}")
