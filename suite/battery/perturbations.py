"""Gradient-scale perturbations: a schedule k ↦ c_k > 0.

After ``backward()`` and before ``optimizer.step()`` the runner multiplies gradients by c_k
(all of them, or only those of one parameter role): ``g_k ← c_k · g_k``. A perturbation is nothing
but that schedule — everything else (which runs, which twin, which metric) is the battery's business.

Spec strings ``kind:key=value,...``:

========  ===========================================  ==================================================
kind      example                                      c_k
========  ===========================================  ==================================================
none      ``none``                                     1
constant  ``constant:factor=1000``                     factor from step 0
step      ``step:at=0.5,factor=10``                    1 before at·T, factor after
ramp      ``ramp:start=0.3,end=0.6,factor=100``        log-linear 1 → factor over [start·T, end·T], then
                                                       factor; ``rate=δ`` instead of ``factor`` sets the
                                                       drift δ = d log c / dk directly
noise     ``noise:sigma=0.5``                          exp(σ z_k), z_k ~ N(0, 1) from the seed
spike     ``spike:at=0.5,factor=100,length=1``         factor for ``length`` steps at at·T
bump      ``bump:height=0.5,start=0.333,end=0.667``    1 + h[σ((k − a)/w) − σ((k − b)/w)] (the scale of
                                                       arXiv 2601.21739 Figs. 1–2; w = ``width`` steps)
========  ===========================================  ==================================================

Every kind also takes ``role=hidden|input|output|vector`` to rescale only that role's gradients.
Fractions (at, start, end) are of the run's T steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gsibench.core.errors import UsageError, unknown_name
from gsibench.core.params import ROLES
from gsibench.core.specs import parse_kwargs, parse_value

ScheduleFn = Callable[[np.ndarray, int, dict[str, Any], np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Kind:
    name: str
    defaults: dict[str, Any]
    example: str
    description: str
    schedule: ScheduleFn
    check: Callable[[dict[str, Any]], None] = lambda fields: None


def _fraction(fields: dict, *keys: str) -> None:
    for key in keys:
        value = fields[key]
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{key} must be a fraction of training in [0, 1], got {value!r}")


LIMITS = {"factor": (1e-12, 1e12), "sigma": (0.0, 4.0), "length": (0.0, 1e7), "width": (0.0, 1e7), "rate": (-1.0, 1.0)}
"""Sane ranges of the fields (a bound of 0 is exclusive). A scale c in [1e-12, 1e12] keeps a float32 gradient of
1e-8…1e4 a finite normal number (float32 spans 1.2e-38…3.4e38); noise exp(σz) stays in that range for |z| ≤ 6.9
at σ ≤ 4; a drift rate beyond one e-fold per step is no drift but a jump."""


def _positive(fields: dict, *keys: str) -> None:
    for key in keys:
        value = fields[key]
        low, high = LIMITS.get(key, (0.0, math.inf))
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not value > 0 or not low <= value <= high:
            if high == math.inf:
                raise ValueError(f"{key} must be a positive finite number, got {value!r}")
            raise ValueError(f"{key} must be a positive number in {'(' if low == 0 else '['}{low:g}, {high:g}], "
                             f"got {value!r}")


def _check_ramp(fields: dict) -> None:
    _fraction(fields, "start", "end")
    if fields["end"] <= fields["start"]:
        raise ValueError(f"end ({fields['end']}) must be after start ({fields['start']})")
    if fields["rate"] is not None:
        low, high = LIMITS["rate"]
        if not isinstance(fields["rate"], (int, float)) or not low <= fields["rate"] <= high:
            raise ValueError(f"rate must be in [{low:g}, {high:g}] (log-scale change per step), got {fields['rate']!r}")
    else:
        _positive(fields, "factor")


def _ramp(k: np.ndarray, steps: int, f: dict, rng: np.random.Generator) -> np.ndarray:
    start, end = f["start"] * steps, f["end"] * steps
    log_factor = f["rate"] * (end - start) if f["rate"] is not None else math.log(f["factor"])
    progress = np.clip((k - start) / max(end - start, 1e-12), 0.0, 1.0)
    return np.exp(log_factor * progress)


def _window(k: np.ndarray, steps: int, f: dict) -> np.ndarray:
    return (k >= f["start"] * steps) & (k < f["end"] * steps)


def _noise(k: np.ndarray, steps: int, f: dict, rng: np.random.Generator) -> np.ndarray:
    return np.where(_window(k, steps, f), np.exp(f["sigma"] * rng.standard_normal(k.shape)), 1.0)


def _spike(k: np.ndarray, steps: int, f: dict, rng: np.random.Generator) -> np.ndarray:
    at = int(f["at"] * steps)
    return np.where((k >= at) & (k < at + f["length"]), f["factor"], 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bump(k: np.ndarray, steps: int, f: dict, rng: np.random.Generator) -> np.ndarray:
    a, b, w = f["start"] * steps, f["end"] * steps, f["width"]
    return 1.0 + f["height"] * (_sigmoid((k - a) / w) - _sigmoid((k - b) / w))


def _check_bump(fields: dict) -> None:
    _fraction(fields, "start", "end")
    _positive(fields, "width")
    if not isinstance(fields["height"], (int, float)) or not -1 < fields["height"] <= LIMITS["factor"][1]:
        raise ValueError(f"height must be in (-1, {LIMITS['factor'][1]:g}] so that the scale stays positive and "
                         f"finite, got {fields['height']!r}")


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in [
        Kind("none", {}, "none", "no rescaling (the clean twin)", lambda k, T, f, rng: np.ones_like(k, dtype=float)),
        Kind("constant", {"factor": 1000.0}, "constant:factor=1000", "every gradient times factor from step 0",
             lambda k, T, f, rng: np.full_like(k, f["factor"], dtype=float), lambda f: _positive(f, "factor")),
        Kind("step", {"at": 0.5, "factor": 10.0}, "step:at=0.5,factor=10", "gradients times factor from at*T on",
             lambda k, T, f, rng: np.where(k >= f["at"] * T, f["factor"], 1.0),
             lambda f: (_fraction(f, "at"), _positive(f, "factor"))),
        Kind("ramp", {"start": 0.3, "end": 0.6, "factor": 100.0, "rate": None},
             "ramp:start=0.3,end=0.6,factor=100",
             "log-linear drift from 1 to factor (or at drift rate `rate` per step) over [start, end]",
             _ramp, _check_ramp),
        Kind("noise", {"sigma": 0.5, "start": 0.0, "end": 1.0}, "noise:sigma=0.5",
             "log-normal per-step scale exp(sigma*z)", _noise,
             lambda f: (_positive(f, "sigma"), _fraction(f, "start", "end"))),
        Kind("spike", {"at": 0.5, "factor": 100.0, "length": 1}, "spike:at=0.5,factor=100,length=1",
             "gradients times factor for `length` steps", _spike,
             lambda f: (_fraction(f, "at"), _positive(f, "factor", "length"))),
        Kind("bump", {"height": 0.5, "start": 1 / 3, "end": 2 / 3, "width": 20.0},
             "bump:height=0.5,start=0.333,end=0.667",
             "smooth bump 1 + h[sig((k-a)/w) - sig((k-b)/w)] (arXiv 2601.21739 Figs. 1-2)", _bump, _check_bump),
    ]
}


@dataclass(frozen=True)
class Perturbation:
    """A parsed perturbation: kind, its fields (defaults filled in) and an optional role."""

    kind: str
    fields: tuple[tuple[str, Any], ...] = ()
    role: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.fields)

    @property
    def spec(self) -> str:
        """Canonical spec string: every field, sorted, so equal perturbations have equal specs."""
        items = [f"{k}={v}" for k, v in self.fields if v is not None]
        if self.role:
            items.append(f"role={self.role}")
        return self.kind + (":" + ",".join(items) if items else "")

    @property
    def is_clean(self) -> bool:
        return self.kind == "none"

    def schedule(self, steps: int, seed: int = 0) -> np.ndarray:
        """c_0 … c_{T−1} as float64; noise is drawn from ``seed`` (same seed, same noise)."""
        k = np.arange(steps, dtype=float)
        rng = np.random.default_rng([seed, 0x5CA1E])
        scales = np.asarray(KINDS[self.kind].schedule(k, steps, self.params, rng), dtype=float)
        return np.broadcast_to(scales, k.shape).copy()

    def window(self, steps: int, seed: int = 0) -> slice:
        """The perturbed window: from the first step with c_k ≠ 1 to the end of the run."""
        changed = np.flatnonzero(self.schedule(steps, seed) != 1.0)
        return slice(int(changed[0]), steps) if changed.size else slice(steps, steps)


def parse(spec: str) -> Perturbation:
    """``'ramp:start=0.3,end=0.6,factor=100'`` -> Perturbation; errors name the bad field."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("empty perturbation spec; expected e.g. step:at=0.5,factor=10")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in KINDS:
        raise unknown_name("perturbation", name, KINDS)
    kind = KINDS[name]
    given = parse_kwargs(rest, spec, kind.example) if rest.strip() else {}
    role = given.pop("role", None)
    if role is not None and role not in ROLES:
        raise UsageError(f"bad field 'role={role}' in '{spec}': role must be one of {', '.join(ROLES)}")
    unknown = sorted(set(given) - set(kind.defaults))
    if unknown:
        valid = ", ".join(list(kind.defaults) + ["role"])
        raise UsageError(f"bad field '{unknown[0]}' in '{spec}': {name} takes {valid}; e.g. {kind.example}")
    fields = {**kind.defaults, **given}
    if name == "ramp" and "rate" in given and "factor" not in given:
        fields["factor"] = None
    try:
        kind.check(fields)
    except ValueError as error:
        raise UsageError(f"bad field in '{spec}': {error}; e.g. {kind.example}") from None
    fields = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) and k != "length" else v)
              for k, v in fields.items()}
    return Perturbation(name, tuple(sorted(fields.items())), role)


def split_specs(text: str) -> list[str]:
    """Split a comma list of perturbation specs whose fields also use commas:
    ``'step:at=0.5,factor=10,noise:sigma=0.5'`` -> ``['step:at=0.5,factor=10', 'noise:sigma=0.5']``.
    A piece starts a new spec when it is ``kind`` or ``kind:...``; ``key=value`` pieces continue one."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.replace(";", ",").split(",")):
        if not piece:
            continue
        head = piece.split(":", 1)[0]
        if "=" in head and specs:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def describe() -> list[tuple[str, str, str]]:
    """(kind, example, description) for ``gsibench list perturbations``."""
    return [(k.name, k.example, k.description) for k in KINDS.values()]


__all__ = ["KINDS", "Perturbation", "describe", "parse", "parse_value", "split_specs"]
