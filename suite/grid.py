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
frame of runs; ``gsibench grid`` (bottom of this module) runs the grid through the driver.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from suite.metrics import binomial_tail
from suite.specs import format_named, parse_named

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
    """Runs as read from MLflow (:func:`suite.summary.runs_frame`) -> :data:`RUN_COLUMNS`.

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


# ---- the command --------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    from suite.reproduce import add_run_options

    parser = subparsers.add_parser(
        "grid", help="the (beta1, beta2) grid of arXiv 2601.21739: omega1 table and diagonal binomial test",
        description="Train adam[beta1=..,beta2=..] on every cell of a beta grid (clean runs), then print "
                    "the omega1 table, the diagonal binomial test and the best cell; writes grid.csv, "
                    "grid_test.csv and a heat-map per task. Finished cells are skipped on a re-run.")
    parser.add_argument("--task", default="digits-mlp",
                        help="task spec, or a comma list (digits-mlp,digits-cnn,char-gpt); default digits-mlp")
    parser.add_argument("--betas", default="0.9,0.99,0.999", help="beta values of rows and columns")
    parser.add_argument("--seeds", default="3", help="number of seeds (3 -> 0,1,2) or a comma list")
    parser.add_argument("--steps", type=int, help="training steps (default: the task's own)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's, 1e-3 for adam)")
    parser.add_argument("--optimizer", default="adam", help="adam (default) or adamw, hyperparameters "
                        "allowed except the betas, e.g. adam[eps=1e-10]")
    parser.add_argument("--schedule", help="lr schedule: constant or warmup-cosine (default: the task's)")
    parser.add_argument("--init", help="initialization for tasks that take it: default or sinusoidal")
    add_run_options(parser, "grid")
    parser.set_defaults(func=cmd_grid)


def cmd_grid(args: argparse.Namespace) -> int:
    from rich.console import Console

    from suite.battery import Battery, parse_seeds
    from suite.cli import executor_from_args
    from suite.errors import UsageError
    from suite.reproduce import (
        frame_table,
        output_folder,
        parse_floats,
        report_console,
        run_battery_with_progress,
    )
    from suite.specs import split_list
    from suite.summary import runs_frame
    from suite.tracking import Tracker
    from tasks import registry as task_registry

    console, err = report_console(), Console(stderr=True)
    betas = parse_floats(args.betas, "--betas", 0.0, 1.0)
    try:
        optimizers = grid_specs(betas, args.optimizer, args.lr)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tasks = list(split_list(args.task))
    battery = Battery(optimizers=optimizers, tasks=tasks, perturbations=[], seeds=parse_seeds(args.seeds),
                      steps=args.steps, schedule=args.schedule, device=args.device,
                      task_options={"init": args.init} if args.init else {}, experiment=args.experiment)
    cells, skipped = battery.plan()
    for task, reason in skipped:
        err.print(f"[yellow]skipped[/] {task}: {reason}")
    if not cells:
        raise UsageError("no task can run here")
    out = output_folder(args)
    tracker = Tracker(args.tracking_uri, battery.experiment)
    started = time.perf_counter()
    outcome, _ = run_battery_with_progress(battery, tracker, executor_from_args(args), err, "grid cells")
    wall = time.perf_counter() - started
    frame = runs_frame(tracker, set(outcome.run_ids.values()))
    table, test = grid_table(frame), diagonal_test(frame, betas)
    scores = {spec: task_registry.resolve(spec)[0].score for spec in tasks}
    best = best_cells(table, {spec: score.higher_is_better for spec, score in scores.items() if score})
    table.to_csv(out / "grid.csv", index=False)
    test.to_csv(out / "grid_test.csv", index=False)

    from suite.plots import omega_heatmap

    for task, cells_of_task in table.groupby("task", sort=False):
        omega_heatmap(cells_of_task, out / f"grid_{_slug(task)}.png", title=f"ω1 on {task} (mean over seeds)")
        console.print(_grid_matrix(cells_of_task, betas, task))
    console.print(frame_table(test, "diagonal binomial test (success: β1 = β2 has the row's minimal ω1)",
                              formatters={"p_value": lambda v: f"{v:.3g}"}))
    if not best.empty:
        names = ", ".join(f"{spec}: {score.name} {'↑' if score.higher_is_better else '↓'}"
                          for spec, score in scores.items() if score)
        console.print(frame_table(best, f"best cell by validation score ({names})"))
    err.print(f"{len(outcome.cells)} runs ({outcome.ran} now, {outcome.already_done} already in MLflow, "
              f"{outcome.diverged} diverged) in {wall:.0f} s; wrote {out}/grid.csv, grid_test.csv and "
              f"heat-maps. MLflow: {tracker.uri} (experiment '{tracker.experiment_name}')")
    return 1 if outcome.failed else 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def _grid_matrix(cells: pd.DataFrame, betas: Sequence[float], task: str):
    """The ω1 table as the paper prints it: rows β1, columns β2, ``mean ± std``, diverged marked."""
    from rich.table import Table

    table = Table(title=f"ω1 on {task}: rows β1, columns β2 (mean ± std over seeds; † = some seeds diverged)")
    table.add_column("β1 \\ β2")
    for beta2 in betas:
        table.add_column(f"{beta2:g}", justify="right")
    for beta1 in betas:
        row = [f"{beta1:g}"]
        for beta2 in betas:
            match = cells[np.isclose(cells["beta1"], beta1) & np.isclose(cells["beta2"], beta2)]
            if match.empty:
                row.append("")
                continue
            cell = match.iloc[0]
            text = "diverged" if math.isnan(cell["omega1"]) else f"{cell['omega1']:.4g}"
            if not math.isnan(cell["omega1_std"]):
                text += f" ± {cell['omega1_std']:.2g}"
            if cell["diverged_frac"] > 0 and not math.isnan(cell["omega1"]):
                text += f" † {cell['diverged_frac']:.0%}"
            row.append(f"[bold]{text}[/]" if np.isclose(beta1, beta2) else text)
        table.add_row(*row)
    return table
