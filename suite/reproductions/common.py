"""Plumbing shared by the paper reproductions (``grid``, ``invariance``, ``phase``).

Each one builds cells and runs them through the driver (so MLflow records every run and a re-run
resumes), then needs every cell's full step series: this run's results where the cell ran now, the
``trace.npz`` stored in MLflow for cells an earlier run finished.
"""

from __future__ import annotations

from gsibench.core.progress import SILENT, Progress


def run_and_collect(battery, tracker, executor, progress: Progress = SILENT, label: str = "cells"):
    """Run ``battery`` through the driver; returns ``(outcome, results)`` with ``results`` mapping each
    planned cell's key to its :class:`~gsibench.measure.result.CellResult` (fresh or from MLflow)."""
    from gsibench.execution.driver import run_battery

    fresh = {}
    outcome = run_battery(battery, tracker, executor, progress, label,
                          on_result=lambda result: fresh.__setitem__(result.cell.key, result))
    return outcome, full_results(outcome.cells, outcome, tracker, fresh)


def full_results(cells, outcome, tracker, fresh: dict) -> dict:
    """cell key -> CellResult with the full step series: this run's results, else the trace stored in
    MLflow (``Tracker.load_trace``) for cells finished by an earlier run."""
    results = {}
    for cell in cells:
        if cell.key in fresh:
            results[cell.key] = fresh[cell.key]
        elif cell.key in outcome.run_ids:
            results[cell.key] = tracker.load_trace(outcome.run_ids[cell.key], cell)
    return results
