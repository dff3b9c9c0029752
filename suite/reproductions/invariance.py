"""Order of gradient-scale invariance (DESIGN "Definitions") and the traces of arXiv 2601.21739 Figs. 1–2.

On the gradient oracle (``tasks/oracle.py``: unit gradients g_k = d_k/‖d_k‖, so ‖g_k‖ = c_k) each
optimizer runs once clean (c ≡ 1) and once per ramp of drift rate δ, 2δ, 4δ, … (c_k log-linear with
slope δ = d log c / dk over a window of the run, then held). The deviation

    D(δ) = max_k |‖R_k^δ‖ − ‖R_k^clean‖|

falls as δ^p for small δ. The paper's continuous-time expansion of the normalized Adam update is a
sign term + (τ2 − τ1)·δ + O(δ²), with β = exp(−1/τ): Adam with β1 ≠ β2 is first-order sensitive
(p ≈ 1), Adam with β1 = β2 first-order invariant (p ≈ 2), and sign-based updates (sign-SGD, Lion) are
exactly invariant (D = 0; no slope). SGD's update *is* the gradient, so D = e^{δL} − 1 over a ramp of
L steps (p ≈ 1, rising where δL is no longer small).

Two layouts (``--layout``):

* ``short`` (default): the paper's oracle as in Figs. 1–2, 601 steps in float32, ramps over 30–60% of
  the run, δ = 5e-4 … 8e-3. Two effects bend balanced Adam's slope below 2, both measured (README,
  "Reproducing the papers"): the oracle's direction turns, and the O(δ²) remainder then contains a cross
  term δ·(turning rate), linear in δ; and ‖R_k‖ = ‖Δθ‖/η carries float32 rounding of ~ulp(θ)/η ≈ 3e-5.
* ``steady``: a long run in the regime the theory describes: a fixed direction
  (``oracle[rotation=0]``), float64, 2,000 steps at scale 1 and then a slow ramp over the remaining
  2,000, δ = 1e-5 … 1.6e-4. With a fixed direction and bias correction Adam is at its steady state from
  the first step; the ramp is long against every τ2 but Adam (0.9, 0.999)'s (τ2 ≈ 1000).

Each slope p comes with a bootstrap 95% interval: resample the seeds, then each seed's (δ, D) points,
with replacement, and refit (:data:`~gsibench.reproductions.defaults.BOOTSTRAP` resamples, NumPy seed 0).
The oracle has no randomness, so on it the interval shows how far the points are from one straight line.

**Matched control pair.** Adam with (β, β′) = (0.95, 0.96) runs beside the others. At rest on the
three-parameter oracle every coordinate of m̂/√v̂ is ±1, so ‖R‖ = √3, and a slow drift δ moves each
coordinate by (τ2 − τ1)·δ to first order, τ = β/(1 − β): the theory predicts D/δ = √3·(τ2 − τ1) = 8.66.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.core.progress import SILENT, Progress
from gsibench.measure.metrics import loglog_slope, max_deviation
from gsibench.reproductions.defaults import (
    BOOTSTRAP,
    CONTROL_PAIR,
    FIGURE_STEPS,
    INVARIANCE_RATE,
    STEADY_RAMP,
    STEADY_RATE,
    STEADY_STEPS,
    STEADY_TASK,
)

RAMP_START, RAMP_END = 0.3, 0.6
EXACT_TOLERANCE = 1e-12
"""D at or below this for every δ: the optimizer is exactly invariant (slope reported as NaN)."""

FIGURE_BUMP = f"bump:height=0.5,start={200 / FIGURE_STEPS!r},end={400 / FIGURE_STEPS!r},width=20"
"""s(k) = 1 + 0.5[σ((k − 200)/20) − σ((k − 400)/20)], k = 0…600 (arXiv 2601.21739 Figs. 1–2)."""
EQUAL_BETAS = (0.9, 0.95, 0.99, 0.999)
UNEQUAL_BETAS = ((0.9, 0.999), (0.9, 0.95), (0.9, 0.99), (0.99, 0.999))

DEVIATION_COLUMNS = ("optimizer", "seed", "drift_rate", "deviation")
ORDER_COLUMNS = ("optimizer", "slope", "slope_low", "slope_high")
CONTROL_COLUMNS = ("optimizer", "drift_rate", "deviation", "coefficient", "theory", "ratio")
FIGURE_COLUMNS = ("beta1", "beta2", "deviation", "relative_deviation")


@dataclass(frozen=True)
class Layout:
    """Where the ramps sit: the oracle's spec, the run length, the ramp window and the smallest rate."""

    name: str
    task: str
    steps: int
    ramp_start: float
    ramp_end: float
    rate: float
    figure: bool
    """Whether the Figs. 1–2 bump traces (defined for the paper's 601 steps) go with it."""

    def ramp(self, rate: float) -> str:
        return ramp_spec(rate, self.ramp_start, self.ramp_end)


