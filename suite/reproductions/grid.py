"""The (β1, β2) grid of arXiv 2601.21739: the ω1 table and the diagonal binomial test.

Every cell of a β grid (rows β1, columns β2, the same values for both) trains Adam without any
perturbation; ω1 (DESIGN "Oscillation") measures how much its update norm ‖R_k‖ wanders. The paper's
claim is that the diagonal β1 = β2 is the smoothest cell of its row: per β1 row and seed, a *success*
is the diagonal cell having the row's minimal ω1 (ties count), and a one-sided exact binomial test
with p0 = 1/(number of β2 values) asks whether successes are more frequent than chance
(9/9 at p0 = 1/3 gives p = 5.08e-5; papers.md).

A diverged run's ω1 counts as +inf in the test, so it is never the row minimum and a diverged
diagonal is never a success. In the table a cell's ω1 is the mean over its non-diverged seeds, and
``diverged_frac`` says how many seeds diverged.

The computation is pure (DataFrames in, DataFrames out) so that the leaderboard can call it on any
frame of runs; :func:`run_grid` (behind ``gsibench grid``) runs the grid through the driver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gsibench.core.errors import UsageError
from gsibench.core.progress import SILENT, Progress
from gsibench.core.specs import format_named, parse_named
from gsibench.measure.metrics import binomial_tail

GRID_COLUMNS = ("task", "beta1", "beta2", "omega1", "omega1_std", "val_score", "diverged_frac")
TEST_COLUMNS = ("task", "successes", "trials", "p_value")
RUN_COLUMNS = ("task", "beta1", "beta2", "seed", "omega1", "val_score", "diverged")
"""A tidy frame of grid runs, one row per run (what :func:`tidy_runs` returns)."""


def grid_specs(betas: Sequence[float], optimizer: str = "adam", lr: float | None = None) -> list[str]:
    """One optimizer spec per (β1, β2) cell, rows first: ``adam[beta1=0.9,beta2=0.99]``, ...

    ``optimizer`` may carry hyperparameters of its own (``adam[eps=1e-10]``) but not the betas."""
    name, hparams = parse_named(optimizer)
    if {"beta1", "beta2", "beta"} & set(hparams):
        raise ValueError(f"'{optimizer}' sets a beta itself; the grid sets beta1 and beta2")
    if lr is not None:
        hparams["lr"] = lr
    return [format_named(name, {**hparams, "beta1": b1, "beta2": b2}) for b1 in betas for b2 in betas]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def tidy_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs as read from MLflow (:func:`gsibench.tracking.runs.runs_frame`) -> :data:`RUN_COLUMNS`.

    Keeps clean runs only (perturbation ``none``); β1, β2 come from ``opt.beta1``/``opt.beta2``, or
    from ``opt.beta`` for ``adam-balanced``. Runs without betas are dropped. A frame that already has
    the tidy columns is returned as is."""
    if set(RUN_COLUMNS) <= set(frame.columns):
        return frame.loc[:, list(RUN_COLUMNS)].copy()
    if frame.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    rows = frame[frame["perturbation"] == "none"] if "perturbation" in frame else frame
    balanced = _numeric(rows, "opt.beta")
    tidy = pd.DataFrame({
        "task": rows["task"],
        "beta1": _numeric(rows, "opt.beta1").fillna(balanced),
        "beta2": _numeric(rows, "opt.beta2").fillna(balanced),
        "seed": _numeric(rows, "seed"),
        "omega1": _numeric(rows, "omega1"),
        "val_score": _numeric(rows, "val_score"),
    })
    outcome = rows["outcome"] if "outcome" in rows else pd.Series("", index=rows.index)
    tidy["diverged"] = (outcome == "diverged") | (_numeric(rows, "diverged") == 1)
    return tidy.dropna(subset=["beta1", "beta2"]).reset_index(drop=True)


def grid_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, β1, β2): mean and std over seeds of ω1 and the mean validation score, both over the
    non-diverged seeds, and the fraction of seeds that diverged (:data:`GRID_COLUMNS`)."""
    runs = tidy_runs(frame)
    rows = []
    for (task, beta1, beta2), cell in runs.groupby(["task", "beta1", "beta2"], sort=True):
        kept = cell[~cell["diverged"]]
        omega = kept["omega1"].dropna()
        rows.append({
            "task": task, "beta1": beta1, "beta2": beta2,
            "omega1": float(omega.mean()) if len(omega) else math.nan,
            "omega1_std": float(omega.std(ddof=1)) if len(omega) > 1 else math.nan,
            "val_score": float(kept["val_score"].mean()) if len(kept) else math.nan,
            "diverged_frac": float(cell["diverged"].mean()),
        })
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


def best_cells(table: pd.DataFrame, higher_is_better: dict[str, bool]) -> pd.DataFrame:
    """Per task, the cell with the best mean validation score (``higher_is_better[task]``; tasks
    without a score are left out)."""
    best = []
    for task, cells in table.groupby("task", sort=False):
        scored = cells.dropna(subset=["val_score"])
        if task not in higher_is_better or scored.empty:
            continue
        index = scored["val_score"].idxmax() if higher_is_better[task] else scored["val_score"].idxmin()
        best.append(table.loc[index])
    return pd.DataFrame(best, columns=table.columns).reset_index(drop=True)


def diagonal_trials(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> pd.DataFrame:
    """One row per (task, β1 row, seed) with every β2 of ``betas`` present: ``success`` says whether
    the diagonal cell has the row's minimal ω1 (ties count; diverged or missing ω1 = +inf)."""
    runs = tidy_runs(frame)
    rows = []
    for task, task_runs in runs.groupby("task", sort=False):
        values = sorted(task_runs["beta1"].unique()) if betas is None else list(betas)
        for beta1 in values:
            for seed, row in task_runs[np.isclose(task_runs["beta1"], beta1)].groupby("seed"):
                omega = {}
                for beta2 in values:
                    match = row[np.isclose(row["beta2"], beta2)]
                    if match.empty:
                        break
                    run = match.iloc[0]
                    finite = not run["diverged"] and math.isfinite(run["omega1"])
                    omega[beta2] = float(run["omega1"]) if finite else math.inf
                else:
                    diagonal = omega[beta1]
                    success = math.isfinite(diagonal) and diagonal <= min(omega.values())
                    rows.append({"task": task, "beta1": beta1, "seed": int(seed), "success": success})
    return pd.DataFrame(rows, columns=["task", "beta1", "seed", "success"])


