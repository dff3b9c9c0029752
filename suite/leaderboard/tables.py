"""The leaderboard's tables: one row per (optimizer, task, perturbation), and one per optimizer.

Two questions, two axes, never averaged into one rank (DESIGN, "What the leaderboard scores"):

* **quality** — the normalised validation score of the clean runs (:mod:`~gsibench.leaderboard.scoring`:
  0 = the trivial baseline, 1 = the reference optimizer tuned);
* **robust quality** — the same normalised score under each perturbation: what a user gets when the
  gradient scale shifts. The overall table is sorted by it.

A row's rank compares the entries' normalised scores on that row: paired t-tests on seed-matched runs
(Benjamini–Hochberg), in two tiers — an entry with a diverged or collapsed seed ranks below every entry
without one (:func:`~gsibench.leaderboard.stats.tiered_ranks`). The overall figures average per task
first (each scored task counts once; within a task, perturbations count equally) and per seed, over
the seeds that every scored task ran, so an optimizer's overall numbers are paired seed by seed with
every other's; the overall ranks are paired t-tests on those per-seed averages.

The *mechanism* columns — update sensitivity (all parameters and the ``hidden`` role alone), ω1 and
trajectory divergence — are shown beside the outcome and never enter a rank: an optimizer that ignores
the gradient scale by construction (sign methods) gets zero sensitivity for free.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from gsibench.leaderboard.data import GROUP, BatteryRuns
from gsibench.leaderboard.stats import mean_ci, tiered_ranks
from gsibench.measure.schema import PER_CELL

METRICS = PER_CELL
CSV_COLUMNS = ["optimizer", "task", "perturbation", "seeds", "lr", "quality", "quality_ci", "rank", "tie",
               "diverged_seeds", "collapsed_seeds",
               *(column for metric in METRICS for column in (metric, f"{metric}_ci")),
               "failed_runs", "score_name"]
OVERALL_COLUMNS = ["optimizer", "robust_quality", "robust_quality_ci", "robust_rank", "robust_tie", "quality",
                   "quality_ci", "quality_rank", "quality_tie", "rows_with_failures", "rows", "sensitivity",
                   "sensitivity.hidden", "divergence", "seeds"]


def _lr(group: pd.DataFrame) -> float:
    if "opt.lr" not in group:
        return math.nan
    values = group["opt.lr"].dropna().unique()
    return float(values[0]) if len(values) == 1 else math.nan


def row_values(runs: pd.DataFrame) -> tuple[dict[str, dict[int, float]], dict[str, int]]:
    """``({optimizer: {seed: quality}}, {optimizer: failed seeds})`` of the runs of one row."""
    values: dict[str, dict[int, float]] = defaultdict(dict)
    failures: dict[str, int] = defaultdict(int)
    for optimizer, seed, quality, failure in runs[["optimizer", "seed", "quality", "failure"]].itertuples(index=False):
        values[optimizer][int(seed)] = float(quality)
        failures[optimizer] += bool(failure)
    return dict(values), dict(failures)


def _ties(ranks: dict[str, int]) -> dict[str, bool]:
    counts = defaultdict(int)
    for rank in ranks.values():
        counts[rank] += 1
    return {name: counts[rank] > 1 for name, rank in ranks.items()}


def cell_table(data: BatteryRuns) -> pd.DataFrame:
    """One row per (optimizer, task, perturbation): normalised score with its rank, failures, and every
    metric of the schema's leaderboard columns, each a mean over seeds with its 95% half-width."""
    ranks: dict[tuple[str, str], dict[str, int]] = {}
    for (task, perturbation), runs in data.runs.groupby(["task", "perturbation"], sort=False):
        if runs["quality"].notna().any():
            values, failures = row_values(runs[runs["quality"].notna()])
            ranks[(task, perturbation)] = tiered_ranks(values, failures)[0]
    ties = {key: _ties(value) for key, value in ranks.items()}
    failed_counts = data.failed.groupby(GROUP).size().to_dict() if not data.failed.empty else {}
    rows = []
    for (optimizer, task, perturbation), group in data.runs.groupby(GROUP, sort=False):
        quality, half, _ = mean_ci(group["quality"].tolist())
        row = {"optimizer": optimizer, "task": task, "perturbation": perturbation, "seeds": len(group),
               "lr": _lr(group), "quality": quality, "quality_ci": half,
               "rank": ranks.get((task, perturbation), {}).get(optimizer, math.nan),
               "tie": ties.get((task, perturbation), {}).get(optimizer, False),
               "diverged_seeds": int((group["failure"] == "diverged").sum()),
               "collapsed_seeds": int((group["failure"] == "collapsed").sum())}
        for metric in METRICS:
            mean, spread, _ = mean_ci(group[metric].tolist()) if metric in group else (math.nan, math.nan, 0)
            row[metric], row[f"{metric}_ci"] = mean, spread
        row["failed_runs"] = int(failed_counts.get((optimizer, task, perturbation), 0))
        score = data.scores.get(task)
        row["score_name"] = score.name if score else ""
        rows.append(row)
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    positions = {"task": {n: i for i, n in enumerate(data.tasks)},
                 "perturbation": {n: i for i, n in enumerate(data.perturbations())},
                 "optimizer": {n: i for i, n in enumerate(data.optimizers)}}
    return table.sort_values(["task", "perturbation", "optimizer"],
                             key=lambda column: column.map(positions[column.name])).reset_index(drop=True)


