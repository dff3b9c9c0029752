"""The end-of-battery table, read back from MLflow (so resumed cells count too)."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table

from suite.tracking import Tracker


def runs_frame(tracker: Tracker, run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per run: params, summary metrics, status, tags used by the battery."""
    rows = []
    for run in tracker.runs():
        if run_ids is not None and run.info.run_id not in run_ids:
            continue
        row = {"run_id": run.info.run_id, "status": run.info.status,
               "outcome": run.data.tags.get("gsibench.status", run.info.status.lower()),
               "cell_key": run.data.tags.get("cell_key")}
        row.update(run.data.params)
        row.update(run.data.metrics)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty and "seed" in frame:
        frame["seed"] = frame["seed"].astype(int)
    return frame


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (optimizer, task, perturbation), with the outcome counts."""
    if frame.empty:
        return frame
    metrics = [m for m in ("omega1", "sensitivity", "divergence", "val_score", "val_drop") if m in frame]
    grouped = frame.groupby(["optimizer", "task", "perturbation"], sort=False)
    table = grouped[metrics].mean()
    table["seeds"] = grouped.size()
    table["status"] = grouped["outcome"].agg(lambda s: ", ".join(f"{n} {k}" for k, n in s.value_counts().items()))
    return table.reset_index()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(table: pd.DataFrame, console: Console | None = None) -> None:
    console = console or Console()
    if table.empty:
        console.print("no results")
        return
    columns = ["optimizer", "task", "perturbation", "omega1", "sensitivity", "val_score", "seeds", "status"]
    rich_table = Table(title="gsibench results (mean over seeds)", show_lines=False)
    for column in columns:
        rich_table.add_column(column, justify="right" if column not in ("optimizer", "task", "perturbation",
                                                                          "status") else "left")
    for _, row in table.iterrows():
        rich_table.add_row(*(_fmt(row.get(c, math.nan)) for c in columns))
    console.print(rich_table)