def diagonal_test(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> pd.DataFrame:
    """The paper's binomial test per task (:data:`TEST_COLUMNS`): successes over (β1 row, seed)
    trials, p = P(X ≥ successes) for X ~ Binomial(trials, 1/len(betas)).

    ``frame`` is a frame of runs (MLflow's, or tidy); ``betas`` defaults to the β1 values found."""
    runs = tidy_runs(frame)
    trials = diagonal_trials(runs, betas)
    rows = []
    for task, task_trials in trials.groupby("task", sort=False):
        count = len(betas) if betas is not None else runs.loc[runs["task"] == task, "beta2"].nunique()
        successes, n = int(task_trials["success"].sum()), len(task_trials)
        rows.append({"task": task, "successes": successes, "trials": n,
                     "p_value": binomial_tail(successes, n, 1.0 / count)})
    return pd.DataFrame(rows, columns=list(TEST_COLUMNS))


# ---- running a grid -----------------------------------------------------------------------------

@dataclass
class GridRun:
    """What ``gsibench grid`` computed: the tables, and how the run went."""

    table: pd.DataFrame
    """:data:`GRID_COLUMNS`, one row per (task, β1, β2)."""
    test: pd.DataFrame
    """:data:`TEST_COLUMNS`, the diagonal test per task."""
    best: pd.DataFrame
    """Per task, the cell with the best validation score."""
    scores: dict
    """task spec -> its :class:`~gsibench.tasks.base.Score` (``None``: no score)."""
    outcome: object
    """The driver's :class:`~gsibench.execution.driver.BatteryOutcome`."""
    seconds: float


def run_grid(tasks: Sequence[str], betas: Sequence[float], seeds: Sequence[int], tracker, executor, out: Path,
             optimizer: str = "adam", lr: float | None = None, steps: int | None = None,
             schedule: str | None = None, init: str | None = None, device: str = "auto",
             progress: Progress = SILENT) -> GridRun:
    """Train every cell of the grid (finished cells are reused from MLflow), compute the ω1 table, the
    diagonal test and the best cell, and write ``grid.csv``, ``grid_test.csv`` and one heat-map per task
    into ``out``."""
    from gsibench.battery.spec import Battery
    from gsibench.execution.driver import run_battery
    from gsibench.reproductions.plots import omega_heatmap
    from gsibench.tasks import registry as task_registry
    from gsibench.tracking.runs import runs_frame

    try:
        optimizers = grid_specs(betas, optimizer, lr)
    except ValueError as error:
        raise UsageError(str(error)) from None
    battery = Battery(optimizers=optimizers, tasks=list(tasks), perturbations=[], seeds=list(seeds), steps=steps,
                      schedule=schedule, device=device, task_options={"init": init} if init else {},
                      experiment=tracker.experiment_name)
    cells, skipped = battery.plan()
    for task, reason in skipped:
        progress.note(f"skipped {task}: {reason}")
    if not cells:
        raise UsageError("no task can run here")
    started = time.perf_counter()
    outcome = run_battery(battery, tracker, executor, progress, "grid cells")
    seconds = time.perf_counter() - started
    frame = runs_frame(tracker, set(outcome.run_ids.values()))
    table, test = grid_table(frame), diagonal_test(frame, betas)
    scores = {spec: task_registry.resolve(spec)[0].score for spec in tasks}
    best = best_cells(table, {spec: score.higher_is_better for spec, score in scores.items() if score})
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "grid.csv", index=False)
    test.to_csv(out / "grid_test.csv", index=False)
    for task, cells_of_task in table.groupby("task", sort=False):
        omega_heatmap(cells_of_task, out / f"grid_{slug(task)}.png", title=f"ω1 on {task} (mean over seeds)")
    return GridRun(table, test, best, scores, outcome, seconds)


def slug(text: str) -> str:
    """A file-name-safe form of a spec: ``char-gpt[n_layer=1]`` -> ``char-gpt_n_layer_1``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")
