"""Adam's converge/diverge phase map over the (β1, β2) plane (Zhang et al., NeurIPS 2022, arXiv 2208.09632).

Zhang et al. prove that Adam converges when β2 is large and β1 < √β2, and that for small β2 a region
of the plane diverges, a region that grows with the number n of components and fills [0, 1)² as
n → ∞. The map trains ``adam[beta1=..,beta2=..]`` on the task ``finite-sum[n=N]``
(:mod:`gsibench.tasks.finite_sum`: f(x) = Σ_i f_i(x), one component of slope n and n − 1 of slope −1, one
component per step by random reshuffling) for every cell of a grid, and counts the diverged cells
per n.

**Divergence criterion** (the task's): a run diverges when the runner flags it (a non-finite loss or
a loss above the task's bound) or when it ends worse than it started, f(x_T) − f* > f(x_0) − f*
(``initial_suboptimality`` in the problem's info).

Two engines compute the same cells:

* ``batched`` (default, finite-sum only): every cell of one n advances together, the cell's x, m and
  v being entries of vectors, with torch.optim.Adam's update written out elementwise (bias
  correction, ε outside the root, float32, the same component order as the runner, the same
  divergence checks). The map is logged as **one MLflow run per n** with the grid as an artifact —
  a deviation from "one run per cell": 1,200 runs through the runner and the driver take tens of
  minutes on two cores (2,000 steps each; MLflow alone adds ~0.2 s a run). ``tests/test_phase.py``
  checks it against :func:`gsibench.execution.runner.run_cell` cell by cell.
* ``cells``: one runner cell per grid point through the driver and executor (``--jobs``, Ray), one
  MLflow run per cell, resumable per cell; for any task with an ``n`` option.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gsibench.core.progress import SILENT, Progress
from gsibench.core.specs import format_named, parse_named
from gsibench.reproductions.defaults import PHASE_LR

PHASE_COLUMNS = ("n", "beta1", "beta2", "diverged")
RUN_COLUMNS = ("n", "beta1", "beta2", "seed", "diverged", "suboptimality")
COUNT_COLUMNS = ("n", "cells", "diverged_cells", "diverged_frac")
BATCHED_VERSION = 1
"""Part of the resume key of a batched map: bump it when the engine's arithmetic changes."""


def beta_grid(points: int, beta1_max: float = 0.95, gap_min: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """β1 on ``linspace(0, beta1_max, points)``; β2 = 1 − ``logspace(0, log10(gap_min), points)``, from
    0 to 1 − gap_min, dense near 1 where the boundary lies for large n. Rounded to 6 decimals so
    that optimizer specs stay readable."""
    beta1s = np.round(np.linspace(0.0, beta1_max, points), 6)
    beta2s = np.round(1.0 - np.logspace(0.0, math.log10(gap_min), points), 6)
    return beta1s, beta2s


def task_spec(task: str, n: int) -> str:
    """``finite-sum[sampling='replacement']`` + n=5 -> ``finite-sum[n=5,sampling='replacement']``."""
    name, options = parse_named(task, example="finite-sum[sampling='shuffle']")
    return format_named(name, {**options, "n": n})


def adam_spec(beta1: float, beta2: float, lr: float) -> str:
    return format_named("adam", {"beta1": float(beta1), "beta2": float(beta2), "lr": lr})


def is_diverged(flagged: bool, suboptimality: float, initial: float | None) -> bool:
    """The task's criterion: flagged by the runner, no finite final score, or worse than at the start."""
    if flagged or not math.isfinite(suboptimality):
        return True
    return initial is not None and suboptimality > initial


def phase_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (n, β1, β2): the fraction of seeds that diverged (:data:`PHASE_COLUMNS`; 0/1 with one seed)."""
    table = runs.groupby(["n", "beta1", "beta2"], sort=True)["diverged"].mean().reset_index()
    return table.loc[:, list(PHASE_COLUMNS)]


def diverged_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per n: cells, cells with a diverged seed, and the diverged fraction of all runs."""
    rows = [{"n": int(n), "cells": len(cells), "diverged_cells": int((cells["diverged"] > 0).sum()),
             "diverged_frac": float(cells["diverged"].mean())} for n, cells in table.groupby("n", sort=True)]
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))


