"""Plots of the paper reproductions (``grid``, ``invariance``, ``phase``): PNG files, Agg backend.

Plotting stays here, away from the computations in :mod:`gsibench.reproductions.grid`,
:mod:`gsibench.reproductions.invariance` and :mod:`gsibench.reproductions.phase`; every function takes plain
tables or arrays and a path, and returns the path.

* :func:`omega_heatmap` — ω1 over the (β1, β2) grid, annotated, diverged cells hatched
  (arXiv 2601.21739, ω tables).
* :func:`deviation_loglog` — D(δ) against the drift rate δ with reference slopes 1 and 2 (DESIGN,
  "Order of invariance").
* :func:`bump_traces` — ‖g_k‖ and ‖R_k‖ under the scale bumps of arXiv 2601.21739, Figs. 1–2.
* :func:`phase_maps` — converge/diverge over the (β1, β2) plane, one panel per n, with β1 = √β2
  (Zhang et al., arXiv 2208.09632).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def omega_heatmap(cells: pd.DataFrame, path: Path, title: str = "ω1") -> Path:
    """Heat-map of ``omega1`` (rows β1, columns β2) from a :func:`gsibench.reproductions.grid.grid_table` slice of one
    task. The diagonal β1 = β2 is outlined; cells where some seed diverged are hatched and say how many;
    all-diverged cells are grey, cells not in the grid (a ``--fine`` scan) blank grey. The colour scale is
    logarithmic when ω1 spans more than 20×."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    beta1s, beta2s = sorted(cells["beta1"].unique()), sorted(cells["beta2"].unique())
    values = np.full((len(beta1s), len(beta2s)), np.nan)
    diverged, present = np.zeros_like(values), np.zeros(values.shape, dtype=bool)
    for _, cell in cells.iterrows():
        i, j = beta1s.index(cell["beta1"]), beta2s.index(cell["beta2"])
        values[i, j], diverged[i, j], present[i, j] = cell["omega1"], cell["diverged_frac"], True
    fig, ax = plt.subplots(figsize=(min(1.6 * len(beta2s), 24) + 2, 1.3 * len(beta1s) + 1.2))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.8")
    finite = values[np.isfinite(values) & (values > 0)]
    spread = finite.size and finite.max() / finite.min() > 20
    norm = LogNorm(finite.min(), finite.max()) if spread else None
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, origin="upper")
    fig.colorbar(image, ax=ax, label="ω1 (mean over seeds)" + (", log scale" if spread else ""))
    if not finite.size:
        middle = 0.0
    elif spread:
        middle = float(np.sqrt(finite.min() * finite.max()))
    else:
        middle = float((finite.min() + finite.max()) / 2)
    for i in range(len(beta1s)):
        for j in range(len(beta2s)):
            if not present[i, j]:  # a --fine grid has its own β2 values per row
                continue
            text = "diverged" if math.isnan(values[i, j]) else f"{values[i, j]:.3g}"
            if diverged[i, j] > 0:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="red", lw=0))
                if not math.isnan(values[i, j]):
                    text += f"\n{diverged[i, j]:.0%} diverged"
            dark = not math.isnan(values[i, j]) and values[i, j] < middle
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
            if beta1s[i] == beta2s[j]:
                ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, edgecolor="orange", lw=2))
    ax.set_xticks(range(len(beta2s)), [f"{b:g}" for b in beta2s])
    ax.set_yticks(range(len(beta1s)), [f"{b:g}" for b in beta1s])
    ax.set_xlabel("β2")
    ax.set_ylabel("β1")
    ax.set_title(title)
    return _save(fig, path)


