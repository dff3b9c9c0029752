"""The leaderboard's tables: one row per (optimizer, task, perturbation), and one per optimizer.

**Rank metric.** On a perturbed row the rank is decided by the update sensitivity (lower is better:
the scale-robustness question); on a clean row by the task's validation score in its own direction;
a clean row of a task without a score (the oracle) is not ranked. A diverged run counts as the
worst value of its (task, perturbation) (:func:`~gsibench.leaderboard.stats.worst_substituted`).
Ranks come from :func:`~gsibench.leaderboard.stats.significance_ranks` (paired t-test over seeds,
Benjamini–Hochberg).

**Scale-robustness score** of an optimizer: ``exp(−S)``, where S is the mean update sensitivity over
all its perturbed (task, perturbation) rows (diverged runs at the worst value). Sensitivity is the mean
|log(‖R_k^pert‖/‖R_k^clean‖)|, so ``exp(S)`` is the geometric-mean factor by which the perturbations
moved the update norm: robustness 1 is exact scale invariance, 0.5 means updates off by 2× on
(geometric) average. Its 95% interval comes from the per-seed means of S (seeds are matched across rows).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from gsibench.leaderboard.data import GROUP, BatteryRuns
from gsibench.leaderboard.stats import mean_ci, significance_ranks, worst_substituted
from gsibench.measure.schema import PER_CELL

METRICS = PER_CELL
CSV_COLUMNS = ["optimizer", "task", "perturbation", "seeds", "lr",
               *(column for metric in METRICS for column in (metric, f"{metric}_ci")),
               "diverged_frac", "failed", "rank", "rank_metric", "score_name"]


def rank_metric(data: BatteryRuns, task: str, perturbation: str) -> tuple[str, bool] | None:
    """(metric, lower_is_better) that ranks a (task, perturbation), or ``None`` if it is not ranked."""
    if perturbation != "none":
        return "sensitivity", True
    score = data.scores.get(task)
    return None if score is None else ("val_score", not score.higher_is_better)


def ranking_values(data: BatteryRuns, task: str, perturbation: str) -> dict[str, dict[int, float]] | None:
    """``{optimizer: {seed: value}}`` of the rank metric, diverged runs at the group's worst value."""
    metric = rank_metric(data, task, perturbation)
    if metric is None:
        return None
    name, lower = metric
    rows = data.runs[(data.runs["task"] == task) & (data.runs["perturbation"] == perturbation)]
    values: dict[str, dict[int, float]] = defaultdict(dict)
    diverged: dict[str, set[int]] = defaultdict(set)
    for row in rows.itertuples(index=False):
        row = row._asdict()
        values[row["optimizer"]][int(row["seed"])] = float(row.get(name, math.nan))
        if row.get("diverged", 0) == 1:
            diverged[row["optimizer"]].add(int(row["seed"]))
    return worst_substituted(values, diverged, lower)


def _lr(group: pd.DataFrame) -> float:
    if "opt.lr" not in group:
        return math.nan
    values = group["opt.lr"].dropna().unique()
    return float(values[0]) if len(values) == 1 else math.nan


