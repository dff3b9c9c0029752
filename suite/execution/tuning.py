"""The tuning protocol: every optimizer gets its own learning rate on every task before it is compared.

An optimizer compared at a learning rate chosen for another one loses for the wrong reason (Schmidt,
Schneider & Hennig, "Descending through a Crowded Valley", ICML 2021 — DeepOBS; AlgoPerf's
"tuning ruleset", Dahl et al. 2023). So before the battery each (optimizer, task) pair whose spec
does not set ``lr`` itself gets a small sweep:

* **grid** — ``points`` learning rates log-spaced over one decade either side of the entry's default,
  ``default × 10^linspace(−1, 1, points)`` (5 points: ×0.1, ×0.32, ×1, ×3.2, ×10; all but the default
  rounded to three significant digits). While the best score sits at an end of the grid the sweep
  extends it outward by one more step of the same ratio, at most :data:`MAX_EXTEND` times per side —
  a default that is far off for a task (Lion's 1e-4 is ten times below Adam's) must not leave an
  optimizer pinned at the edge of a grid centred on it;
* **runs** — clean runs (no perturbation), one seed (:data:`TUNE_SEED`, kept apart from the battery's
  seeds so the chosen lr is not fitted to the seeds it is then scored on), the battery's steps,
  schedule, clipping, device and task options;
* **choice** — the best primary validation score in the task's direction; a diverged or failed run
  counts as the worst; ties go to the learning rate closest (in log) to the default. If every point
  diverged the default is kept.

Tasks without a validation score (the gradient oracle) are not tuned: their loss is not a quality
measure (the oracle's linear loss rewards the largest step) and ‖R_k‖ = ‖Δθ‖/η is independent of η
there, so they keep the default. Only ``lr`` is swept; other hyperparameters stay as given.

The sweep runs are ordinary cells in the experiment ``<experiment>-tuning``, driven by
:func:`gsibench.execution.driver.run_battery`, so a re-run finds them finished and reuses them (resume for free),
and the leaderboard draws the learning-rate sensitivity curves from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gsibench.battery.cells import Cell
from gsibench.battery.spec import Battery
from gsibench.core.errors import UsageError
from gsibench.core.progress import SILENT, Progress

TUNE_SEED = 1000
"""The seed of every sweep run (not one of the battery's default seeds 0, 1, 2)."""
DEFAULT_POINTS = 5
SPAN_DECADES = 1.0
MAX_EXTEND = 2
TUNING_SUFFIX = "-tuning"


def tuning_experiment(experiment: str) -> str:
    """The MLflow experiment holding the sweep runs of ``experiment``."""
    return experiment + TUNING_SUFFIX


def lr_grid(default: float, points: int = DEFAULT_POINTS, span: float = SPAN_DECADES) -> list[float]:
    """``points`` learning rates log-spaced over ``default × 10^[−span, span]``; all but the default itself
    rounded to three significant digits."""
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    exponents = np.linspace(-span, span, points) if points > 1 else np.zeros(1)
    return sorted({default if abs(e) < 1e-12 else float(f"{default * 10.0**e:.3g}") for e in exponents})


def extend_grid(grid: list[float], lr: float, default: float, points: int = DEFAULT_POINTS,
                span: float = SPAN_DECADES) -> float | None:
    """The next learning rate outward, ``default × 10^(e ± step)``, when ``lr`` is an end of ``grid``
    (``e`` its exponent, ``step`` the grid's log spacing), else ``None``."""
    if len(grid) < 2 or points < 2 or lr not in (grid[0], grid[-1]):
        return None
    step = 2 * span / (points - 1)
    exponent = round(math.log10(lr / default) / step) + (1 if lr == grid[-1] else -1)
    return float(f"{default * 10.0 ** (exponent * step):.3g}")


def choose_lr(scores: dict[float, float | None], higher_is_better: bool, default: float) -> float:
    """The learning rate with the best score; ``None``/NaN (diverged, failed) is the worst; ties go to
    the rate nearest the default in log; the default if nothing finished."""
    finite = {lr: s for lr, s in scores.items() if s is not None and math.isfinite(s)}
    if not finite:
        return default
    best = max(finite.values()) if higher_is_better else min(finite.values())
    winners = [lr for lr, s in finite.items() if s == best]
    return min(winners, key=lambda lr: (abs(math.log(lr / default)), lr))


@dataclass(frozen=True)
class Choice:
    """The outcome of one (optimizer, task) sweep."""

    optimizer: str
    task: str
    default_lr: float
    lr: float
    scores: dict[float, float | None]
    higher_is_better: bool

    @property
    def at_edge(self) -> bool:
        """The winner is the smallest or largest grid point: the optimum may lie outside the grid."""
        grid = sorted(self.scores)
        return len(grid) > 1 and self.lr in (grid[0], grid[-1]) and any(
            s is not None and math.isfinite(s) for s in self.scores.values()
        )


@dataclass
class SweepPlan:
    """The sweep's cells and, per (optimizer, task), its grid. ``plan()`` makes it a battery for the driver."""

    base: Battery
    """The battery the sweep cells come from (clean, one seed, the tuning experiment)."""
    cells: list[Cell]
    grids: dict[tuple[str, str], list[float]]
    defaults: dict[tuple[str, str], float]
    directions: dict[str, bool]
    """task spec -> higher_is_better."""
    skipped: list[tuple[str, str]]

    def plan(self) -> tuple[list[Cell], list[tuple[str, str]]]:
        return self.cells, self.skipped

    def add(self, lrs: dict[tuple[str, str], float]) -> None:
        """Add one learning rate to each listed pair's grid, with its cell."""
        planned, self.skipped = replace(self.base, tuned_lrs=lrs).plan()
        self.cells = list(dict.fromkeys(self.cells + [c for c in planned if (c.optimizer, c.task) in lrs]))
        for pair, lr in lrs.items():
            self.grids[pair] = sorted(set(self.grids.get(pair, [])) | {lr})


def plan_sweep(battery: Battery, points: int = DEFAULT_POINTS) -> SweepPlan:
    """The sweep cells for every tunable (optimizer, task) pair of ``battery``."""
    from gsibench.core.specs import parse_named
    from gsibench.optimizers import registry as optimizer_registry
    from gsibench.tasks import registry as task_registry

    if points < 1:
        raise UsageError(f"--tune-points must be at least 1, got {points}")
    tunable = []
    for spec in battery.optimizers:
        _, hparams = optimizer_registry.resolve(spec, build=False)
        if "lr" in hparams and "lr" not in parse_named(spec)[1]:
            tunable.append((optimizer_registry.canonical(spec), spec, float(hparams["lr"])))
    tasks, directions = [], {}
    for task_spec in battery.tasks:
        task, _ = task_registry.resolve(task_spec)
        if task.score is not None:
            tasks.append(task_spec)
            directions[task_spec] = task.score.higher_is_better
    grids = {(display, task): lr_grid(default, points) for display, _, default in tunable for task in tasks}
    defaults = {(display, task): default for display, _, default in tunable for task in tasks}
    base = replace(battery, optimizers=[spec for _, spec, _ in tunable], tasks=tasks, perturbations=[],
                   seeds=[TUNE_SEED], tuned_lrs={}, experiment=tuning_experiment(battery.experiment))
    sweep = SweepPlan(base, [], {}, defaults, directions, [])
    if tunable and tasks:
        for index in range(max(len(g) for g in grids.values())):
            sweep.add({pair: grid[index] for pair, grid in grids.items() if index < len(grid)})
    unavailable = {task for task, _ in sweep.skipped}
    sweep.grids = {pair: grid for pair, grid in sweep.grids.items() if pair[1] not in unavailable}
    return sweep


def choices_from_frame(sweep: SweepPlan, frame) -> list[Choice]:
    """Pick each pair's learning rate from the sweep's MLflow runs (``gsibench.tracking.runs.runs_frame``)."""
    scores: dict[tuple[str, str], dict[float, float | None]] = {pair: {} for pair in sweep.grids}
    if not frame.empty:
        for _, row in frame.iterrows():
            pair = (row.get("optimizer"), row.get("task"))
            if pair not in scores or "opt.lr" not in row or row.get("seed") != TUNE_SEED:
                continue
            lr = float(row["opt.lr"])
            value = row.get("val_score", math.nan)
            ok = row.get("outcome") == "finished" and value is not None and math.isfinite(float(value))
            scores[pair][lr] = float(value) if ok else None
    return [
        Choice(display, task, sweep.defaults[(display, task)],
               choose_lr(scores[(display, task)], sweep.directions[task], sweep.defaults[(display, task)]),
               scores[(display, task)], sweep.directions[task])
        for display, task in sweep.grids
    ]


def run_sweep(battery: Battery, tracking_uri: str | None, executor, progress: Progress = SILENT,
              points: int = DEFAULT_POINTS) -> list[Choice]:
    """Run (or reuse) the sweep of ``battery``: the grid, then up to :data:`MAX_EXTEND` outward extensions
    of the grids whose best point is an end. Returns one :class:`Choice` per (optimizer, task)."""
    from gsibench.execution.driver import run_battery
    from gsibench.tracking.runs import runs_frame
    from gsibench.tracking.store import Tracker

    sweep = plan_sweep(battery, points)
    if not sweep.cells:
        return []
    tracker = Tracker(tracking_uri, tuning_experiment(battery.experiment))
    for round_ in range(MAX_EXTEND + 1):
        label = "lr sweep" if round_ == 0 else f"lr sweep, extension {round_}"
        outcome = run_battery(sweep, tracker, executor, progress, label)
        if outcome.store_error:
            raise UsageError(f"the tracking store failed during the lr sweep ({outcome.store_error}); its results "
                             f"are kept in {outcome.spool_root}: re-run the same command to write them and go on")
        choices = choices_from_frame(sweep, runs_frame(tracker, set(outcome.run_ids.values())))
        extra = {(c.optimizer, c.task): extend_grid(sweep.grids[(c.optimizer, c.task)], c.lr, c.default_lr, points)
                 for c in choices if c.at_edge}
        extra = {pair: lr for pair, lr in extra.items() if lr is not None}
        if not extra or round_ == MAX_EXTEND:
            break
        sweep.add(extra)
    return choices


def tune(battery: Battery, tracking_uri: str | None, executor, progress: Progress = SILENT,
         points: int = DEFAULT_POINTS) -> dict[tuple[str, str], float]:
    """``{(optimizer, task): lr}`` for :attr:`Battery.tuned_lrs`, from :func:`run_sweep`."""
    return {(c.optimizer, c.task): c.lr for c in run_sweep(battery, tracking_uri, executor, progress, points)}


def choice_note(choice: Choice) -> str:
    """Why a choice deserves a second look ("" when it does not)."""
    if all(s is None for s in choice.scores.values()):
        return "all diverged: default kept"
    return f"at the edge after {MAX_EXTEND} extensions" if choice.at_edge else ""
