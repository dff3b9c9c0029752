"""What a β grid trains: the protocol, the (β1, β2) cells and the number of steps.

Two protocols (``gsibench grid --protocol``):

* ``quick`` (default): each task's own schedule, initialization and steps, no weight decay, and the
  engine's ω window scaled with the run length (``OscillationWindow.for_steps``: the first 10% of the
  steps dropped, w = T/20 capped at 200).
* ``paper``: the authors' training and analysis scripts (github.com/AlbertoFdezHdez/Adam_equal_betas,
  ``code/experiments/*.py``, ``analysis/analyze_training_dynamics.py``): sinusoidal initialization, a
  linear lr warm-up over the first 20% of the steps then cosine, weight decay (torch Adam's
  ``weight_decay``, per task: :data:`~gsibench.reproductions.defaults.PAPER_WEIGHT_DECAY`), and ω with
  w = 200 after dropping 3 of 60 epochs' worth of steps (5%).

Cells: a square grid (every β of ``--betas`` for both β1 and β2), or ``--fine``: per β1 row, a
log-spaced scan of 1 − β2 around 1 − β1 (:func:`fine_pairs`).

Steps: Adam's second moment averages over about 1/(1 − β2) steps; a run shorter than that is still
in its start-up. The default number of steps is therefore at least
``GRID_MEMORIES / (1 − max β2)`` (3,000 for β2 = 0.999).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gsibench.core.errors import UsageError
from gsibench.core.specs import format_named, parse_named
from gsibench.reproductions.defaults import (
    FINE_POINTS,
    FINE_RATIO,
    GRID_MEMORIES,
    PAPER_LR_WARMUP,
    PAPER_OMEGA_SKIP,
    PAPER_OMEGA_WINDOW,
    PAPER_WEIGHT_DECAY,
    PAPER_WEIGHT_DECAY_OTHER,
)

Pair = tuple[float, float]


@dataclass(frozen=True)
class Protocol:
    """How every cell of a grid trains and how its ω is measured (``None``: the task's or engine's own)."""

    name: str
    schedule: str | None
    lr_warmup: float
    init: str | None
    weight_decay: bool
    """Set weight decay per task (:data:`PAPER_WEIGHT_DECAY`) unless the optimizer spec sets one."""
    omega_window: int | None
    omega_skip: float | None
    """Fraction of the steps dropped before ω."""

    def weight_decay_for(self, task_name: str) -> float | None:
        if not self.weight_decay:
            return None
        return PAPER_WEIGHT_DECAY.get(task_name, PAPER_WEIGHT_DECAY_OTHER)

    def omega_warmup(self, steps: int) -> int | None:
        return None if self.omega_skip is None else int(self.omega_skip * steps)


QUICK = Protocol("quick", schedule=None, lr_warmup=0.05, init=None, weight_decay=False, omega_window=None,
                 omega_skip=None)
PAPER = Protocol("paper", schedule="warmup-cosine", lr_warmup=PAPER_LR_WARMUP, init="sinusoidal",
                 weight_decay=True, omega_window=PAPER_OMEGA_WINDOW, omega_skip=PAPER_OMEGA_SKIP)
PROTOCOLS = {protocol.name: protocol for protocol in (QUICK, PAPER)}


def square_pairs(betas: Sequence[float]) -> list[Pair]:
    """Every (β1, β2) with both in ``betas``, rows (β1) first, in the given order."""
    return [(b1, b2) for b1 in betas for b2 in betas]


def fine_pairs(beta1s: Sequence[float], points: int = FINE_POINTS, ratio: float = FINE_RATIO) -> list[Pair]:
    """Per β1: β2 = 1 − (1 − β1)·ratio^j for j = −(points // 2) … points // 2, rounded to 8 significant
    digits of β2 (j = 0 is β1 itself). With ratio √2 the neighbours j = ±1 keep β2 ≥ β1² whenever
    β1 ≥ √2 − 1, and j = −2 (1 − β2 = 2(1 − β1)) is just below β1²."""
    half = points // 2
    pairs = []
    for beta1 in beta1s:
        for j in range(-half, half + 1):
            beta2 = beta1 if j == 0 else float(f"{1 - (1 - beta1) * ratio ** (-j):.8g}")
            if not 0 <= beta2 < 1:
                raise UsageError(f"--fine: the row β1 = {beta1:g} would need β2 = {beta2:.4g}, outside [0, 1); "
                                 f"use rows with β1 ≥ {1 - 1 / ratio ** half:.3g}")
            pairs.append((beta1, beta2))
    return pairs


def steps_needed(pairs: Sequence[Pair], memories: int = GRID_MEMORIES) -> int:
    """``memories`` / (1 − max β2), rounded up (3 / (1 − 0.999) = 3,000: the rounding of 1 − 0.999 in
    binary is undone by rounding the quotient to 9 significant digits first)."""
    slowest = max(beta2 for _, beta2 in pairs)
    return math.ceil(float(f"{memories / (1 - slowest):.9g}"))


def grid_specs(pairs: Sequence[Pair], optimizer: str = "adam", lr: float | None = None,
               weight_decay: float | None = None) -> list[str]:
    """One optimizer spec per (β1, β2) cell: ``adam[beta1=0.9,beta2=0.99]``, ...

    ``optimizer`` may carry hyperparameters of its own (``adam[eps=1e-10]``) but not the betas;
    ``weight_decay`` is set only where the spec does not set it."""
    name, hparams = parse_named(optimizer)
    if {"beta1", "beta2", "beta"} & set(hparams):
        raise ValueError(f"'{optimizer}' sets a beta itself; the grid sets beta1 and beta2")
    if lr is not None:
        hparams["lr"] = lr
    if weight_decay is not None:
        hparams.setdefault("weight_decay", weight_decay)
    return [format_named(name, {**hparams, "beta1": b1, "beta2": b2}) for b1, b2 in pairs]