def deviation_loglog(deviations: pd.DataFrame, slopes: Mapping[str, float], path: Path,
                     title: str = "Order of gradient-scale invariance on the oracle") -> Path:
    """log D against log δ per optimizer (``deviations``: optimizer, drift_rate, deviation), the fitted
    slope in the legend, dashed reference lines of slope 1 and 2. Optimizers with D = 0 everywhere
    cannot be drawn on log axes and are listed in the title instead."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    exact = []
    for optimizer, rows in deviations.groupby("optimizer", sort=False):
        positive = rows[rows["deviation"] > 0]
        if positive.empty:
            exact.append(optimizer)
            continue
        slope = slopes.get(optimizer, math.nan)
        ax.loglog(positive["drift_rate"], positive["deviation"], "o-", label=f"{optimizer}: p = {slope:.2f}")
    drawn = deviations[deviations["deviation"] > 0]
    if not drawn.empty:
        rates = np.array(sorted(drawn["drift_rate"].unique()))
        anchor = float(np.exp(np.log(drawn["deviation"]).mean()))
        middle = float(np.exp(np.log(rates).mean()))
        for order, style in ((1, "--"), (2, ":")):
            ax.loglog(rates, anchor * (rates / middle) ** order, "k" + style, lw=1, label=f"slope {order}")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("drift rate δ = d log c / dk")
    ax.set_ylabel("D(δ) = max_k |‖R_k‖ − ‖R_k^clean‖|")
    ax.set_title(title + (f"\nD = 0 exactly: {', '.join(exact)}" if exact else ""), fontsize=10)
    if not drawn.empty:  # every optimizer exact: nothing on the log axes to label
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def bump_traces(scale: np.ndarray, equal: Mapping[str, np.ndarray], unequal: Mapping[str, np.ndarray],
                path: Path) -> Path:
    """arXiv 2601.21739 Figs. 1–2: the gradient norm ‖g_k‖ = s(k) on top, then ‖R_k‖ for equal betas
    (expected flat) and for unequal betas (expected to follow the bumps), on one ‖R_k‖ scale."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 8), sharex=True, height_ratios=(1, 2, 2))
    axes[2].sharey(axes[1])
    axes[0].plot(scale, "k")
    axes[0].set_ylabel("‖g_k‖ = s(k)")
    for ax, traces, title in ((axes[1], equal, "β1 = β2"), (axes[2], unequal, "β1 ≠ β2")):
        for label, series in traces.items():
            ax.plot(series, label=label, lw=1.2)
        ax.set_ylabel("‖R_k‖")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, ncol=2)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("step k")
    fig.suptitle("Adam under the scale bumps of arXiv 2601.21739 Figs. 1–2", fontsize=11)
    return _save(fig, path)


def _edges(centers: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    values = np.log(centers) if log else centers
    middle = (values[1:] + values[:-1]) / 2
    first, last = values[0] - (middle[0] - values[0]), values[-1] + (values[-1] - middle[-1])
    edges = np.concatenate([[first], middle, [last]])
    return np.exp(edges) if log else edges


def phase_maps(frame: pd.DataFrame, path: Path, ns: Sequence[int] | None = None, subtitle: str = "") -> Path:
    """One panel per n: diverged (red) / converged (blue) cells, the colour the fraction of seeds that
    diverged (``diverged_frac``), over β2 (x, as 1 − β2 on a reversed log axis so that values near 1 are
    resolved) and β1 (y), with the curve β1 = √β2 (Zhang et al.'s convergence condition β1 < √β2)."""
    plt = _pyplot()
    from matplotlib.colors import LinearSegmentedColormap

    ns = list(ns or sorted(frame["n"].unique()))
    fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 4.2), squeeze=False, sharey=True)
    cmap = LinearSegmentedColormap.from_list("phase", ["#4c72b0", "#c44e52"])
    for ax, n in zip(axes[0], ns):
        cells = frame[frame["n"] == n]
        beta1s, beta2s = np.sort(cells["beta1"].unique()), np.sort(cells["beta2"].unique())
        grid = cells.pivot_table(index="beta1", columns="beta2", values="diverged_frac").reindex(
            index=beta1s, columns=beta2s).to_numpy()
        gaps = 1.0 - beta2s
        order = np.argsort(gaps)
        x = _edges(gaps[order], log=True)
        y = _edges(beta1s, log=False) if len(beta1s) > 1 else np.array([beta1s[0] - 0.5, beta1s[0] + 0.5])
        ax.pcolormesh(x, y, grid[:, order], cmap=cmap, vmin=0, vmax=1, shading="flat")
        curve = np.linspace(0, 1, 400)[:-1]
        ax.plot(1 - curve, np.sqrt(curve), "k-", lw=1.5, label="β1 = √β2")
        ax.set_xscale("log")
        ax.set_xlim(x.max(), x.min())
        ax.set_ylim(y.min(), y.max())
        ticks = [b for b in (0.0, 0.9, 0.99, 0.999, 0.9999) if x.min() <= 1 - b <= x.max()]
        ax.set_xticks([1 - b for b in ticks], [f"{b:g}" for b in ticks])
        ax.minorticks_off()
        share = float(np.nanmean(grid > 0))
        ax.set_title(f"n = {n}: {share:.0%} of cells with a diverged seed", fontsize=10)
        ax.set_xlabel("β2")
    axes[0][0].set_ylabel("β1")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Adam on the finite sum: converged (blue) / diverged (red), shade = share of seeds"
                 + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    return _save(fig, path)