def common_seeds(data: BatteryRuns) -> list[int]:
    """The seeds every scored task ran (the overall figures are paired over these)."""
    scored = data.runs[data.runs["quality"].notna()]
    per_task = [set(map(int, rows["seed"])) for _, rows in scored.groupby("task")]
    return sorted(set.intersection(*per_task)) if per_task else []


def per_seed_scores(data: BatteryRuns, perturbed: bool) -> dict[str, dict[int, float]]:
    """``{optimizer: {seed: score}}``: per seed, the mean over scored tasks of the mean normalised score
    over that task's perturbations (``perturbed``) or of its clean run; only complete seeds."""
    seeds = common_seeds(data)
    runs = data.runs[data.runs["quality"].notna() & data.runs["seed"].isin(seeds)]
    runs = runs[(runs["perturbation"] != "none") if perturbed else (runs["perturbation"] == "none")]
    tasks = list(dict.fromkeys(runs["task"]))
    out: dict[str, dict[int, float]] = {}
    for optimizer, mine in runs.groupby("optimizer", sort=False):
        by_task = mine.groupby(["seed", "task"])["quality"].mean().unstack("task").reindex(columns=tasks)
        complete = by_task.dropna()
        out[optimizer] = {int(seed): float(row.mean()) for seed, row in complete.iterrows()}
    return out


def overall_table(data: BatteryRuns, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer: robust quality and quality with 95% intervals and ranks, how many rows had a
    failure, and the mechanism averages. Sorted by robust quality (then quality)."""
    robust, clean = per_seed_scores(data, perturbed=True), per_seed_scores(data, perturbed=False)
    robust_ranks = tiered_ranks(robust, {})[0] if robust else {}
    clean_ranks = tiered_ranks(clean, {})[0] if clean else {}
    robust_ties, clean_ties = _ties(robust_ranks), _ties(clean_ranks)
    rows = []
    for optimizer in data.optimizers:
        mine = cells[cells["optimizer"] == optimizer]
        perturbed = mine[mine["perturbation"] != "none"]
        scored = mine[mine["quality"].notna()]
        r_mean, r_half, n = mean_ci(list(robust.get(optimizer, {}).values()))
        q_mean, q_half, _ = mean_ci(list(clean.get(optimizer, {}).values()))
        rows.append({
            "optimizer": optimizer, "robust_quality": r_mean, "robust_quality_ci": r_half,
            "robust_rank": robust_ranks.get(optimizer, math.nan), "robust_tie": robust_ties.get(optimizer, False),
            "quality": q_mean, "quality_ci": q_half, "quality_rank": clean_ranks.get(optimizer, math.nan),
            "quality_tie": clean_ties.get(optimizer, False),
            "rows_with_failures": int(((scored["diverged_seeds"] + scored["collapsed_seeds"]) > 0).sum()),
            "rows": len(scored),
            "sensitivity": _nanmean(perturbed["sensitivity"]),
            "sensitivity.hidden": _nanmean(perturbed["sensitivity.hidden"]) if "sensitivity.hidden" in perturbed
            else math.nan,
            "divergence": _nanmean(perturbed["divergence"]), "seeds": n,
        })
    table = pd.DataFrame(rows, columns=OVERALL_COLUMNS)
    return table.sort_values(["robust_quality", "quality"], ascending=False, na_position="last").reset_index(drop=True)


def _nanmean(values: pd.Series) -> float:
    finite = values.to_numpy(float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def fmt(value: float, half: float = math.nan, digits: int = 3, n: int | None = None) -> str:
    """``0.958 ± 0.004``; ``—`` for NaN; with ``n == 1`` the value says it has no interval."""
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{value:.{digits}g}"
    if n == 1:
        return text + " (1 seed: no interval)"
    if half is not None and math.isfinite(half):
        text += f" ± {half:.2g}"
    return text


def fmt_rank(value: float, tie: bool = False) -> str:
    """``3``, or ``3=`` when another entry shares the rank (a tie); ``—`` for no rank."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.0f}{'=' if tie else ''}"