def _float32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def batched_phase(task: str, n: int, beta1s: Sequence[float], beta2s: Sequence[float], seed: int,
                  steps: int | None = None, lr: float = PHASE_LR, eps: float = 1e-8) -> pd.DataFrame:
    """Every (β1, β2) cell of one n and seed at once (:data:`RUN_COLUMNS`); see the module docstring.

    Per step, as the runner does: the loss of the step's component at each cell's x (checked against
    the task's bound), its gradient, then Adam: m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g²,
    x ← x − η/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε). A cell whose loss or x stops being finite or
    whose loss passes the bound is frozen and flagged."""
    from gsibench.battery.schedules import lr_multiplier
    from gsibench.tasks import registry as task_registry
    from gsibench.tasks.finite_sum import component_loss, objective, optimal_value

    spec = task_spec(task, n)
    definition, options = task_registry.resolve(spec)
    if definition.name != "finite-sum":
        raise ValueError(f"the batched engine knows the finite-sum task only, got '{spec}'")
    steps = steps or definition.default_steps
    problem = definition.build(seed, torch.device("cpu"), **options)
    b1, b2 = (np.asarray(values, dtype=np.float64) for values in np.meshgrid(beta1s, beta2s, indexing="ij"))
    b1, b2 = b1.ravel(), b2.ravel()
    x = torch.full((b1.size,), float(problem.x.detach()), dtype=torch.float32, requires_grad=True)
    m, v = torch.zeros_like(x, requires_grad=False), torch.zeros_like(x, requires_grad=False)
    weight1, beta2, weight2 = _float32(1.0 - b1), _float32(b2), _float32(1.0 - b2)
    flagged = torch.zeros(b1.size, dtype=torch.bool)
    for k in range(steps):
        rate = lr * lr_multiplier(definition.schedule, k, steps)
        loss = component_loss(x, problem.component(k), n)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            flagged |= ~torch.isfinite(loss) | (loss > definition.loss_bound)
            grad = torch.where(flagged, torch.zeros_like(grad), grad)
            m_next = m.lerp(grad, weight1)
            v_next = v * beta2 + weight2 * grad * grad
            step_size = _float32(-rate / (1.0 - b1 ** (k + 1)))
            denominator = v_next.sqrt() / _float32(np.sqrt(1.0 - b2 ** (k + 1))) + eps
            x_next = x + step_size * (m_next / denominator)
            flagged |= ~torch.isfinite(x_next)
            m = torch.where(flagged, m, m_next)
            v = torch.where(flagged, v, v_next)
            x.copy_(torch.where(flagged, x, x_next))
    with torch.no_grad():
        gap = (objective(x, n) - optimal_value(n)).double().numpy()
    initial = problem.initial_suboptimality
    diverged = [is_diverged(bool(f), float(s), initial) for f, s in zip(flagged.numpy(), gap)]
    return pd.DataFrame({"n": n, "beta1": b1, "beta2": b2, "seed": seed, "diverged": diverged,
                         "suboptimality": gap}, columns=list(RUN_COLUMNS))


def cell_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Runner cells read back from MLflow (:func:`gsibench.tracking.runs.runs_frame`) -> :data:`RUN_COLUMNS`."""
    rows = []
    for _, run in frame.iterrows():
        initial = run.get("info.initial_suboptimality")
        score = float(run.get("val_score", math.nan))
        rows.append({"n": int(run["task.n"]), "beta1": float(run["opt.beta1"]), "beta2": float(run["opt.beta2"]),
                     "seed": int(run["seed"]),
                     "diverged": is_diverged(run.get("outcome") == "diverged" or run.get("status") == "FAILED",
                                             score, None if pd.isna(initial) else float(initial)),
                     "suboptimality": score})
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


# ---- MLflow: one run per n for the batched engine ------------------------------------------------

def phase_key(settings: dict) -> str:
    blob = json.dumps({**settings, "version": BATCHED_VERSION}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_phase_run(tracker, key: str) -> pd.DataFrame | None:
    """The grid of a FINISHED phase run with this key, or None."""
    runs = tracker.runs(f"tags.phase_key = '{key}' and attributes.status = 'FINISHED'")
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.client.download_artifacts(runs[0].info.run_id, "phase_runs.csv", tmp)
        return pd.read_csv(path)


def log_phase_run(tracker, key: str, settings: dict, runs: pd.DataFrame, wall_seconds: float) -> str:
    """One MLflow run for the map of one n: settings as params, counts as metrics, the grid as artifact."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    run = tracker.client.create_run(tracker.experiment_id, start_time=now - int(wall_seconds * 1000),
                                    tags={"phase_key": key, "kind": "phase", "gsibench.status": "finished"},
                                    run_name=f"phase | {settings['task']} | n={settings['n']}")
    run_id = run.info.run_id
    params = {**{k: json.dumps(v) if isinstance(v, list) else v for k, v in settings.items()}, **tracker.versions}
    tracker.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    metrics = {"cells": float(len(runs)), "diverged_runs": float(runs["diverged"].sum()),
               "diverged_frac": float(runs["diverged"].mean()), "wall_seconds": wall_seconds}
    tracker.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phase_runs.csv"
        runs.to_csv(path, index=False)
        tracker.client.log_artifact(run_id, str(path))
    tracker.client.set_terminated(run_id, "FINISHED", end_time=now)
    return run_id


def run_batched(task: str, ns: Sequence[int], seeds: Sequence[int], beta1s, beta2s, steps: int, lr: float,
                tracker, progress: Progress = SILENT) -> pd.DataFrame:
    """The maps of every n with the batched engine, one MLflow run per n (reused when already there)."""
    frames = []
    progress.begin("phase maps", len(ns))
    try:
        for n in ns:
            settings = {"task": task_spec(task, n), "n": n, "engine": "batched", "steps": steps, "lr": lr,
                        "seeds": list(seeds), "beta1": [float(b) for b in beta1s], "beta2": [float(b) for b in beta2s]}
            key = phase_key(settings)
            runs = load_phase_run(tracker, key)
            if runs is None:
                started = time.perf_counter()
                runs = pd.concat([batched_phase(task, n, beta1s, beta2s, seed, steps, lr) for seed in seeds],
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
              device: str, tracker, executor, progress: Progress = SILENT) -> tuple[pd.DataFrame, int]:
    """The maps through the driver, one runner cell and MLflow run per grid point; (runs, failed cells)."""
    from gsibench.battery.spec import Battery
    from gsibench.execution.driver import run_battery
    from gsibench.tracking.runs import runs_frame

    battery = Battery(optimizers=[adam_spec(b1, b2, lr) for b1 in beta1s for b2 in beta2s],
                      tasks=[task_spec(task, n) for n in ns], perturbations=[], seeds=list(seeds),
                      steps=steps, device=device, experiment=tracker.experiment_name)
    outcome = run_battery(battery, tracker, executor, progress, "phase cells")
    return cell_runs(runs_frame(tracker, set(outcome.run_ids.values()))), len(outcome.failed)
