"""Normalised scores: every task's validation score on one scale that does not depend on the pool.

Per task with a score, two fixed points come from the *reference* optimizer's clean runs alone
(``adam`` unless told otherwise; its lr chosen by its own sweep):

* the **trivial baseline** s₀ — the mean validation score at the initial parameters (``init_score``,
  logged by every run: chance accuracy for a classifier, the initial loss or suboptimality otherwise);
* the **reference score** s_ref — the mean clean validation score.

A run's normalised score is q = (s − s₀)/(s_ref − s₀): 0 is "no better than doing nothing", 1 is "as
good as tuned Adam", above 1 better. The formula holds for either direction of the score (both
differences change sign together). Because s₀ and s_ref come from the reference's runs only, adding or
removing another entry never moves an entry's q.

A run **diverged** (the runner flagged it) or **collapsed** (q < :data:`COLLAPSE`: it kept less than 10%
of the reference's improvement over the trivial baseline — an MLP left at chance accuracy, a language
model near its initial loss) scores as the trivial baseline, q = 0, whatever it printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

REFERENCE = "adam"
COLLAPSE = 0.1
"""A run with a normalised score below this is collapsed and scores as the trivial baseline (0)."""


@dataclass(frozen=True)
class Normaliser:
    """The two fixed points of one task (see the module docstring)."""

    task: str
    trivial: float
    reference: float
    runs: int
    """How many reference runs fixed them."""

    def __call__(self, score: float) -> float:
        return (score - self.trivial) / (self.reference - self.trivial)


def normalisers(runs: pd.DataFrame, scored: list[str], reference: str = REFERENCE) -> dict[str, Normaliser]:
    """One :class:`Normaliser` per scored task on which ``reference`` has clean finished runs whose score
    moved away from the trivial baseline (otherwise the scale is undefined and the task has none)."""
    out = {}
    if "init_score" not in runs:
        return out
    for task in scored:
        mine = runs[(runs["task"] == task) & (runs["optimizer"] == reference) & (runs["perturbation"] == "none")
                    & (runs["outcome"] == "finished")]
        scores, inits = mine["val_score"].astype(float), mine["init_score"].astype(float)
        keep = np.isfinite(scores) & np.isfinite(inits)
        if not keep.any():
            continue
        trivial, best = float(inits[keep].mean()), float(scores[keep].mean())
        if abs(best - trivial) > 1e-12 * max(abs(best), abs(trivial), 1e-300):
            out[task] = Normaliser(task, trivial, best, int(keep.sum()))
    return out


def outcome_of(diverged: bool, q: float) -> str:
    """``diverged``, ``collapsed`` (q below :data:`COLLAPSE`, or no score although the run finished) or ``ok``."""
    if diverged:
        return "diverged"
    return "collapsed" if not math.isfinite(q) or q < COLLAPSE else "ok"


def add_quality(runs: pd.DataFrame, normaliser: dict[str, Normaliser]) -> pd.DataFrame:
    """``runs`` with ``q_raw`` (the normalised score as measured), ``failure`` (``diverged``,
    ``collapsed`` or empty) and ``quality`` (q_raw, or 0 for a failure); NaN where a task has no scale."""
    runs = runs.copy()
    raw, failure, quality = [], [], []
    for row in runs.itertuples(index=False):
        row = row._asdict()
        scale = normaliser.get(row["task"])
        if scale is None:
            raw.append(math.nan), failure.append(""), quality.append(math.nan)
            continue
        diverged = row.get("outcome") == "diverged" or row.get("diverged", 0) == 1
        value = float(row.get("val_score", math.nan))
        q = scale(value) if math.isfinite(value) else math.nan
        state = outcome_of(diverged, q)
        raw.append(q)
        failure.append("" if state == "ok" else state)
        quality.append(q if state == "ok" else 0.0)
    runs["q_raw"], runs["failure"], runs["quality"] = raw, failure, quality
    return runs
