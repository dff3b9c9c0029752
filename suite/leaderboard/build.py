"""The leaderboard of one experiment: MLflow -> ``leaderboard.csv``, ``README.md``, ``index.html``, ``plots/``."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gsibench.leaderboard.scoring import REFERENCE

if TYPE_CHECKING:  # pandas loads with the data, after the store has been found (gsibench.tracking.preflight)
    import pandas as pd


@dataclass
class Written:
    out: Path
    data: object
    """The :class:`~gsibench.leaderboard.data.BatteryRuns` the tables came from."""
    cells: pd.DataFrame
    overall: pd.DataFrame
    figures: list[Path]
    seconds: float


def _flag(values) -> str:
    return ",".join(map(str, values))


def commands(uri: str | None, experiment: str, out: str, runs: pd.DataFrame, grid: pd.DataFrame | None = None,
             reference: str = REFERENCE) -> list[str]:
    """The exact commands that rebuild this leaderboard, derived from the runs in MLflow: one ``gsibench
    run`` per group of tasks that share steps, schedule, clipping, seeds and perturbations (with the
    ``--import`` modules the runs logged), the β-grid runs if any, then ``gsibench leaderboard``."""
    store = f" --tracking-uri {uri}" if uri else ""
    groups: dict[tuple, list[str]] = {}
    for task, rows in runs.groupby("task", sort=False):
        perturbations = tuple(p for p in dict.fromkeys(rows["perturbation"]) if p != "none")
        key = (tuple(sorted(rows["optimizer"].unique())), perturbations, tuple(sorted(map(int, rows["seed"].unique()))),
               _single(rows, "steps"), _single(rows, "schedule"), _single(rows, "clip"), _single(rows, "imports"),
               _single(rows, "task.init"))
        groups.setdefault(key, []).append(task)
    lines = []
    for (optimizers, perturbations, seeds, steps, schedule, clip, imports, init), tasks in groups.items():
        parts = [f"gsibench run{store} --experiment {experiment}", f"--optimizers '{_flag(optimizers)}'",
                 f"--tasks '{_flag(tasks)}'", f"--perturbations '{_flag(perturbations) or 'none'}'",
                 f"--seeds {_flag(seeds)}"]
        parts += [f"--steps {int(float(steps))}"] if steps not in ("", "nan") else []
        parts += [f"--schedule {schedule}"] if schedule not in ("", "nan") else []
        parts += [f"--clip {clip}"] if clip not in ("", "nan", "None") else []
        parts += [f"--init {init}"] if init not in ("", "nan", "default") else []
        parts += [f"--import {module}" for module in imports.split(",") if module and imports != "nan"]
        lines.append(" ".join(parts))
    if grid is not None and not grid.empty:
        tasks = ",".join(dict.fromkeys(grid["task"]))
        betas = ",".join(f"{b:g}" for b in sorted(grid["opt.beta1"].unique()))
        steps = _single(grid, "steps")
        steps_flag = f" --steps {int(float(steps))}" if steps not in ("", "nan") and "|" not in steps else ""
        lines.append(f"gsibench grid{store} --task {tasks} --betas {betas} --seeds {grid['seed'].nunique()}"
                     f"{steps_flag}   # β-grid runs for the ω heat-map")
    reference_flag = f" --reference {reference}" if reference != REFERENCE else ""
    return lines + [f"gsibench leaderboard{store} --experiment {experiment}{reference_flag} --out {out}"]


def _single(rows: pd.DataFrame, column: str) -> str:
    """The one value a column takes over ``rows`` ("" when absent; a group splits where it differs)."""
    if column not in rows:
        return ""
    values = rows[column].dropna().astype(str).unique()
    return "|".join(sorted(values))


def provenance(runs: pd.DataFrame) -> dict[str, str]:
    def values(column: str) -> str:
        return ", ".join(sorted(map(str, runs[column].dropna().unique()))) if column in runs else "?"

    return {"gsibench": values("gsibench_version"), "torch": values("torch_version"),
            "git commit": values("git_commit")[:40], "python (leaderboard)": platform.python_version(),
            "generated": time.strftime("%Y-%m-%d")}


def build(uri: str | None, experiment: str, out: Path, grid_experiments: list[str] | None = None,
          reference: str = REFERENCE) -> Written:
    """Read ``experiment`` from MLflow and write the leaderboard to ``out``: ``leaderboard.csv`` (one row
    per cell), ``overall.csv``, ``metric_links.csv``, ``README.md``, ``index.html`` and ``plots/``. A store
    that is not there (or does not answer) is a UsageError before anything heavy is imported, and is never
    created."""
    from gsibench.tracking.preflight import check_readable, default_uri

    start = time.perf_counter()
    store = uri or default_uri()
    check_readable(store, given=bool(uri or os.environ.get("MLFLOW_TRACKING_URI")))

    from gsibench.leaderboard import html, markdown, plots
    from gsibench.leaderboard.data import load
    from gsibench.leaderboard.links import metric_links
    from gsibench.leaderboard.tables import cell_table, common_seeds, overall_table

    data = load(store, experiment, grid_experiments, reference)
    overall = overall_table(data, cell_table(data))
    data.order = list(overall["optimizer"])  # every table and plot lists optimizers by robust quality
    cells = cell_table(data)
    links = metric_links(cells)
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / "plots"
    cells.to_csv(out / "leaderboard.csv", index=False, float_format="%.6g")
    overall.to_csv(out / "overall.csv", index=False, float_format="%.6g")
    links.to_csv(out / "metric_links.csv", index=False, float_format="%.4g")

    optimizers = list(overall["optimizer"])
    figures: list[tuple[str, Path | None, str]] = [
        ("Quality against robust quality (Pareto view)", plots.pareto(overall, plot_dir / "pareto.png"),
         "One point per optimizer with its 95% intervals. Left: clean normalised score (x) against the score "
         "under the perturbations (y); the dashed line joins the entries no other entry beats on both, the "
         "dotted diagonal is 'lost nothing'. Right: the same x against the mean update sensitivity — the "
         "mechanism, on which sign methods score 0 by construction."),
        ("Update sensitivity per perturbation", plots.sensitivity_bars(cells, optimizers, plot_dir / "sensitivity.png"),
         "Mean |log(‖R_k^pert‖/‖R_k^clean‖)| over the perturbed window, mean over seeds with 95% CI; "
         "log scale, values below 1e-4 drawn at 1e-4 (exactly scale-invariant optimizers)."),
        ("Learning-rate sensitivity (tuning sweep)", plots.lr_sensitivity(data, optimizers,
                                                                          plot_dir / "lr_sensitivity.png"),
         "Validation score against learning rate on the sweep's clean runs (one seed); ★ the lr used in the "
         "battery, × diverged. A flat curve forgives a mis-set learning rate (DeepOBS)."),
    ]
    for task in data.tasks:
        figures.append((f"‖R_k‖ traces on {task}", plots.traces(data, task, plot_dir / f"traces_{task}.png"),
                        "Update norm ‖R_k‖ = ‖θ_k − θ_{k+1}‖/η_k (MLflow metric history, thinned), clean twin in "
                        "black against each perturbation, first seed. A scale-invariant optimizer's curves "
                        "coincide; SGD's follow the gradient scale."))
    for task in (list(dict.fromkeys(data.grid["task"])) if not data.grid.empty else []):
        figures.append((f"ω1 over the β grid on {task}", plots.omega_grid(data.grid, task,
                                                                          plot_dir / f"omega_grid_{task}.png"),
                        "Oscillation ω1 of ‖R_k‖ (mean over seeds) for Adam over (β1, β2); the diagonal β1 = β2 "
                        "in bold; the title gives the paper's diagonal binomial test."))
    drawn = [(title, path, caption) for title, path, caption in figures if path is not None]
    cmds = commands(uri, experiment, str(out), data.runs, data.grid, reference)
    info = provenance(data.runs)
    files = ["`leaderboard.csv` (every cell, with every metric and its 95% half-width)", "`overall.csv`",
             "`metric_links.csv`", "`index.html` (tables and plots, self-contained)", "`plots/`"]
    if (out / "baseline.json").exists():
        files.append("`baseline.json` (a `gsibench check` baseline)")
    common = common_seeds(data)
    (out / "README.md").write_text(markdown.readme(data, cells, overall, links, cmds, info, files, common),
                                   encoding="utf-8")
    (out / "index.html").write_text(html.page(data, cells, overall, links, drawn, cmds, info, common),
                                    encoding="utf-8")
    return Written(out, data, cells, overall, [p for _, p, _ in drawn], time.perf_counter() - start)
