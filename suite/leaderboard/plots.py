"""The leaderboard's figures, drawn from MLflow data only (matplotlib, Agg backend, PNG).

* ``traces_<task>.png`` — ‖R_k‖ per optimizer, clean twin against each perturbation (first seed), the
  picture of arXiv 2601.21739 Figs. 1–2 for every optimizer;
* ``sensitivity.png`` — update sensitivity per perturbation, bars per optimizer and task with 95% CIs;
* ``lr_sensitivity.png`` — validation score against learning rate from the tuning sweep (DeepOBS,
  Schmidt et al. 2021, Fig. 5 style): flat curves mean an optimizer forgives a badly chosen lr;
* ``performance_profile.png`` — Dolan & Moré (2002) profiles as used by AlgoPerf (Dahl et al. 2023):
  ρ(τ) = share of problems on which an optimizer's cost is within τ× the best optimizer's;
* ``omega_grid_<task>.png`` — ω1 over the (β1, β2) grid with the diagonal test, when grid runs exist.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gsibench.leaderboard.data import BatteryRuns, metric_history
from gsibench.leaderboard.stats import mean_ci
from gsibench.leaderboard.tables import ranking_values

SENSITIVITY_FLOOR = 1e-4
"""Bars and profile costs below this are drawn at it (a log axis cannot show 0)."""
PROFILE_FLOOR = 1e-3
"""Costs below this count as equal in the robustness profile (0.1% deviation of ‖R_k‖)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: list[str]) -> dict[str, tuple]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def traces(data: BatteryRuns, task: str, path: Path) -> Path | None:
    """‖R_k‖ clean vs perturbed per optimizer on ``task`` (the first seed; MLflow metric histories)."""
    plt = _pyplot()
    runs = data.runs[data.runs["task"] == task]
    if runs.empty:
        return None
    seed = int(runs["seed"].min())
    optimizers = [o for o in data.optimizers if (runs["optimizer"] == o).any()]
    perturbations = data.perturbations(task)
    colors = dict(zip(perturbations, ["black", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple",
                                      "tab:brown", "tab:pink"]))
    columns = min(4, len(optimizers))
    rows = math.ceil(len(optimizers) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.7 * rows), squeeze=False)
    for ax, optimizer in zip(axes.flat, optimizers):
        mine = runs[(runs["optimizer"] == optimizer) & (runs["seed"] == seed)]
        drawn: list[np.ndarray] = []
        for perturbation in perturbations:
            match = mine[mine["perturbation"] == perturbation]
            if match.empty:
                continue
            steps, values = metric_history(data.uri, match["run_id"].iloc[0], "series.update_norm")
            values = np.maximum(np.asarray(values, dtype=float), 1e-12)
            drawn.append(values)
            ax.plot(steps, values, color=colors.get(perturbation, "gray"), lw=1.0 if perturbation != "none" else 1.6,
                    alpha=0.9, label=perturbation if perturbation != "none" else "clean")
        every = np.concatenate(drawn) if drawn else np.ones(1)
        if every.max() / every.min() > 10:
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(optimizer, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(optimizers):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(f"‖R_k‖ on {task} (seed {seed}): clean twin vs perturbed (x: step k; y: log scale where "
                 "the range exceeds 10×)", fontsize=10)
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", fontsize=7, frameon=False, bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def sensitivity_bars(cells: pd.DataFrame, optimizers: list[str], path: Path) -> Path | None:
    """Update sensitivity with 95% CIs: one panel per perturbation, bars per task and optimizer."""
    plt = _pyplot()
    perturbed = cells[cells["perturbation"] != "none"]
    if perturbed.empty:
        return None
    perturbations = list(dict.fromkeys(perturbed["perturbation"]))
    tasks = list(dict.fromkeys(perturbed["task"]))
    colors = _colors(optimizers)
    fig, axes = plt.subplots(1, len(perturbations), figsize=(4.2 * len(perturbations), 3.4), squeeze=False)
    width = 0.8 / max(1, len(optimizers))
    for ax, perturbation in zip(axes.flat, perturbations):
        mine = perturbed[perturbed["perturbation"] == perturbation]
        for i, optimizer in enumerate(optimizers):
            rows = mine[mine["optimizer"] == optimizer].set_index("task").reindex(tasks)
            heights = np.maximum(rows["sensitivity"].to_numpy(float), SENSITIVITY_FLOOR)
            errors = np.nan_to_num(rows["sensitivity_ci"].to_numpy(float))
            lower = np.minimum(errors, heights - SENSITIVITY_FLOOR)
            ax.bar(np.arange(len(tasks)) + (i - (len(optimizers) - 1) / 2) * width, heights, width,
                   yerr=[lower, errors], color=colors[optimizer], label=optimizer, capsize=1.5,
                   error_kw={"lw": 0.7})
        ax.set_yscale("log")
        ax.set_ylim(bottom=SENSITIVITY_FLOOR)
        ax.set_xticks(range(len(tasks)), tasks, fontsize=8)
        ax.set_title(perturbation, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    axes.flat[0].set_ylabel("update sensitivity (lower = more scale-robust)", fontsize=8)
    axes.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def lr_sensitivity(data: BatteryRuns, optimizers: list[str], path: Path) -> Path | None:
    """Validation score vs learning rate from the tuning sweep; the chosen lr starred, diverged as ×."""
    plt = _pyplot()
    sweep = data.tuning
    if sweep.empty or "opt.lr" not in sweep:
        return None
    tasks = [t for t in dict.fromkeys(sweep["task"]) if data.scores.get(t) is not None]
    if not tasks:
        return None
    colors = _colors(optimizers)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        score = data.scores[task]
        mine = sweep[sweep["task"] == task]
        chosen = data.runs[(data.runs["task"] == task) & (data.runs["perturbation"] == "none")]
        finite_scores = mine["val_score"].dropna()
        bottom = (finite_scores.min() if score.higher_is_better else finite_scores.max()) if len(finite_scores) else 0
        for optimizer in [o for o in optimizers if (mine["optimizer"] == o).any()]:
            rows = mine[mine["optimizer"] == optimizer].sort_values("opt.lr")
            ok = (rows["outcome"] == "finished") & rows["val_score"].notna()
            ax.plot(rows.loc[ok, "opt.lr"], rows.loc[ok, "val_score"], "o-", ms=3, lw=1.2,
                    color=colors[optimizer], label=optimizer)
            if (~ok).any():
                ax.plot(rows.loc[~ok, "opt.lr"], [bottom] * int((~ok).sum()), "x", color=colors[optimizer], ms=6)
            lr = chosen.loc[chosen["optimizer"] == optimizer, "opt.lr"].dropna()
            if len(lr) and (rows["opt.lr"] == lr.iloc[0]).any():
                picked = rows[rows["opt.lr"] == lr.iloc[0]]["val_score"].iloc[0]
                if picked is not None and math.isfinite(picked):
                    ax.plot([lr.iloc[0]], [picked], "*", ms=11, color=colors[optimizer], mec="black", mew=0.5)
        ax.set_xscale("log")
        if not score.higher_is_better:
            ax.set_yscale("log")
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel(f"{score.name} ({'higher' if score.higher_is_better else 'lower'} is better)", fontsize=8)
        ax.set_title(f"{task}: lr sweep (★ chosen, × diverged)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def profile_curve(costs: dict[str, list[float]], taus: np.ndarray) -> dict[str, np.ndarray]:
    """Dolan–Moré: for each optimizer ρ(τ) = share of problems with cost ≤ τ · best cost of that problem.
    ``costs[optimizer][i]`` is the cost on problem i (``inf`` for diverged/missing)."""
    matrix = np.array(list(costs.values()), dtype=float)
    if matrix.size == 0:
        return {}
    best = np.min(matrix, axis=0)
    ratios = matrix / np.where(best > 0, best, 1.0)
    ratios[:, ~np.isfinite(best)] = np.inf
    return {name: np.array([(row <= tau).mean() for tau in taus]) for name, row in zip(costs, ratios)}


def profile_costs(data: BatteryRuns, cells: pd.DataFrame, optimizers: list[str]) -> dict[str, dict[str, list]]:
    """Costs for the two profiles: robustness (sensitivity per perturbed (task, perturbation), floored at
    :data:`PROFILE_FLOOR`) and validation (per scored task, clean: error rate 1 − score for a
    higher-is-better score in [0, 1], the score itself for a lower-is-better one)."""
    robust: dict[str, list] = {o: [] for o in optimizers}
    quality: dict[str, list] = {o: [] for o in optimizers}
    for task in data.tasks:
        for perturbation in data.perturbations(task):
            if perturbation == "none":
                continue
            values = ranking_values(data, task, perturbation) or {}
            for optimizer in optimizers:
                seeds = values.get(optimizer, {})
                mean = mean_ci(list(seeds.values()))[0]
                robust[optimizer].append(max(mean, PROFILE_FLOOR) if math.isfinite(mean) else math.inf)
        score = data.scores.get(task)
        if score is None:
            continue
        clean = cells[(cells["task"] == task) & (cells["perturbation"] == "none")].set_index("optimizer")
        for optimizer in optimizers:
            value = clean["val_score"].get(optimizer, math.nan)
            cost = (1.0 - value) if score.higher_is_better else value
            quality[optimizer].append(max(cost, 1e-12) if math.isfinite(cost) else math.inf)
    return {"robustness": robust, "validation": quality}


def performance_profile(data: BatteryRuns, cells: pd.DataFrame, optimizers: list[str], path: Path) -> Path | None:
    plt = _pyplot()
    costs = profile_costs(data, cells, optimizers)
    panels = [(name, c) for name, c in costs.items() if c and len(next(iter(c.values()), [])) > 0]
    if not panels:
        return None
    colors = _colors(optimizers)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.5), squeeze=False)
    titles = {"robustness": "robustness profile: update sensitivity over perturbed (task, perturbation)",
              "validation": "validation profile: clean error over scored tasks"}
    for ax, (name, panel) in zip(axes.flat, panels):
        finite = np.array([v for row in panel.values() for v in row if math.isfinite(v)])
        best = np.array([min(col) for col in zip(*panel.values())])
        top = max(2.0, float(np.nanmax(finite / np.min(best[np.isfinite(best)]))) * 1.5) if finite.size else 2.0
        taus = np.logspace(0, math.log10(top), 200)
        curves = profile_curve(panel, taus)
        for i, optimizer in enumerate(optimizers):
            ax.step(taus, curves[optimizer] + (i - len(optimizers) / 2) * 0.004, where="post",
                    color=colors[optimizer], lw=1.4, label=optimizer)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("τ (cost ≤ τ × best optimizer's cost)", fontsize=8)
        ax.set_ylabel("share of problems ρ(τ)", fontsize=8)
        ax.set_title(f"{titles[name]} ({len(best)} problems)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def omega_grid(frame: pd.DataFrame, task: str, path: Path) -> Path | None:
    """Heat-map of mean ω1 over (β1, β2) on ``task`` with the paper's diagonal test in the title — the
    table, the test and the picture of ``gsibench grid`` (:mod:`gsibench.reproductions.grid`,
    :func:`gsibench.reproductions.plots.omega_heatmap`)
    applied to the grid runs found in MLflow."""
    from gsibench.reproductions.grid import diagonal_test, grid_table
    from gsibench.reproductions.plots import omega_heatmap

    mine = frame[frame["task"] == task]
    table = grid_table(mine)
    if table.empty:
        return None
    test = diagonal_test(mine)
    title = f"ω1 on {task} (mean over seeds)"
    if not test.empty:
        row = test.iloc[0]
        title += f"; diagonal minimal in {row['successes']}/{row['trials']} (binomial p = {row['p_value']:.3g})"
    path.parent.mkdir(parents=True, exist_ok=True)
    return omega_heatmap(table, path, title=title)
