"""``README.md`` of the generated leaderboard: the overall table, one table per task, how to read them."""

from __future__ import annotations

import math

import pandas as pd

from gsibench.leaderboard.data import BatteryRuns
from gsibench.leaderboard.tables import fmt, fmt_rank

HOW_TO_READ = (
    "Every number is the mean over seeds ± the half-width of its 95% Student-t interval. Each optimizer "
    "ran at the learning rate its own sweep chose on that task (column *lr*; clean runs, seed 1000, 5 "
    "points over default × 10^[−1, 1], extended outward while the best is at an end), so no optimizer is "
    "judged at another's learning rate. A rank "
    "(in parentheses) compares optimizers within one task and perturbation: on perturbed columns by the "
    "update sensitivity — the mean |log(‖R_k^pert‖/‖R_k^clean‖)| over the perturbed window, 0 for an "
    "exactly scale-invariant optimizer — and on the clean column by the validation score. Rank r means "
    "r − 1 optimizers were better with statistical significance (paired t-test on seed-matched runs, "
    "Benjamini–Hochberg over all pairs of the row, false-discovery rate 0.05); equal ranks are ties, not "
    "equal numbers. *Robustness* is "
    "exp(−mean sensitivity over all perturbed rows): 1 is exact scale invariance, 0.5 means the "
    "perturbations moved ‖R_k‖ by 2× on geometric average. A diverged run counts as the worst value of "
    "its row in ranks and robustness. *Mean rank* averages the ranks of all ranked rows (clean and "
    "perturbed); the oracle has no validation score, so only its perturbed rows are ranked. Low "
    "sensitivity is not high quality: sign-based methods are invariant by construction — read robustness "
    "together with the validation columns."
)


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def overall_cells(data: BatteryRuns, overall: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the overall table (shared by the Markdown and HTML pages)."""
    scored = [(task, score) for task, score in data.scores.items() if score is not None]
    header = ["optimizer", "mean rank", "rank clean", "rank perturbed", "robustness [95% CI]", "diverged"]
    header += [f"{task} {score.name} {arrow(score.higher_is_better)}" for task, score in scored]
    rows = []
    for row in overall.to_dict("records"):
        cells = [row["optimizer"], fmt_rank(row["mean_rank"]), fmt_rank(row["rank_clean"]),
                 fmt_rank(row["rank_perturbed"]),
                 "—" if not math.isfinite(row["robustness"]) else
                 f"{row['robustness']:.3f} [{row['robustness_low']:.3f}, {row['robustness_high']:.3f}]",
                 f"{100 * row['diverged_frac']:.0f}%"]
        cells += [fmt(row[f"val:{task}"], row[f"val_ci:{task}"]) for task, _ in scored]
        rows.append(cells)
    return header, rows


def overall_markdown(data: BatteryRuns, overall: pd.DataFrame) -> str:
    return md_table(*overall_cells(data, overall))


def task_markdown(data: BatteryRuns, cells: pd.DataFrame, task: str) -> str:
    """Rows = optimizers; columns = lr, the clean score and ω1, then sensitivity (rank) per perturbation."""
    score = data.scores.get(task)
    perturbations = [p for p in data.perturbations(task) if p != "none"]
    header = ["optimizer", "lr"]
    header += [f"{score.name} {arrow(score.higher_is_better)} (clean)"] if score else []
    header += ["ω1 (clean)"] + [f"sensitivity: {p}" for p in perturbations]
    header += ["val drop (mean)"] if score else []
    header += ["diverged"]
    rows = []
    mine = cells[cells["task"] == task]
    for optimizer in data.optimizers:
        own = mine[mine["optimizer"] == optimizer].set_index("perturbation")
        if own.empty:
            continue
        clean = own.loc["none"] if "none" in own.index else None
        row = [optimizer, "—" if clean is None or not math.isfinite(clean["lr"]) else f"{clean['lr']:.3g}"]
        if score:
            row.append("—" if clean is None else f"{fmt(clean['val_score'], clean['val_score_ci'])} "
                                                 f"({fmt_rank(clean['rank'])})")
        row.append("—" if clean is None else fmt(clean["omega1"], clean["omega1_ci"]))
        for perturbation in perturbations:
            if perturbation in own.index:
                cell = own.loc[perturbation]
                row.append(f"{fmt(cell['sensitivity'], cell['sensitivity_ci'])} ({fmt_rank(cell['rank'])})")
            else:
                row.append("—")
        if score:
            drops = own.loc[[p for p in perturbations if p in own.index], "val_drop"]
            row.append(fmt(float(drops.mean())) if len(drops) else "—")
        row.append(f"{100 * own['diverged_frac'].mean():.0f}%")
        rows.append(row)
    return md_table(header, rows)


def readme(data: BatteryRuns, cells: pd.DataFrame, overall: pd.DataFrame, commands: list[str],
           provenance: dict[str, str]) -> str:
    seeds = sorted(int(s) for s in data.runs["seed"].unique())
    parts = [
        "# gsibench leaderboard",
        "",
        f"Generated from the MLflow experiment `{data.experiment}` ({len(data.runs)} runs: "
        f"{len(data.optimizers)} optimizers × {len(data.tasks)} tasks × "
        f"{len(data.perturbations())} perturbations incl. clean × seeds {', '.join(map(str, seeds))}). "
        + ", ".join(f"{k} {v}" for k, v in provenance.items()) + ".",
        "",
        "Regenerate (the lr sweep and finished cells are reused from MLflow):",
        "",
        "```sh",
        *commands,
        "```",
        "",
        "Files: `leaderboard.csv` (every row below, with every metric and its 95% half-width), `index.html` "
        "(tables and plots, self-contained), `plots/`, `baseline.json` (the `gsibench check` baseline of adam).",
        "",
        "## Overall",
        "",
        overall_markdown(data, overall),
        "",
        "## How to read these tables",
        "",
        HOW_TO_READ,
        "",
    ]
    if data.superseded or not data.failed.empty:
        parts += [f"Superseded runs ignored: {data.superseded}; failed cells (no result): {len(data.failed)}.", ""]
    parts += ["## Per task", ""]
    for task in data.tasks:
        score = data.scores.get(task)
        steps = data.runs.loc[data.runs["task"] == task, "steps"].dropna().unique()
        subtitle = f"{score.name} {arrow(score.higher_is_better)}" if score else "no validation score"
        parts += [f"### {task} ({subtitle}; {', '.join(str(int(s)) for s in steps)} steps)", "",
                  task_markdown(data, cells, task), ""]
    return "\n".join(parts)