def cell_table(data: BatteryRuns) -> pd.DataFrame:
    """One row per (optimizer, task, perturbation): means, 95% half-widths, diverged fraction, rank."""
    ranks: dict[tuple[str, str], dict[str, int]] = {}
    for task in data.tasks:
        for perturbation in data.perturbations(task):
            values = ranking_values(data, task, perturbation)
            if values is not None:
                ranks[(task, perturbation)], _ = significance_ranks(values, rank_metric(data, task, perturbation)[1])
    failed_counts = data.failed.groupby(GROUP).size().to_dict() if not data.failed.empty else {}
    rows = []
    for (optimizer, task, perturbation), group in data.runs.groupby(GROUP, sort=False):
        row = {"optimizer": optimizer, "task": task, "perturbation": perturbation, "seeds": len(group),
               "lr": _lr(group)}
        for metric in METRICS:
            mean, half, _ = mean_ci(group[metric].tolist()) if metric in group else (math.nan, math.nan, 0)
            row[metric], row[f"{metric}_ci"] = mean, half
        row["diverged_frac"] = float(group["diverged"].fillna(0).mean()) if "diverged" in group else math.nan
        row["failed"] = int(failed_counts.get((optimizer, task, perturbation), 0))
        metric = rank_metric(data, task, perturbation)
        row["rank"] = ranks.get((task, perturbation), {}).get(optimizer, math.nan)
        row["rank_metric"] = metric[0] if metric else ""
        score = data.scores.get(task)
        row["score_name"] = score.name if score else ""
        rows.append(row)
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    order = {name: i for i, name in enumerate(data.optimizers)}
    tasks = {name: i for i, name in enumerate(data.tasks)}
    perturbations = {name: i for i, name in enumerate(data.perturbations())}
    positions = {"task": tasks, "perturbation": perturbations, "optimizer": order}
    return table.sort_values(["task", "perturbation", "optimizer"],
                             key=lambda column: column.map(positions[column.name])).reset_index(drop=True)


def robustness(data: BatteryRuns) -> dict[str, tuple[float, float, float]]:
    """optimizer -> (score, low, high): ``exp(−mean sensitivity)`` with its 95% interval (see module doc)."""
    per_seed: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for task in data.tasks:
        for perturbation in data.perturbations(task):
            if perturbation == "none":
                continue
            for optimizer, values in (ranking_values(data, task, perturbation) or {}).items():
                for seed, value in values.items():
                    if math.isfinite(value):
                        per_seed[optimizer][seed].append(value)
    out = {}
    for optimizer in data.optimizers:
        seeds = per_seed.get(optimizer, {})
        mean, half, _ = mean_ci([float(np.mean(v)) for v in seeds.values()])
        if not math.isfinite(mean):
            out[optimizer] = (math.nan, math.nan, math.nan)
            continue
        half = half if math.isfinite(half) else 0.0
        out[optimizer] = (math.exp(-mean), math.exp(-(mean + half)), math.exp(-(mean - half)))
    return out


def overall_table(data: BatteryRuns, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer: mean ranks, robustness, diverged fraction, clean validation score per task."""
    robust = robustness(data)
    rows = []
    for optimizer in data.optimizers:
        mine = cells[cells["optimizer"] == optimizer]
        clean = mine[mine["perturbation"] == "none"]
        perturbed = mine[mine["perturbation"] != "none"]
        runs = data.runs[data.runs["optimizer"] == optimizer]
        row = {"optimizer": optimizer, "mean_rank": mine["rank"].mean(), "rank_clean": clean["rank"].mean(),
               "rank_perturbed": perturbed["rank"].mean(), "robustness": robust[optimizer][0],
               "robustness_low": robust[optimizer][1], "robustness_high": robust[optimizer][2],
               "diverged_frac": float(runs["diverged"].fillna(0).mean()) if "diverged" in runs else math.nan}
        for task, score in data.scores.items():
            if score is None:
                continue
            match = clean[clean["task"] == task]
            row[f"val:{task}"] = match["val_score"].iloc[0] if len(match) else math.nan
            row[f"val_ci:{task}"] = match["val_score_ci"].iloc[0] if len(match) else math.nan
            row[f"lr:{task}"] = match["lr"].iloc[0] if len(match) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["mean_rank", "robustness"], ascending=[True, False], na_position="last") \
        .reset_index(drop=True)


def fmt(value: float, half: float = math.nan, digits: int = 3) -> str:
    """``0.958 ± 0.004``; ``—`` for NaN."""
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{value:.{digits}g}"
    if half is not None and math.isfinite(half):
        text += f" ± {half:.2g}"
    return text


def fmt_rank(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else (f"{value:.0f}" if value == int(value)
                                                                    else f"{value:.2f}")