SHORT = Layout("short", "oracle", FIGURE_STEPS, RAMP_START, RAMP_END, INVARIANCE_RATE, figure=True)
STEADY = Layout("steady", STEADY_TASK, STEADY_STEPS, *STEADY_RAMP, STEADY_RATE, figure=False)
LAYOUTS = {layout.name: layout for layout in (SHORT, STEADY)}


def drift_rates(base: float, doublings: int) -> list[float]:
    """δ, 2δ, 4δ, …, 2^doublings·δ."""
    return [base * 2.0**i for i in range(doublings + 1)]


def ramp_spec(rate: float, start: float = RAMP_START, end: float = RAMP_END) -> str:
    """The ramp perturbation of drift rate ``rate`` over [start, end] of the run (default 30–60%)."""
    return f"ramp:start={start!r},end={end!r},rate={rate!r}"


def control_spec(pair: tuple[float, float] = CONTROL_PAIR) -> str:
    return f"adam[beta1={pair[0]!r},beta2={pair[1]!r}]"


def first_order_coefficient(beta1: float, beta2: float) -> float:
    """√3·(τ2 − τ1) with τ = β/(1 − β): D/δ to first order on the three-parameter oracle at rest."""
    return math.sqrt(3) * (beta2 / (1 - beta2) - beta1 / (1 - beta1))


def figure_specs() -> list[tuple[float, float, str]]:
    """(β1, β2, optimizer spec) of the Figs. 1–2 traces: equal betas, then the unequal pairs."""
    pairs = [(b, b) for b in EQUAL_BETAS] + list(UNEQUAL_BETAS)
    return [(b1, b2, f"adam[beta1={b1},beta2={b2}]") for b1, b2 in pairs]


def deviation_frame(clean: Mapping[tuple[str, int], np.ndarray],
                    perturbed: Mapping[tuple[str, int, float], np.ndarray]) -> pd.DataFrame:
    """D(δ) per (optimizer, seed, δ): ``clean[(optimizer, seed)]`` and ``perturbed[(optimizer, seed, δ)]`` are
    ‖R_k‖ series; rows in the order of ``clean``'s optimizers, then seed and rate ascending."""
    rows = [{"optimizer": optimizer, "seed": seed, "drift_rate": rate,
             "deviation": max_deviation(series, clean[(optimizer, seed)])}
            for (optimizer, seed, rate), series in perturbed.items() if (optimizer, seed) in clean]
    frame = pd.DataFrame(rows, columns=list(DEVIATION_COLUMNS))
    order = list(dict.fromkeys(optimizer for optimizer, _ in clean))
    position = frame["optimizer"].map(order.index)
    return frame.assign(_order=position).sort_values(["_order", "seed", "drift_rate"], kind="stable").drop(
        columns="_order").reset_index(drop=True)


