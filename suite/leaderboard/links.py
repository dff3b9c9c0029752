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
    """Average ranks along the last axis, scaled to [0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    count = values.shape[-1]
    return (rankdata(values, axis=-1) - 1) / max(count - 1, 1)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis (NaN where either side is constant or there are fewer than 3)."""
    if x.shape[-1] < 3:
        return np.full(x.shape[:-1], math.nan)
    dx, dy = x - x.mean(axis=-1, keepdims=True), y - y.mean(axis=-1, keepdims=True)
    norm = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (dx * dy).sum(axis=-1) / np.where(norm > 0, norm, 1.0), math.nan)


def _stratified_ranks(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    if groups is None:
        return _ranks(values)
    out = np.empty(values.shape)
    for group in np.unique(groups):
        where = groups == group
        out[..., where] = _ranks(values[..., where])
    return out


def spearman(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Spearman's ρ; with ``groups``, of the ranks taken within each group (stratified)."""
    return float(_pearson(_stratified_ranks(np.asarray(x, float), groups),
                          _stratified_ranks(np.asarray(y, float), groups)))


def bootstrap(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, resamples: int = RESAMPLES,
              seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of :func:`spearman` over cells resampled with replacement (within groups),
    all resamples at once."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, float), np.asarray(y, float)
    labels = np.zeros(len(x), dtype=int) if groups is None else np.unique(groups, return_inverse=True)[1]
    picks = [rng.choice(np.flatnonzero(labels == g), size=(resamples, int((labels == g).sum())))
             for g in np.unique(labels)]
    pick = np.concatenate(picks, axis=1)
    resampled_groups = None if groups is None else labels[pick[0]]
    estimates = _pearson(_stratified_ranks(x[pick], resampled_groups), _stratified_ranks(y[pick], resampled_groups))
    estimates = estimates[np.isfinite(estimates)]
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
