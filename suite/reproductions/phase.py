"""Adam's converge/diverge phase map over the (β1, β2) plane (Zhang et al., NeurIPS 2022, arXiv 2208.09632).

Zhang et al. prove that Adam converges when β2 is large and β1 < √β2, and that for small β2 a region
of the plane diverges, a region that grows with the number n of components and fills [0, 1)² as
n → ∞. The map trains ``adam[beta1=..,beta2=..]`` on the task ``finite-sum[n=N]``
(:mod:`gsibench.tasks.finite_sum`: f(x) = Σ_i f_i(x), one component of slope n and n − 1 of slope −1, one
component per step by random reshuffling) for every cell of a grid and several seeds, and reports per
cell the fraction of seeds that diverged.

**Divergence criteria.** A run is flagged by the runner (a non-finite loss or x, or a loss above the
task's bound) or judged on its trajectory:

* ``drift`` (default): x is *still rising over the second half of the run, off the wall*. The epoch
  means of x over the second half (blocks of n steps from the first epoch boundary at or after T/2) get
  a least-squares line; the run diverged when its slope is positive by more than :data:`DRIFT_T`
  standard errors and x ends (the mean of its last epoch) above −1, where the wall ½·relu(−1 − x)² stops
  pulling it back. A run that drifts to +∞ rises steadily under a constant lr and under η/√k alike; a
  converged run oscillates on the wall around x* = −1 − 1/n, and a rising stretch there (climbing back
  after an overshoot, or a slow momentum swing in a short run) is not divergence. On the 20×20 grid
  (2,000 steps, seeds 0–2, both schedules) every run with a rising trend but one ended more than 1 above
  x*; that one ended 0.11 above it.
* ``worse``: it ends worse than it started, f(x_T) − f* > f(x₀) − f*. This works with a constant lr
  only: under η/√k the early transient, taken with the largest steps, is never undone, and it flags
  nearly every cell for n ≥ 10.

Two engines compute the same runs (:mod:`gsibench.reproductions.phase_run`):

* ``batched`` (default, finite-sum only): every cell of one n advances together, the cell's x, m and
  v being entries of vectors, with torch.optim.Adam's update written out elementwise (bias
  correction, ε outside the root, float32, the same component order as the runner, the same
  divergence checks). The map is logged as **one MLflow run per n** with the grid as an artifact —
  a deviation from "one run per cell": 3,600 runs through the runner and the driver take about an hour
  on two cores. ``tests/reproductions/test_phase.py`` checks it against
  :func:`gsibench.execution.runner.run_cell` cell by cell.
* ``cells``: one runner cell per grid point through the driver and executor (``--jobs``, Ray), one
  MLflow run per cell, resumable per cell; x_k is recovered from the loss series
  (:func:`gsibench.tasks.finite_sum.position_from_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from gsibench.core.specs import format_named, parse_named
from gsibench.reproductions.defaults import PHASE_LR

CRITERIA = ("drift", "worse")
WALL = -1.0
"""Below x = −1 every component adds the wall ½·relu(−1 − x)²; the minimum x* = −1 − 1/n lies on it."""
DRIFT_T = 3.0
"""Standard errors by which the second half's trend of x must exceed zero to count as still rising. The
map hardly depends on it: on the 20×20 grid, 2,000 steps, seeds 0–2, thresholds 2, 3, 5 and 10 change
the count by at most 17 of 400 cells at n = 20 and 5 at n = 10 for any one seed, under either schedule."""
RUN_COLUMNS = ("n", "beta1", "beta2", "seed", "flagged", "suboptimality", "initial", "drift_t", "x_end")
"""One run: the engine's flag, f(x_T) − f*, f(x₀) − f*, the t statistic of the second half's trend of x and
the mean of x over the last epoch."""
PHASE_COLUMNS = ("n", "beta1", "beta2", "seeds", "diverged_frac")
COUNT_COLUMNS = ("n", "cells", "diverged_cells", "all_seeds_cells", "diverged_frac")
BOUNDARY_COLUMNS = ("n", "max_beta2_diverged", "beta1_0_last_diverged", "beta1_0_first_converged",
                    "diverged_with_beta1_below_sqrt_beta2")


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


def drift_t(x: np.ndarray, block: int) -> np.ndarray:
    """Per column of ``x`` (steps × runs): the t statistic (slope / standard error) of a least-squares
    line through the means of consecutive blocks of ``block`` steps over the second half of the run,
    starting at the first multiple of ``block`` at or after T/2. NaN with fewer than three blocks; ±inf
    for a perfectly straight line."""
    x = np.asarray(x, dtype=np.float64)
    start = -(-(len(x) // 2) // block) * block
    blocks = (len(x) - start) // block
    if blocks < 3:
        return np.full(x.shape[1], math.nan)
    means = x[start : start + blocks * block].reshape(blocks, block, -1).mean(axis=1)
    t = np.arange(blocks) - (blocks - 1) / 2
    centred = means - means.mean(axis=0)
    slope = (t[:, None] * centred).sum(axis=0) / (t**2).sum()
    spread = ((centred - slope * t[:, None]) ** 2).sum(axis=0) / (blocks - 2) / (t**2).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, slope / np.sqrt(spread), np.sign(slope) * np.inf)


def diverged(runs: pd.DataFrame, criterion: str = "drift") -> pd.Series:
    """Whether each run of :data:`RUN_COLUMNS` diverged under ``criterion`` (module docstring)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    failed = runs["flagged"].astype(bool) | ~np.isfinite(runs["suboptimality"].astype(float))
    if criterion == "worse":
        return failed | (runs["suboptimality"] > runs["initial"])
    return failed | ((runs["drift_t"].astype(float) > DRIFT_T) & (runs["x_end"].astype(float) > WALL))