def slope_interval(points: pd.DataFrame, resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of the log-log slope over ``points`` (seed, drift_rate, deviation): resample
    the seeds with replacement, then each drawn seed's points; resamples with fewer than two distinct
    rates cannot be fitted and are dropped. (NaN, NaN) when nothing can be fitted."""
    rng = np.random.default_rng(seed)
    groups = [(g["drift_rate"].to_numpy(), g["deviation"].to_numpy()) for _, g in points.groupby("seed")]
    slopes = []
    for _ in range(resamples):
        xs, ys = [], []
        for index in rng.integers(len(groups), size=len(groups)):
            rates, deviations = groups[index]
            pick = rng.integers(len(rates), size=len(rates))
            xs.append(rates[pick])
            ys.append(deviations[pick])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(np.unique(x[y > 0])) >= 2:
            slopes.append(loglog_slope(x, y))
    slopes = np.array([value for value in slopes if math.isfinite(value)])
    if not slopes.size:
        return math.nan, math.nan
    return float(np.percentile(slopes, 2.5)), float(np.percentile(slopes, 97.5))


def invariance_order(deviations: pd.DataFrame, tolerance: float = EXACT_TOLERANCE,
                     resamples: int = BOOTSTRAP) -> pd.DataFrame:
    """The fitted log-log slope p of D against δ per optimizer over all its seeds, with its bootstrap 95%
    interval (NaN where D ≤ ``tolerance`` for every δ, i.e. exact invariance: there is nothing to fit)."""
    rows = []
    for optimizer, rows_of in deviations.groupby("optimizer", sort=False):
        exact = bool((rows_of["deviation"] <= tolerance).all())
        slope = math.nan if exact else loglog_slope(rows_of["drift_rate"].to_numpy(), rows_of["deviation"].to_numpy())
        low, high = (math.nan, math.nan) if exact else slope_interval(rows_of, resamples)
        rows.append({"optimizer": optimizer, "slope": slope, "slope_low": low, "slope_high": high})
    return pd.DataFrame(rows, columns=list(ORDER_COLUMNS))


def control_frame(deviations: pd.DataFrame, pair: tuple[float, float] = CONTROL_PAIR) -> pd.DataFrame:
    """The control pair's measured D/δ per rate (mean over seeds) against √3·(τ2 − τ1)."""
    from gsibench.optimizers.registry import canonical

    mine = deviations[deviations["optimizer"] == canonical(control_spec(pair))]
    theory = first_order_coefficient(*pair)
    rows = [{"optimizer": canonical(control_spec(pair)), "drift_rate": rate, "deviation": float(d.mean()),
             "coefficient": float(d.mean()) / rate, "theory": theory, "ratio": float(d.mean()) / rate / theory}
            for rate, d in mine.groupby("drift_rate", sort=True)["deviation"]]
    return pd.DataFrame(rows, columns=list(CONTROL_COLUMNS))


def order_label(slope: float, deviations: Sequence[float]) -> str:
    """'exact' (D = 0 up to the tolerance), else the slope to two decimals."""
    if math.isnan(slope) and all(d <= EXACT_TOLERANCE for d in deviations):
        return "exact (D = 0)" if all(d == 0 for d in deviations) else f"exact (D ≤ {EXACT_TOLERANCE:g})"
    return f"{slope:.2f}"


def figure_frame(cells, results, out: Path) -> pd.DataFrame:
    """Figs. 1–2: the traces under the bump, and per (β1, β2) the deviation from the clean twin."""
    from gsibench.optimizers.registry import canonical
    from gsibench.reproductions.plots import bump_traces

    runs = {(cell.optimizer, cell.is_clean): results[cell.key] for cell in cells
            if cell.key in results and results[cell.key].status == "finished"}
    rows, traces, scale = [], ({}, {}), None
    for beta1, beta2, spec in figure_specs():
        bump, clean = runs.get((canonical(spec), False)), runs.get((canonical(spec), True))
        if bump is None:
            continue
        scale = bump.series["scale"]
        traces[beta1 != beta2][f"β1={beta1:g}, β2={beta2:g}"] = bump.update_norm
        if clean is not None:
            deviation, level = max_deviation(bump.update_norm, clean.update_norm), float(np.mean(clean.update_norm))
            rows.append({"beta1": beta1, "beta2": beta2, "deviation": deviation,
                         "relative_deviation": deviation / level if level > 0 else math.nan})
    if scale is not None:
        bump_traces(scale, traces[0], traces[1], out / "invariance_bumps.png")
    return pd.DataFrame(rows, columns=list(FIGURE_COLUMNS))


# ---- running the reproduction ---------------------------------------------------------------------

@dataclass
class InvarianceRun:
    """What ``gsibench invariance`` computed."""

    layout: Layout
    rates: list[float]
    steps: int
    deviations: pd.DataFrame
    """:data:`DEVIATION_COLUMNS`."""
    order: pd.DataFrame
    """:data:`ORDER_COLUMNS`: the fitted slope per optimizer and its bootstrap interval."""
    control: pd.DataFrame
    """:data:`CONTROL_COLUMNS`: the matched pair's D/δ against theory (empty with ``control=False``)."""
    figure: pd.DataFrame | None
    """:data:`FIGURE_COLUMNS` (``None`` without the Figs. 1–2 runs)."""
    failed: int
    seconds: float


def _series(cells, results) -> tuple[dict, dict]:
    """‖R_k‖ of the finished runs: clean by (optimizer, seed), ramped by (optimizer, seed, δ)."""
    clean, perturbed = {}, {}
    for cell in cells:
        result = results.get(cell.key)
        if result is None or result.status != "finished":
            continue
        if cell.is_clean:
            clean[(cell.optimizer, cell.seed)] = result.update_norm
        else:
            rate = parse_perturbation(cell.perturbation).params["rate"]
            perturbed[(cell.optimizer, cell.seed, rate)] = result.update_norm
    return clean, perturbed


def run_invariance(optimizers: Sequence[str], rates: Sequence[float], tracker, executor, out: Path,
                   layout: Layout = SHORT, seeds: Sequence[int] = (0,), steps: int | None = None,
                   figure: bool = True, control: bool = True, device: str = "auto",
                   progress: Progress = SILENT) -> InvarianceRun:
    """Clean and ramped oracle runs per optimizer (and the control pair, and in the short layout the
    Figs. 1–2 bumps), D(δ), the slopes with their intervals; writes ``invariance.csv``,
    ``invariance_order.csv``, ``invariance_control.csv``, ``invariance_figure.csv`` (each with a
    ``layout`` column) and the plots into ``out``."""
    from gsibench.battery.spec import Battery
    from gsibench.optimizers.registry import canonical
    from gsibench.reproductions.common import run_and_collect
    from gsibench.reproductions.plots import deviation_loglog

    rates, steps = sorted(rates), steps or layout.steps
    specs = list(dict.fromkeys(list(optimizers) + ([control_spec()] if control else [])))
    common = dict(tasks=[layout.task], seeds=list(seeds), steps=steps, device=device,
                  experiment=tracker.experiment_name)
    order_battery = Battery(optimizers=specs, perturbations=[layout.ramp(rate) for rate in rates], **common)
    order_battery.plan()  # names and values checked before anything runs
    started = time.perf_counter()
    outcome, results = run_and_collect(order_battery, tracker, executor, progress, f"ramps ({layout.name} layout)")
    failed = len(outcome.failed)
    figure_table = None
    out.mkdir(parents=True, exist_ok=True)
    if figure and layout.figure:
        figure_battery = Battery(optimizers=[spec for _, _, spec in figure_specs()], perturbations=[FIGURE_BUMP],
                                 **{**common, "seeds": [0]})
        figure_outcome, figure_results = run_and_collect(figure_battery, tracker, executor, progress, "bumps")
        failed += len(figure_outcome.failed)
        figure_table = figure_frame(figure_outcome.cells, figure_results, out)
    seconds = time.perf_counter() - started
    deviations = deviation_frame(*_series(outcome.cells, results))
    controls = control_frame(deviations) if control else pd.DataFrame(columns=list(CONTROL_COLUMNS))
    if control and canonical(control_spec()) not in {canonical(spec) for spec in optimizers}:
        deviations = deviations[deviations["optimizer"] != canonical(control_spec())].reset_index(drop=True)
    order = invariance_order(deviations)
    for name, table in (("invariance", deviations), ("invariance_order", order), ("invariance_control", controls),
                        ("invariance_figure", figure_table)):
        if table is not None:
            table.assign(layout=layout.name).loc[:, ["layout", *table.columns]].to_csv(out / f"{name}.csv",
                                                                                       index=False)
    deviation_loglog(deviations, dict(zip(order["optimizer"], order["slope"])), out / "invariance_loglog.png",
                     title=f"Order of gradient-scale invariance on {layout.task} ({layout.name} layout)")
    return InvarianceRun(layout, rates, steps, deviations, order, controls, figure_table, failed, seconds)
