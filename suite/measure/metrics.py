"""Summary metrics from update-norm series, as defined in DESIGN "Definitions".

* **Oscillation ω** (arXiv 2601.21739, ``analyze_training_dynamics.py``): drop a warm-up prefix,
  smooth ‖R_k‖ with an EMA of α = 2/(w+1) started at the first kept value, then
  ω1 = mean |Δ s_k| and ω2 = mean |Δ² s_k| (interior second differences).
* **Update sensitivity**: mean over the perturbed window of |log(‖R_k^pert‖ / ‖R_k^clean‖)|.
* **Trajectory divergence**: ‖θ_T^pert − θ_T^clean‖ / ‖θ_T^clean − θ_0‖.
* **Order of invariance**: the log-log slope of D(δ) = max_k |‖R_k^δ‖ − ‖R_k^clean‖| against δ.
* **Diagonal test**: one-sided exact binomial P(X ≥ k | n, p0) (:func:`success_tail` when p0 differs
  between trials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PAPER_WINDOW = 200


def ema(values: np.ndarray, window: int) -> np.ndarray:
    """EMA with α = 2/(window+1), started at the first value (pandas ``ewm(span=w, adjust=False)``)."""
    alpha = 2.0 / (window + 1.0)
    out = np.empty(len(values), dtype=float)
    if len(values) == 0:
        return out
    out[0] = values[0]
    for k in range(1, len(values)):
        out[k] = (1 - alpha) * out[k - 1] + alpha * values[k]
    return out


@dataclass(frozen=True)
class OscillationWindow:
    """The warm-up prefix dropped and the EMA window used; both are logged with ω."""

    warmup: int
    window: int

    @classmethod
    def for_steps(cls, steps: int) -> OscillationWindow:
        """The paper's w = 200 for long runs, scaled down for short ones (w ≈ T/20, at least 5);
        the first 10% of steps are dropped as warm-up."""
        warmup = steps // 10
        return cls(warmup, int(min(PAPER_WINDOW, max(5, (steps - warmup) // 20))))


def oscillation(norms: np.ndarray, warmup: int, window: int) -> tuple[float, float]:
    """(ω1, ω2) of an update-norm series; NaN where too few finite values remain."""
    kept = np.asarray(norms, dtype=float)[warmup:]
    if len(kept) < 3 or not np.all(np.isfinite(kept)):
        return math.nan, math.nan
    smooth = ema(kept, window)
    return float(np.mean(np.abs(np.diff(smooth)))), float(np.mean(np.abs(np.diff(smooth, n=2))))


def update_sensitivity(perturbed: np.ndarray, clean: np.ndarray, window: slice) -> float:
    """Mean over ``window`` of |log(‖R^pert‖ / ‖R^clean‖)|.

    A step where both updates are exactly zero counts 0 (the same non-move). A step where exactly one
    of them is zero has no ratio — a projection held the parameter at a boundary in one run and not in
    the other (the ``reddi`` task), which says where the run is, not how its optimizer responds to the
    gradient scale — so it is left out of the mean; NaN if no step is left, and NaN when a norm in the
    window is not finite (a run that diverged there has no ratio either)."""
    length = min(len(perturbed), len(clean))
    p = np.asarray(perturbed, dtype=float)[:length][window]
    c = np.asarray(clean, dtype=float)[:length][window]
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(c))):
        return math.nan
    comparable = (p > 0) == (c > 0)
    if not comparable.any():
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(np.log(p[comparable]) - np.log(c[comparable]))
    ratio[(p[comparable] == 0) & (c[comparable] == 0)] = 0.0
    return float(np.mean(ratio))


def trajectory_divergence(final_perturbed: np.ndarray, final_clean: np.ndarray, clean_travel: float) -> float:
    """‖θ_T^pert − θ_T^clean‖ / ‖θ_T^clean − θ_0‖ (``clean_travel`` is the denominator)."""
    if final_perturbed is None or final_clean is None or not clean_travel > 0:
        return math.nan
    gap = np.linalg.norm(np.asarray(final_perturbed, float) - np.asarray(final_clean, float))
    return float(gap / clean_travel)


def max_deviation(perturbed: np.ndarray, clean: np.ndarray) -> float:
    """D = max_k |‖R_k^pert‖ − ‖R_k^clean‖| over the common steps."""
    length = min(len(perturbed), len(clean))
    return float(np.max(np.abs(np.asarray(perturbed[:length], float) - np.asarray(clean[:length], float))))


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x over the points with y > 0 (NaN if < 2)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def binomial_tail(successes: int, trials: int, p0: float) -> float:
    """One-sided exact binomial test: P(X ≥ successes) for X ~ Binomial(trials, p0)."""
    return float(sum(math.comb(trials, i) * p0**i * (1 - p0) ** (trials - i) for i in range(successes, trials + 1)))


def success_tail(successes: int, probabilities: list[float]) -> float:
    """P(X ≥ successes) for X the number of successes of independent trials with the given success
    probabilities (a Poisson-binomial law; :func:`binomial_tail` when they are all equal). Exact, by
    dynamic programming over the trials."""
    law = np.zeros(len(probabilities) + 1)
    law[0] = 1.0
    for i, p in enumerate(probabilities):
        law[1 : i + 2] = law[1 : i + 2] * (1 - p) + law[: i + 1] * p
        law[0] *= 1 - p
    return float(min(1.0, law[max(0, successes):].sum()))
