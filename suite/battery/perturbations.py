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
layerwise ``layerwise:sigma=0.05,start=0.3``           per tensor i: log c_{k,i} a random walk with steps
                                                       σ z from start·T on (layers' gradient norms drift
                                                       apart, as in real training)
loss-scale ``loss-scale:init=65536,interval=100,p=0.01`` a dynamic fp16 loss scale S_k whose unscale was
                                                       forgotten: powers of two, ×2 every ``interval``
                                                       steps without overflow, ×½ at an overflow (each
                                                       step with probability p, from the seed)
accum     ``accum:at=0.5,k=8``                         gradient accumulation switched from mean to sum:
                                                       ×k from at·T on
========  ===========================================  ==================================================

Every kind also takes ``role=hidden|input|output|vector`` to rescale only that role's gradients, and
``order=pre-clip|post-clip``: with gradient clipping on, ``pre-clip`` (the default: what a real bug does)
rescales before the clip, which may absorb it; ``post-clip`` rescales the clipped gradient (what the
optimizer alone sees). Fractions (at, start, end) are of the run's T steps. Random kinds draw from the
cell's seed, so a perturbed run and a rerun of it see the same sequence.
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
TensorScheduleFn = Callable[[int, dict[str, Any], int, int], np.ndarray]
ORDERS = ("pre-clip", "post-clip")
MAX_SCALE = 2.0**24
"""The largest loss scale (the scaler's growth stops there; float32 gradients stay finite)."""


@dataclass(frozen=True)
class Kind:
    name: str
    defaults: dict[str, Any]
    example: str
    description: str
    schedule: ScheduleFn
    check: Callable[[dict[str, Any]], None] = lambda fields: None
    tensor_schedule: TensorScheduleFn | None = None
    """For kinds whose scale differs per tensor: ``(steps, fields, seed, tensors) -> (steps, tensors)``;
    ``schedule`` is then the first tensor's column (it fixes the perturbed window)."""


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


def _layerwise(steps: int, f: dict, seed: int, tensors: int) -> np.ndarray:
    """Per tensor an independent log-random walk; tensor i draws from (seed, i), so its walk does not
    depend on how many tensors there are."""
    start = int(math.ceil(f["start"] * steps))
    walks = np.ones((steps, tensors))
    for i in range(tensors):
        z = np.random.default_rng([seed, 0x1A7E5, i]).standard_normal(steps - start)
        walks[start:, i] = np.exp(f["sigma"] * np.cumsum(z))
    return walks


def _loss_scale(k: np.ndarray, steps: int, f: dict, rng: np.random.Generator) -> np.ndarray:
    """torch.cuda.amp.GradScaler's schedule (growth 2, backoff ½) with overflows drawn from the seed."""
    start = int(math.ceil(f["start"] * steps))
    overflow = rng.random(steps) < f["p"]
    scales, scale, clean = np.ones(steps), float(f["init"]), 0
    for step in range(start, steps):
        scales[step] = scale
        if overflow[step]:
            scale, clean = max(scale / 2, 1.0), 0
        else:
            clean += 1
            if clean == f["interval"]:
                scale, clean = min(scale * 2, MAX_SCALE), 0
    return scales


def _check_layerwise(fields: dict) -> None:
    _fraction(fields, "start")
    _bounded(fields, "sigma", 0.0, 2.0)


def _check_loss_scale(fields: dict) -> None:
    _fraction(fields, "start")
    if isinstance(fields["p"], bool) or not isinstance(fields["p"], (int, float)) or not 0 <= fields["p"] <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {fields['p']!r}")
    init = fields["init"]
    if not isinstance(init, (int, float)) or not 1 <= init <= MAX_SCALE or math.log2(init) % 1:
        raise ValueError(f"init must be a power of two from 1 to 2^24, got {init!r}")
    if isinstance(fields["interval"], bool) or not isinstance(fields["interval"], int) or fields["interval"] < 1:
        raise ValueError(f"interval must be a whole number of steps >= 1, got {fields['interval']!r}")


