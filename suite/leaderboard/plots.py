"""The leaderboard's figures, drawn from MLflow data only (matplotlib, Agg backend, PNG).

* ``traces_<task>.png`` — ‖R_k‖ per optimizer, clean twin against each perturbation (first seed), the
  picture of arXiv 2601.21739 Figs. 1–2 for every optimizer;
* ``sensitivity.png`` — update sensitivity per perturbation, bars per optimizer and task with 95% CIs;
* ``lr_sensitivity.png`` — validation score against learning rate from the tuning sweep (DeepOBS,
  Schmidt et al. 2021, Fig. 5 style): flat curves mean an optimizer forgives a badly chosen lr;
* ``pareto.png`` — quality against robust quality (and against update sensitivity), the frontier marked;
* ``omega_grid_<task>.png`` — ω1 over the (β1, β2) grid with the diagonal test, when grid runs exist.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gsibench.leaderboard.data import BatteryRuns, metric_history

SENSITIVITY_FLOOR = 1e-4
"""Bars and points below this are drawn at it (a log axis cannot show 0)."""


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


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The entries no other entry beats on both axes (higher is better on both), by x."""
    front = [name for name, (x, y) in points.items()
             if not any(ox >= x and oy >= y and (ox > x or oy > y) for other, (ox, oy) in points.items()
                        if other != name)]
    return sorted(front, key=lambda name: points[name][0])


def _cluster(points: dict[str, tuple[float, float]], width: float = 0.1) -> list[str]:
    """The entries within ``width`` of the best on both axes, when they are several and the whole plot spans
    more than three times that (they would sit on each other's labels): drawn again, zoomed."""
    xs, ys = [x for x, _ in points.values()], [y for _, y in points.values()]
    near = [name for name, (x, y) in points.items() if x >= max(xs) - width and y >= max(ys) - width]
    span = max(max(xs) - min(min(xs), 0.0), max(ys) - min(min(ys), 0.0))
    return near if len(near) > 1 and span > 3 * width else []


def _zoom_panel(ax, points: dict[str, tuple[float, float]], colors: dict[str, str], front: list[str]) -> None:
    """The clustered entries with their names in a column beside the axes (ordered as the points are, by
    robust quality), each joined to its point."""
    if len(front) > 1:
        ax.plot([points[n][0] for n in front], [points[n][1] for n in front], "--", color="gray", lw=1)
    ordered = sorted(points, key=lambda name: points[name][1], reverse=True)
    for index, name in enumerate(ordered):
        ax.annotate(name, points[name], xytext=(1.03, 1 - (index + 0.5) / len(ordered)), textcoords="axes fraction",
                    fontsize=7, va="center", color=colors[name],
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": colors[name], "alpha": 0.6})
    ax.set_title("outcome, the leading entries (zoomed)", fontsize=9)
    ax.set_xlabel("quality", fontsize=8)
    ax.set_ylabel("robust quality", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def pareto(overall: pd.DataFrame, path: Path) -> Path | None:
    """Quality (x) against robust quality (left) and against mean update sensitivity (right), one point per
    optimizer with its 95% intervals, the Pareto frontier of the left panel drawn: "invariant but weak"
    sits low on the right and left of the frontier, "strong but fragile" right and low on the left."""
    plt = _pyplot()
    rows = overall[np.isfinite(overall["quality"].to_numpy(float))
                   & np.isfinite(overall["robust_quality"].to_numpy(float))]
    if rows.empty:
        return None
    colors = _colors(list(rows["optimizer"]))
    points = {r["optimizer"]: (r["quality"], r["robust_quality"]) for r in rows.to_dict("records")}
    front = pareto_front(points)
    near = _cluster(points)
    if near:
        fig, (left, zoom, right) = plt.subplots(1, 3, figsize=(18, 4.6), gridspec_kw={"wspace": 0.7})
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    for r in rows.to_dict("records"):
        name, color = r["optimizer"], colors[r["optimizer"]]
        for ax in (left, zoom) if near and name in near else (left,):
            ax.errorbar(r["quality"], r["robust_quality"], xerr=np.nan_to_num(r["quality_ci"]),
                        yerr=np.nan_to_num(r["robust_quality_ci"]), fmt="o", color=color, ms=6, capsize=2,
                        mec="black" if name in front else color, label=name if ax is left else None)
        if name not in near:
            left.annotate(name, (r["quality"], r["robust_quality"]), fontsize=7, xytext=(4, 4),
                          textcoords="offset points")
        sensitivity = max(r["sensitivity"], SENSITIVITY_FLOOR) if math.isfinite(r["sensitivity"]) else math.nan
        right.errorbar(r["quality"], sensitivity, xerr=np.nan_to_num(r["quality_ci"]), fmt="o", color=color, ms=6,
                       capsize=2)
        right.annotate(name, (r["quality"], sensitivity), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if near:
        _zoom_panel(zoom, {name: points[name] for name in near}, colors, [n for n in front if n in near])
        left.indicate_inset_zoom(zoom, edgecolor="gray")
    if len(front) > 1:
        left.plot([points[n][0] for n in front], [points[n][1] for n in front], "--", color="gray", lw=1,
                  label="Pareto frontier")
    low = min(0.0, float(rows[["quality", "robust_quality"]].min().min()))
    high = max(1.05, float(rows[["quality", "robust_quality"]].max().max()) + 0.05)
    left.plot([low, high], [low, high], ":", color="lightgray", lw=1)  # robust = clean: lost nothing
    left.set_xlabel("quality: clean normalised score (0 = trivial baseline, 1 = reference)", fontsize=8)
    left.set_ylabel("robust quality: normalised score under the perturbations", fontsize=8)
    left.set_title("outcome (frontier: no entry better on both)", fontsize=9)
    right.set_yscale("log")
    right.set_xlabel("quality: clean normalised score", fontsize=8)
    right.set_ylabel(f"mean update sensitivity (mechanism; < {SENSITIVITY_FLOOR:g} drawn at it)", fontsize=8)
    right.set_title("mechanism: sign methods are invariant by construction", fontsize=9)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper left", frameon=False)
    if not near:
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
