"""What the robustness numbers predict: rank correlations of the mechanism metrics with the outcome.

Across the perturbed cells of a board (one cell = an optimizer on a task under a perturbation, seed
means), how well does update sensitivity — or ω1, or trajectory divergence — predict the *quality drop*,
the cell's normalised score subtracted from the same optimizer's clean one on that task (positive = the
perturbation cost quality)? Spearman's ρ, with a 95% percentile-bootstrap interval over cells.

Tasks differ in scale (ω1 grows like √(parameter count), drops are larger on harder tasks), so the
pooled row ranks every quantity *within its task* first and correlates those ranks (a stratified
Spearman); each task also gets its own row. A weak or negative link is a finding, not a failure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MECHANISMS = ("sensitivity", "sensitivity.hidden", "omega1", "divergence")
LINK_COLUMNS = ("metric", "outcome", "spearman", "ci_low", "ci_high", "n")
RESAMPLES = 2000
SEED = 0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (ties share their mean rank)."""
    ranked = pd.Series(values).rank(method="average").to_numpy()
    return (ranked - 1) / max(len(values) - 1, 1)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Spearman's ρ; with ``groups``, of the ranks taken within each group (stratified)."""
    if groups is None:
        return _pearson(_ranks(x), _ranks(y))
    rx, ry = np.empty(len(x)), np.empty(len(y))
    for group in np.unique(groups):
        where = groups == group
        rx[where], ry[where] = _ranks(x[where]), _ranks(y[where])
    return _pearson(rx, ry)


def bootstrap(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, resamples: int = RESAMPLES,
              seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of :func:`spearman` over cells resampled with replacement (within groups)."""
    rng = np.random.default_rng(seed)
    estimates = []
    indices = [np.flatnonzero(groups == g) for g in np.unique(groups)] if groups is not None else [np.arange(len(x))]
    for _ in range(resamples):
        pick = np.concatenate([rng.choice(index, size=len(index)) for index in indices])
        value = spearman(x[pick], y[pick], None if groups is None else groups[pick])
        if math.isfinite(value):
            estimates.append(value)
    if len(estimates) < resamples / 2:
        return math.nan, math.nan
    return float(np.percentile(estimates, 2.5)), float(np.percentile(estimates, 97.5))


def quality_drops(cells: pd.DataFrame) -> pd.DataFrame:
    """The perturbed cells with a normalised score, and ``quality_drop`` = clean quality − this quality."""
    clean = cells[cells["perturbation"] == "none"].set_index(["optimizer", "task"])["quality"]
    perturbed = cells[(cells["perturbation"] != "none") & cells["quality"].notna()].copy()
    perturbed["quality_drop"] = [clean.get((o, t), math.nan) - q for o, t, q in
                                 perturbed[["optimizer", "task", "quality"]].itertuples(index=False)]
    return perturbed[perturbed["quality_drop"].notna()]


def metric_links(cells: pd.DataFrame, resamples: int = RESAMPLES) -> pd.DataFrame:
    """:data:`LINK_COLUMNS`: for each mechanism metric, the pooled (within-task ranks) row, then one row
    per task."""
    drops = quality_drops(cells)
    rows = []
    for metric in MECHANISMS:
        if metric not in drops:
            continue
        usable = drops[np.isfinite(drops[metric].to_numpy(float))]
        subsets = [("quality_drop", usable, True)] + [(f"quality_drop ({task})", part, False)
                                                      for task, part in usable.groupby("task", sort=False)]
        for outcome, part, stratified in subsets:
            x, y = part[metric].to_numpy(float), part["quality_drop"].to_numpy(float)
            groups = part["task"].to_numpy() if stratified else None
            rho = spearman(x, y, groups)
            low, high = bootstrap(x, y, groups, resamples) if math.isfinite(rho) else (math.nan, math.nan)
            rows.append({"metric": metric, "outcome": outcome, "spearman": rho, "ci_low": low, "ci_high": high,
                         "n": len(part)})
    return pd.DataFrame(rows, columns=list(LINK_COLUMNS))