def _bounded(fields: dict, key: str, low: float, high: float) -> None:
    """``low < value <= high`` (a sane range: a typo such as sigma=1e300 is refused, not run)."""
    value = fields[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
        raise ValueError(f"{key} must be in ({low:g}, {high:g}], got {value!r}")


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
        Kind("layerwise", {"sigma": 0.05, "start": 0.3}, "layerwise:sigma=0.05,start=0.3",
             "each tensor's scale its own log-random walk exp(sigma*sum z) from start*T (layers drift apart)",
             lambda k, T, f, rng: np.ones_like(k), _check_layerwise, _layerwise),
        Kind("loss-scale", {"init": 65536.0, "interval": 100, "p": 0.01, "start": 0.0},
             "loss-scale:init=65536,interval=100,p=0.01",
             "a dynamic fp16 loss scale left in the gradients (unscale forgotten): x2 every `interval` clean "
             "steps, x1/2 at an overflow (probability p per step)", _loss_scale, _check_loss_scale),
        Kind("accum", {"at": 0.5, "k": 8.0}, "accum:at=0.5,k=8",
             "gradient accumulation switched from mean to sum: gradients times k from at*T on",
             lambda k, T, f, rng: np.where(k >= f["at"] * T, f["k"], 1.0),
             lambda f: (_fraction(f, "at"), _bounded(f, "k", 1.0, 1e6))),
    ]
}
INTEGER_FIELDS = {"length", "interval"}


@dataclass(frozen=True)
class Perturbation:
    """A parsed perturbation: kind, its fields (defaults filled in) and an optional role."""

    kind: str
    fields: tuple[tuple[str, Any], ...] = ()
    role: str | None = None
    order: str = "pre-clip"
    """Where the rescaling happens relative to gradient clipping (only matters when clipping is on)."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.fields)

    @property
    def spec(self) -> str:
        """Canonical spec string: every field, sorted, so equal perturbations have equal specs."""
        items = [f"{k}={v}" for k, v in self.fields if v is not None]
        if self.role:
            items.append(f"role={self.role}")
        if self.order != "pre-clip":  # the default stays out, so specs (and cell keys) made before it stay valid
            items.append(f"order={self.order}")
        return self.kind + (":" + ",".join(items) if items else "")

    @property
    def is_clean(self) -> bool:
        return self.kind == "none"

    @property
    def per_tensor(self) -> bool:
        """Whether each tensor gets its own scale (see :meth:`tensor_scales`)."""
        return KINDS[self.kind].tensor_schedule is not None

    def schedule(self, steps: int, seed: int = 0) -> np.ndarray:
        """c_0 … c_{T−1} as float64; noise is drawn from ``seed`` (same seed, same noise). For a per-tensor
        kind, the first tensor's scales."""
        kind = KINDS[self.kind]
        if kind.tensor_schedule is not None:
            return kind.tensor_schedule(steps, self.params, seed, 1)[:, 0].copy()
        k = np.arange(steps, dtype=float)
        rng = np.random.default_rng([seed, 0x5CA1E])
        scales = np.asarray(kind.schedule(k, steps, self.params, rng), dtype=float)
        return np.broadcast_to(scales, k.shape).copy()

    def tensor_scales(self, steps: int, seed: int, tensors: int) -> np.ndarray:
        """c_{k,i} for step k and rescaled tensor i, shape (steps, tensors)."""
        kind = KINDS[self.kind]
        if kind.tensor_schedule is not None:
            return kind.tensor_schedule(steps, self.params, seed, tensors)
        return np.repeat(self.schedule(steps, seed)[:, None], tensors, axis=1)

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
    order = given.pop("order", "pre-clip")
    if order not in ORDERS:
        raise UsageError(f"bad field 'order={order}' in '{spec}': order must be one of {', '.join(ORDERS)}")
    unknown = sorted(set(given) - set(kind.defaults))
    if unknown:
        valid = ", ".join(list(kind.defaults) + ["role", "order"])
        raise UsageError(f"bad field '{unknown[0]}' in '{spec}': {name} takes {valid}; e.g. {kind.example}")
    fields = {**kind.defaults, **given}
    if name == "ramp" and "rate" in given and "factor" not in given:
        fields["factor"] = None
    try:
        kind.check(fields)
    except ValueError as error:
        raise UsageError(f"bad field in '{spec}': {error}; e.g. {kind.example}") from None
    fields = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) and k not in INTEGER_FIELDS else v)
              for k, v in fields.items()}
    return Perturbation(name, tuple(sorted(fields.items())), role, order)


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
