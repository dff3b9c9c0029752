"""``gsibench grid``: train a β grid through the driver, then write its tables and tests.

One battery per task (each task has its own steps and weight decay), every cell a clean
``adam[beta1=..,beta2=..]`` run recorded in MLflow, so a re-run skips finished cells. The runs' full
‖R_k‖ series (fresh, or ``trace.npz`` from MLflow) give the scale-free ω1; MLflow's summaries give ω1
and the validation score. Files written into ``out``, each naming the protocol in a ``protocol`` column:
``grid.csv`` (:data:`~gsibench.reproductions.grid.GRID_COLUMNS`), ``grid_test.csv`` (the four tests),
``grid_dip.csv`` (the local dip test's trials), ``grid_settings.csv`` (what each task ran) and one
heat-map per task.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gsibench.core.errors import UsageError
from gsibench.core.progress import SILENT, Progress
from gsibench.reproductions.grid import best_cells, grid_table, grid_tests
from gsibench.reproductions.grid_design import QUICK, Pair, Protocol, grid_specs, steps_needed

SETTINGS_COLUMNS = ("task", "steps", "schedule", "lr_warmup", "init", "weight_decay", "omega_window",
                    "omega_warmup")


@dataclass
class GridRun:
    """What ``gsibench grid`` computed: the tables, and how the run went."""

    protocol: str
    settings: pd.DataFrame
    """:data:`SETTINGS_COLUMNS`, one row per task."""
    table: pd.DataFrame
    """:data:`~gsibench.reproductions.grid.GRID_COLUMNS`, one row per (task, β1, β2)."""
    tests: pd.DataFrame
    """:data:`~gsibench.reproductions.grid.TESTS_COLUMNS`, four tests per task."""
    dips: pd.DataFrame
    excluded: pd.DataFrame
    best: pd.DataFrame
    """Per task, the cell with the best validation score."""
    scores: dict
    """task spec -> its :class:`~gsibench.tasks.base.Score` (``None``: no score)."""
    seconds: float
    runs: int = 0
    ran: int = 0
    already_done: int = 0
    diverged: int = 0
    failed: list = field(default_factory=list)


def scaled_omegas(frame: pd.DataFrame, results: dict) -> pd.Series:
    """Per run of ``frame``: ω1 divided by the mean ‖R_k‖ over the steps ω1 was computed on (the cell's
    ω window, :func:`gsibench.execution.runner.oscillation_window`); NaN for diverged or missing runs."""
    from gsibench.execution.runner import oscillation_window

    values = []
    for _, run in frame.iterrows():
        result = results.get(run.get("cell_key"))
        omega = float(run.get("omega1", math.nan))
        if result is None or result.diverged or not math.isfinite(omega):
            values.append(math.nan)
            continue
        norms = result.update_norm
        level = float(np.mean(norms[oscillation_window(result.cell, len(norms)).warmup:]))
        values.append(omega / level if level > 0 else math.nan)
    return pd.Series(values, index=frame.index, dtype=float)


def _battery(task: str, pairs, seeds, tracker, protocol: Protocol, optimizer: str, lr, steps, schedule, init,
             device: str, progress: Progress):
    """The battery of one task and its settings row."""
    from gsibench.battery.spec import Battery
    from gsibench.tasks import registry as task_registry

    definition = task_registry.resolve(task)[0]
    needed = steps_needed(pairs)
    run_steps = steps or max(definition.default_steps, needed)
    if run_steps < needed:
        progress.note(f"{task}: {run_steps} steps is shorter than 3/(1 − max β2) = {needed}: the slowest "
                      "second-moment average is still in its start-up")
    init = protocol.init or init
    if init and "init" not in definition.options:
        progress.note(f"{task} has no init option: it keeps its own initialization")
        init = None
    weight_decay = protocol.weight_decay_for(definition.name)
    try:
        specs = grid_specs(pairs, optimizer, lr, weight_decay)
    except ValueError as error:
        raise UsageError(str(error)) from None
    battery = Battery(optimizers=specs, tasks=[task], perturbations=[], seeds=list(seeds), steps=run_steps,
                      schedule=protocol.schedule or schedule, warmup=protocol.lr_warmup, device=device,
                      task_options={"init": init} if init else {}, experiment=tracker.experiment_name,
                      omega_window=protocol.omega_window, omega_warmup=protocol.omega_warmup(run_steps))
    cells, skipped = battery.plan()
    if not cells:
        return None, None, skipped
    cell = cells[0]
    settings = {"task": task, "steps": run_steps, "schedule": cell.schedule,
                "lr_warmup": cell.warmup if cell.schedule != "constant" else math.nan,
                "init": dict(cell.task_options).get("init", "(task's own)"),
                "weight_decay": dict(cell.hparams).get("weight_decay", math.nan),
                "omega_window": protocol.omega_window or "T/20 (≤ 200)",
                "omega_warmup": protocol.omega_warmup(run_steps) if protocol.omega_skip is not None else "T/10"}
    return battery, settings, skipped


def run_grid(tasks: Sequence[str], pairs: Sequence[Pair], seeds: Sequence[int], tracker, executor, out: Path,
             protocol: Protocol = QUICK, optimizer: str = "adam", lr: float | None = None, steps: int | None = None,
             schedule: str | None = None, init: str | None = None, device: str = "auto",
             progress: Progress = SILENT) -> GridRun:
    """Train every (β1, β2) cell of ``pairs`` on every task (finished cells are reused from MLflow),
    compute the tables and tests, and write them into ``out`` (module docstring)."""
    from gsibench.reproductions.common import run_and_collect
    from gsibench.reproductions.plots import omega_heatmap
    from gsibench.tasks import registry as task_registry
    from gsibench.tracking.runs import runs_frame

    plans = []
    for task in tasks:  # everything is checked before anything trains
        battery, settings, skipped = _battery(task, pairs, seeds, tracker, protocol, optimizer, lr, steps,
                                              schedule, init, device, progress)
        for name, reason in skipped:
            progress.note(f"skipped {name}: {reason}")
        if battery is not None:
            plans.append((battery, settings))
    if not plans:
        raise UsageError("no task can run here")
    started = time.perf_counter()
    results, run_ids, outcomes = {}, set(), []
    for battery, settings in plans:
        outcome, fresh = run_and_collect(battery, tracker, executor, progress, f"grid cells ({settings['task']})")
        results.update(fresh)
        run_ids |= set(outcome.run_ids.values())
        outcomes.append(outcome)
    seconds = time.perf_counter() - started
    frame = runs_frame(tracker, run_ids)
    frame["omega1_scaled"] = scaled_omegas(frame, results)
    scores = {settings["task"]: task_registry.resolve(settings["task"])[0].score for _, settings in plans}
    directions = {task: score.higher_is_better for task, score in scores.items() if score}
    table = grid_table(frame)
    tests, dips, excluded = grid_tests(frame, directions)
    done = GridRun(protocol.name, pd.DataFrame([s for _, s in plans], columns=list(SETTINGS_COLUMNS)), table,
                   tests, dips, excluded, best_cells(table, directions), scores, seconds,
                   runs=sum(len(o.cells) for o in outcomes), ran=sum(o.ran for o in outcomes),
                   already_done=sum(o.already_done for o in outcomes), diverged=sum(o.diverged for o in outcomes),
                   failed=[cell for o in outcomes for cell in o.failed])
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("grid", done.table), ("grid_test", done.tests), ("grid_dip", done.dips),
                        ("grid_settings", done.settings)):
        named = table.copy()
        named.insert(0, "protocol", protocol.name)
        named.to_csv(out / f"{name}.csv", index=False)
    for task, cells_of_task in done.table.groupby("task", sort=False):
        omega_heatmap(cells_of_task, out / f"grid_{slug(task)}.png",
                      title=f"ω1 on {task}, {protocol.name} protocol (mean over seeds)")
    return done


def slug(text: str) -> str:
    """A file-name-safe form of a spec: ``char-gpt[n_layer=1]`` -> ``char-gpt_n_layer_1``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")
