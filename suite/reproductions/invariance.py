"""Order of gradient-scale invariance (DESIGN "Definitions") and the traces of arXiv 2601.21739 Figs. 1–2.

On the gradient oracle (``tasks/oracle.py``: unit gradients g_k = d_k/‖d_k‖, so ‖g_k‖ = c_k) each
optimizer runs once clean (c ≡ 1) and once per ramp of drift rate δ, 2δ, 4δ, … (c_k log-linear with
slope δ = d log c / dk over 30–60% of the run, then held). The deviation

    D(δ) = max_k |‖R_k^δ‖ − ‖R_k^clean‖|

falls as δ^p for small δ. The paper's continuous-time expansion of the normalized Adam update is a
sign term + (τ2 − τ1)·δ + O(δ²), with β = exp(−1/τ): Adam with β1 ≠ β2 is first-order sensitive
(p ≈ 1), Adam with β1 = β2 first-order invariant (p ≈ 2), and sign-based updates (sign-SGD, Lion) are
exactly invariant (D = 0; no slope). SGD's update *is* the gradient, so D = e^{δL} − 1 over a ramp of
L steps (p ≈ 1, rising where δL is no longer small).

Two effects limit what the oracle can show, both measured (README, "Reproducing the papers"):

* The oracle's direction d_k rotates (the sin/cos terms), and the O(δ²) remainder of balanced Adam
  contains a cross term δ·(rotation rate): at small δ it is linear. With a fixed direction the slope is
  exactly 2; on the paper's oracle it is ≈ 1.8 in the default range of δ and drifts to 1 below ~1e-4.
* Parameters are float32, so ‖R_k‖ = ‖Δθ‖/η carries rounding of ~ulp(θ)/η ≈ 3e-5: D below ~1e-4 is noise.
  The default rates (5e-4 … 8e-3) keep balanced Adam's D above 1e-4 and Adam's ramp short enough for
  its D to stay linear (δ·L ≤ 1.5). ε = 1e-8 is immaterial here (√v̂ ≈ 0.5; ε = 0 gives the same D).
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
from gsibench.reproductions.defaults import FIGURE_STEPS

RAMP_START, RAMP_END = 0.3, 0.6
EXACT_TOLERANCE = 1e-12
"""D at or below this for every δ: the optimizer is exactly invariant (slope reported as NaN)."""

FIGURE_BUMP = f"bump:height=0.5,start={200 / FIGURE_STEPS!r},end={400 / FIGURE_STEPS!r},width=20"
"""s(k) = 1 + 0.5[σ((k − 200)/20) − σ((k − 400)/20)], k = 0…600 (arXiv 2601.21739 Figs. 1–2)."""
EQUAL_BETAS = (0.9, 0.95, 0.99, 0.999)
UNEQUAL_BETAS = ((0.9, 0.999), (0.9, 0.95), (0.9, 0.99), (0.99, 0.999))

DEVIATION_COLUMNS = ("optimizer", "drift_rate", "deviation")
ORDER_COLUMNS = ("optimizer", "slope")
FIGURE_COLUMNS = ("beta1", "beta2", "deviation", "relative_deviation")


def drift_rates(base: float, doublings: int) -> list[float]:
    """δ, 2δ, 4δ, …, 2^doublings·δ."""
    return [base * 2.0**i for i in range(doublings + 1)]


def ramp_spec(rate: float) -> str:
    """The ramp perturbation of drift rate ``rate`` over 30–60% of the run."""
    return f"ramp:start={RAMP_START},end={RAMP_END},rate={rate!r}"


def figure_specs() -> list[tuple[float, float, str]]:
    """(β1, β2, optimizer spec) of the Figs. 1–2 traces: equal betas, then the unequal pairs."""
    pairs = [(b, b) for b in EQUAL_BETAS] + list(UNEQUAL_BETAS)
    return [(b1, b2, f"adam[beta1={b1},beta2={b2}]") for b1, b2 in pairs]


def deviation_frame(clean: Mapping[str, np.ndarray],
                    perturbed: Mapping[tuple[str, float], np.ndarray]) -> pd.DataFrame:
    """D(δ) per (optimizer, δ): ``clean[optimizer]`` and ``perturbed[(optimizer, δ)]`` are ‖R_k‖ series;
    rows in the order of ``clean``, rates ascending."""
    rows = [{"optimizer": optimizer, "drift_rate": rate, "deviation": max_deviation(series, clean[optimizer])}
            for (optimizer, rate), series in perturbed.items() if optimizer in clean]
    frame = pd.DataFrame(rows, columns=list(DEVIATION_COLUMNS))
    position = frame["optimizer"].map(list(clean).index)
    return frame.assign(_order=position).sort_values(["_order", "drift_rate"], kind="stable").drop(
        columns="_order").reset_index(drop=True)


def invariance_order(deviations: pd.DataFrame, tolerance: float = EXACT_TOLERANCE) -> pd.DataFrame:
    """The fitted log-log slope p of D against δ per optimizer (NaN where D ≤ ``tolerance`` for every δ,
    i.e. exact invariance: there is nothing to fit)."""
    rows = []
    for optimizer, rows_of in deviations.groupby("optimizer", sort=False):
        exact = bool((rows_of["deviation"] <= tolerance).all())
        slope = math.nan if exact else loglog_slope(rows_of["drift_rate"].to_numpy(), rows_of["deviation"].to_numpy())
        rows.append({"optimizer": optimizer, "slope": slope})
    return pd.DataFrame(rows, columns=list(ORDER_COLUMNS))


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
    frame = pd.DataFrame(rows, columns=list(FIGURE_COLUMNS))
    frame.to_csv(out / "invariance_figure.csv", index=False)
    return frame


# ---- running the reproduction ---------------------------------------------------------------------

@dataclass
class InvarianceRun:
    """What ``gsibench invariance`` computed."""

    rates: list[float]
    steps: int
    deviations: pd.DataFrame
    """:data:`DEVIATION_COLUMNS`."""
    order: pd.DataFrame
    """:data:`ORDER_COLUMNS`: the fitted slope per optimizer."""
    figure: pd.DataFrame | None
    """:data:`FIGURE_COLUMNS` (``None`` without the Figs. 1–2 runs)."""
    failed: int
    seconds: float


def run_invariance(optimizers: Sequence[str], rates: Sequence[float], tracker, executor, out: Path,
                   steps: int = FIGURE_STEPS, figure: bool = True, device: str = "auto",
                   progress: Progress = SILENT) -> InvarianceRun:
    """Clean and ramped oracle runs per optimizer (and the Figs. 1–2 bumps), D(δ), the slopes; writes
    ``invariance.csv``, ``invariance_order.csv``, ``invariance_figure.csv`` and the plots into ``out``."""
    from gsibench.battery.spec import Battery
    from gsibench.reproductions.common import run_and_collect
    from gsibench.reproductions.plots import deviation_loglog

    rates = sorted(rates)
    common = dict(tasks=["oracle"], seeds=[0], steps=steps, device=device, experiment=tracker.experiment_name)
    order_battery = Battery(optimizers=list(optimizers), perturbations=[ramp_spec(rate) for rate in rates], **common)
    order_battery.plan()  # names and values checked before anything runs
    started = time.perf_counter()
    outcome, results = run_and_collect(order_battery, tracker, executor, progress, "ramps")
    failed = len(outcome.failed)
    figure_table = None
    out.mkdir(parents=True, exist_ok=True)
    if figure:
        figure_battery = Battery(optimizers=[spec for _, _, spec in figure_specs()], perturbations=[FIGURE_BUMP],
                                 **common)
        figure_outcome, figure_results = run_and_collect(figure_battery, tracker, executor, progress, "bumps")
        failed += len(figure_outcome.failed)
        figure_table = figure_frame(figure_outcome.cells, figure_results, out)
    seconds = time.perf_counter() - started
    clean, perturbed = {}, {}
    for cell in outcome.cells:
        result = results.get(cell.key)
        if result is None or result.status != "finished":
            continue
        if cell.is_clean:
            clean[cell.optimizer] = result.update_norm
        else:
            perturbed[(cell.optimizer, parse_perturbation(cell.perturbation).params["rate"])] = result.update_norm
    deviations = deviation_frame(clean, perturbed)
    order = invariance_order(deviations)
    deviations.to_csv(out / "invariance.csv", index=False)
    order.to_csv(out / "invariance_order.csv", index=False)
    deviation_loglog(deviations, dict(zip(order["optimizer"], order["slope"])), out / "invariance_loglog.png")
    return InvarianceRun(rates, steps, deviations, order, figure_table, failed, seconds)
