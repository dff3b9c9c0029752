"""Running ``gsibench phase``: the two engines of :mod:`gsibench.reproductions.phase` and their MLflow
records (one run per n for the batched engine, one run per cell for the cells engine)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gsibench.core.progress import SILENT, Progress
from gsibench.reproductions.phase import RUN_COLUMNS, adam_spec, batched_phase, cell_row, task_spec

BATCHED_VERSION = 2
"""Part of the resume key of a batched map: bump it when the engine's arithmetic or output changes
(2: the lr schedule, and the per-run columns that both criteria read)."""


def phase_key(settings: dict) -> str:
    blob = json.dumps({**settings, "version": BATCHED_VERSION}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_phase_run(tracker, key: str) -> pd.DataFrame | None:
    """The runs of a FINISHED phase run with this key, or None."""
    runs = tracker.runs(f"tags.phase_key = '{key}' and attributes.status = 'FINISHED'")
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.client.download_artifacts(runs[0].info.run_id, "phase_runs.csv", tmp)
        return pd.read_csv(path)


def log_phase_run(tracker, key: str, settings: dict, runs: pd.DataFrame, wall_seconds: float) -> str:
    """One MLflow run for the map of one n: settings as params, the run count as a metric, the runs as the
    artifact ``phase_runs.csv`` (both criteria can be read from it)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    run = tracker.client.create_run(tracker.experiment_id, start_time=now - int(wall_seconds * 1000),
                                    tags={"phase_key": key, "kind": "phase", "gsibench.status": "finished"},
                                    run_name=f"phase | {settings['task']} | n={settings['n']}")
    run_id = run.info.run_id
    params = {**{k: json.dumps(v) if isinstance(v, list) else v for k, v in settings.items()}, **tracker.versions}
    tracker.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    metrics = {"runs": float(len(runs)), "flagged_runs": float(runs["flagged"].sum()), "wall_seconds": wall_seconds}
    tracker.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phase_runs.csv"
        runs.to_csv(path, index=False)
        tracker.client.log_artifact(run_id, str(path))
    tracker.client.set_terminated(run_id, "FINISHED", end_time=now)
    return run_id


def run_batched(task: str, ns: Sequence[int], seeds: Sequence[int], beta1s, beta2s, steps: int, lr: float,
                tracker, schedule: str = "constant", progress: Progress = SILENT) -> pd.DataFrame:
    """The runs of every n with the batched engine, one MLflow run per n (reused when already there)."""
    frames = []
    progress.begin("phase maps", len(ns))
    try:
        for n in ns:
            settings = {"task": task_spec(task, n), "n": n, "engine": "batched", "steps": steps, "lr": lr,
                        "schedule": schedule, "seeds": list(seeds), "beta1": [float(b) for b in beta1s],
                        "beta2": [float(b) for b in beta2s]}
            key = phase_key(settings)
            runs = load_phase_run(tracker, key)
            if runs is None:
                started = time.perf_counter()
                runs = pd.concat([batched_phase(task, n, beta1s, beta2s, seed, steps, lr, schedule) for seed in seeds],
                                 ignore_index=True)
                log_phase_run(tracker, key, settings, runs, time.perf_counter() - started)
                state = "computed"
            else:
                state = "already in MLflow"
            progress.advance(f"n={n}: {state}")
            frames.append(runs)
    finally:
        progress.end()
    return pd.concat(frames, ignore_index=True)


def run_cells(task: str, ns: Sequence[int], seeds: Sequence[int], beta1s, beta2s, steps: int, lr: float,
              device: str, tracker, executor, schedule: str = "constant",
              progress: Progress = SILENT) -> tuple[pd.DataFrame, int]:
    """The runs through the driver, one runner cell and MLflow run per grid point; (runs, failed cells)."""
    from gsibench.battery.spec import Battery
    from gsibench.reproductions.common import run_and_collect

    battery = Battery(optimizers=[adam_spec(b1, b2, lr) for b1 in beta1s for b2 in beta2s],
                      tasks=[task_spec(task, n) for n in ns], perturbations=[], seeds=list(seeds),
                      steps=steps, schedule=schedule, device=device, experiment=tracker.experiment_name)
    outcome, results = run_and_collect(battery, tracker, executor, progress, "phase cells")
    rows = [cell_row(cell, results.get(cell.key)) for cell in outcome.cells]
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS)), len(outcome.failed)