def phase_table(runs: pd.DataFrame, criterion: str = "drift") -> pd.DataFrame:
    """Per (n, β1, β2): the number of seeds and the fraction of them that diverged (:data:`PHASE_COLUMNS`)."""
    flags = runs.assign(diverged=diverged(runs, criterion).astype(float))
    table = flags.groupby(["n", "beta1", "beta2"], sort=True)["diverged"].agg(["size", "mean"]).reset_index()
    return table.rename(columns={"size": "seeds", "mean": "diverged_frac"}).loc[:, list(PHASE_COLUMNS)]


def diverged_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per n: cells, cells where some seed diverged, cells where every seed did, and the diverged fraction
    of all runs."""
    rows = [{"n": int(n), "cells": len(cells), "diverged_cells": int((cells["diverged_frac"] > 0).sum()),
             "all_seeds_cells": int((cells["diverged_frac"] == 1).sum()),
             "diverged_frac": float(cells["diverged_frac"].mean())} for n, cells in table.groupby("n", sort=True)]
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))


def boundary(table: pd.DataFrame) -> pd.DataFrame:
    """Per n, where the diverged region ends (a cell counts when some seed diverged): the largest β2 of any
    diverged cell; at β1 = 0 (the smallest β1 of the grid) the largest diverged β2 and the smallest
    converged β2 above it; and how many diverged cells satisfy β1 < √β2."""
    rows = []
    for n, cells in table.groupby("n", sort=True):
        bad = cells[cells["diverged_frac"] > 0]
        first = cells[cells["beta1"] == cells["beta1"].min()].sort_values("beta2")
        last_bad = first.loc[first["diverged_frac"] > 0, "beta2"].max()
        above = first[(first["beta2"] > last_bad) & (first["diverged_frac"] == 0)]["beta2"]
        rows.append({"n": int(n), "max_beta2_diverged": bad["beta2"].max(), "beta1_0_last_diverged": last_bad,
                     "beta1_0_first_converged": above.min() if len(above) else math.nan,
                     "diverged_with_beta1_below_sqrt_beta2": int((bad["beta1"] < np.sqrt(bad["beta2"])).sum())})
    return pd.DataFrame(rows, columns=list(BOUNDARY_COLUMNS))


def _float32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def batched_phase(task: str, n: int, beta1s: Sequence[float], beta2s: Sequence[float], seed: int,
                  steps: int | None = None, lr: float = PHASE_LR, schedule: str = "constant",
                  eps: float = 1e-8) -> pd.DataFrame:
    """Every (β1, β2) cell of one n and seed at once (:data:`RUN_COLUMNS`); see the module docstring.

    Per step, as the runner does: the loss of the step's component at each cell's x (checked against
    the task's bound), its gradient, then Adam with the step's lr (``schedule``): m ← lerp(m, g, 1 − β1),
    v ← β2·v + (1 − β2)·g², x ← x − η_k/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε). A cell whose loss or x
    stops being finite or whose loss passes the bound is frozen and flagged."""
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
    path = np.empty((steps, b1.size), dtype=np.float32)
    for k in range(steps):
        rate = lr * lr_multiplier(schedule, k, steps)
        path[k] = x.detach().numpy()  # x_k, where step k's loss is taken (what the runner's losses give)
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
    flags = flagged.numpy()
    trend = np.where(flags, math.nan, drift_t(path, n))
    end = np.where(flags, math.nan, path[-n:].astype(np.float64).mean(axis=0))
    return pd.DataFrame({"n": n, "beta1": b1, "beta2": b2, "seed": seed, "flagged": flags, "suboptimality": gap,
                         "initial": problem.initial_suboptimality, "drift_t": trend, "x_end": end},
                        columns=list(RUN_COLUMNS))


def cell_row(cell, result) -> dict:
    """One runner cell of finite-sum and its result -> a row of :data:`RUN_COLUMNS` (x_k from the losses)."""
    from gsibench.tasks import registry as task_registry
    from gsibench.tasks.finite_sum import position_from_loss

    task = task_registry.get(cell.task_name)
    options = dict(cell.task_options)
    problem = task.build(cell.seed, torch.device("cpu"), **options)
    hparams = dict(cell.hparams)
    row = {"n": int(options["n"]), "beta1": float(hparams["beta1"]), "beta2": float(hparams["beta2"]),
           "seed": cell.seed, "flagged": True, "suboptimality": math.nan,
           "initial": problem.initial_suboptimality, "drift_t": math.nan, "x_end": math.nan}
    if result is None or result.status != "finished" or result.diverged:
        return row
    losses = result.series["loss"]
    x = position_from_loss(losses, np.array([problem.slope(k) for k in range(len(losses))]))
    row.update(flagged=False, suboptimality=float(result.val_score), drift_t=float(drift_t(x[:, None], row["n"])[0]),
               x_end=float(x[-row["n"]:].mean()))
    return row
