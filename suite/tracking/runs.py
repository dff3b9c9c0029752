"""A battery's runs read back from MLflow as a frame (so resumed cells count too), and its summary."""

from __future__ import annotations

import pandas as pd

from gsibench.measure.schema import PER_CELL
from gsibench.tracking.store import Tracker


def runs_frame(tracker: Tracker, run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per run: params, summary metrics, status, tags used by the battery."""
    rows = []
    for row in tracker.rows(run_ids):
        row["outcome"] = row.get("gsibench.status", str(row["status"]).lower())
        row.setdefault("cell_key", None)
        rows.append({key: value for key, value in row.items() if not key.startswith("series.")})
    frame = pd.DataFrame(rows)
    if not frame.empty and "seed" in frame:
        frame["seed"] = frame["seed"].astype(int)
    return frame


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (optimizer, task, perturbation), with the outcome counts."""
    if frame.empty:
        return frame
    metrics = [m for m in PER_CELL if m in frame]
    grouped = frame.groupby(["optimizer", "task", "perturbation"], sort=False)
    table = grouped[metrics].mean()
    table["seeds"] = grouped.size()
    table["status"] = grouped["outcome"].agg(lambda s: ", ".join(f"{n} {k}" for k, n in s.value_counts().items()))
    return table.reset_index()
