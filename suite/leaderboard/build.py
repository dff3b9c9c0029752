"""The leaderboard of one experiment: MLflow -> ``leaderboard.csv``, ``README.md``, ``index.html``, ``plots/``."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gsibench.leaderboard import DEFAULT_EXPERIMENT

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


def commands(uri: str | None, experiment: str, out: str, grid: pd.DataFrame | None = None) -> list[str]:
    """The exact commands that regenerate this leaderboard (with ``gsibench grid`` when grid runs are in it)."""
    store = f" --tracking-uri {uri}" if uri else ""
    battery = ("gsibench run" if experiment == DEFAULT_EXPERIMENT
               else f"gsibench run BATTERY.toml --experiment {experiment}")
    lines = [f"{battery}{store}        # lr sweep, then the battery (finished cells are skipped)"]
    if grid is not None and not grid.empty:
        tasks = ",".join(dict.fromkeys(grid["task"]))
        betas = ",".join(f"{b:g}" for b in sorted(grid["opt.beta1"].unique()))
        lines.append(f"gsibench grid{store} --task {tasks} --betas {betas} --seeds {grid['seed'].nunique()}"
                     "        # β-grid runs for the ω heat-map")
    return lines + [f"gsibench leaderboard{store} --experiment {experiment} --out {out}",
                    f"gsibench baseline --optimizer adam --out {out}/baseline.json   # for gsibench check"]


def provenance(runs: pd.DataFrame) -> dict[str, str]:
    def values(column: str) -> str:
        return ", ".join(sorted(map(str, runs[column].dropna().unique()))) if column in runs else "?"

    return {"gsibench": values("gsibench_version"), "torch": values("torch_version"),
            "git commit": values("git_commit")[:40], "python (leaderboard)": platform.python_version(),
            "generated": time.strftime("%Y-%m-%d")}


def build(uri: str | None, experiment: str, out: Path, grid_experiments: list[str] | None = None) -> Written:
    """Read ``experiment`` from MLflow and write the leaderboard to ``out``; a store that is not there
    (or does not answer) is a UsageError before anything heavy is imported, and is never created."""
    from gsibench.tracking.preflight import check_readable, default_uri

    start = time.perf_counter()
    store = uri or default_uri()
    check_readable(store, given=bool(uri or os.environ.get("MLFLOW_TRACKING_URI")))

    from gsibench.leaderboard import html, markdown, plots
    from gsibench.leaderboard.data import load
    from gsibench.leaderboard.tables import cell_table, overall_table

    data = load(store, experiment, grid_experiments)
    overall = overall_table(data, cell_table(data))
    data.order = list(overall["optimizer"])  # every table and plot lists optimizers by overall rank
    cells = cell_table(data)
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / "plots"
    cells.to_csv(out / "leaderboard.csv", index=False, float_format="%.6g")

    optimizers = list(overall["optimizer"])
    figures: list[tuple[str, Path | None, str]] = [
        ("Performance profiles (AlgoPerf style)", plots.performance_profile(data, cells, optimizers,
                                                                            plot_dir / "performance_profile.png"),
         "Dolan–Moré profiles: the share of problems on which an optimizer is within τ× of the best one. "
         "Left: robustness, cost = update sensitivity (floored at 1e-3) on every perturbed (task, "
         "perturbation). Right: quality, cost = clean validation error (1 − accuracy) or suboptimality/loss. "
         "Higher and further left is better; a curve that never reaches 1 lost (or diverged) somewhere."),
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
    cmds = commands(uri, experiment, str(out), data.grid)
    info = provenance(data.runs)
    (out / "README.md").write_text(markdown.readme(data, cells, overall, cmds, info), encoding="utf-8")
    (out / "index.html").write_text(html.page(data, cells, overall, drawn, cmds, info), encoding="utf-8")
    return Written(out, data, cells, overall, [p for _, p, _ in drawn], time.perf_counter() - start)
