"""``README.md`` of the generated leaderboard, and the pieces of text and tables the HTML page shares."""

from __future__ import annotations

import math

import pandas as pd

from gsibench.battery.perturbations import KINDS
from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.core.errors import UsageError
from gsibench.leaderboard.data import BatteryRuns
from gsibench.leaderboard.scoring import COLLAPSE
from gsibench.leaderboard.tables import fmt, fmt_rank

Table = tuple[list[str], list[list[str]]]


def how_to_read(data: BatteryRuns) -> str:
    return (
        "Two questions, two axes. *Quality*: how good is an optimizer tuned fairly — its clean validation "
        "score, normalised per task so that 0 is the trivial baseline (the score at initialisation: chance "
        f"accuracy, the initial loss) and 1 is the reference optimizer `{data.reference}` with its own tuned "
        "lr. *Robust quality* (the sort order): the same normalised score under the gradient-scale "
        "perturbations — what you keep when the scale shifts. The fixed points come from the reference's "
        "runs alone, so adding or removing an entry never changes another entry's numbers. A run that "
        f"diverged, or collapsed (normalised score below {COLLAPSE:g}), scores 0, and on its row the entry "
        "ranks below every entry without such a seed (marked †n: n seeds failed). Every number is a mean "
        "over seeds ± the half-width of its 95% Student-t interval. Rank r means r − 1 entries are ahead: "
        "a failure-free entry is ahead of one with failures; otherwise an entry is ahead only when a "
        "paired t-test on seed-matched runs says so (Benjamini–Hochberg over the row's pairs, false-"
        "discovery rate 0.05). `=` marks a tie: the statistics cannot separate those entries. Each entry "
        "ran at the lr its own sweep chose on that task (clean runs, seed 1000). The *mechanism* columns — "
        "update sensitivity (mean |log(‖R_k^pert‖/‖R_k^clean‖)|, all parameters and the hidden matrices "
        "alone, since for Muon and Scion the global ‖R_k‖ is dominated by the AdamW/bias groups), ω1 and "
        "trajectory divergence — explain the outcome and never enter a rank: sign methods ignore the "
        "gradient scale by construction and get zero sensitivity for free."
    )


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def label(perturbation: str) -> str:
    """A perturbation spec for a column head: the fields its kind's example shows and any that differ from
    the kind's defaults, numbers without a trailing ``.0`` (``noise:sigma=0.5``, ``step:at=0.5,factor=10``)."""
    if perturbation == "none":
        return "clean"
    try:
        parsed = parse_perturbation(perturbation)
    except UsageError:
        return perturbation
    kind = KINDS[parsed.kind]
    shown = {item.partition("=")[0] for item in kind.example.partition(":")[2].split(",") if item}
    parts = [f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
             for key, value in parsed.fields
             if value is not None and (key in shown or value != kind.defaults.get(key))]
    parts += [f"role={parsed.role}"] if parsed.role else []
    parts += [f"order={parsed.order}"] if parsed.order != "pre-clip" else []
    return parsed.kind + (":" + ",".join(parts) if parts else "")


def _outcome(row: pd.Series | dict) -> str:
    failed = int(row["diverged_seeds"]) + int(row["collapsed_seeds"])
    text = f"{fmt(row['quality'], row['quality_ci'], n=int(row['seeds']))} ({fmt_rank(row['rank'], row['tie'])})"
    return text + (f" †{failed}" if failed else "")


def overall_cells(data: BatteryRuns, overall: pd.DataFrame) -> Table:
    """Header and rows of the overall table (shared by the Markdown and HTML pages)."""
    header = ["optimizer", "robust quality [rank]", "quality [rank]", "rows with failures",
              "update sensitivity", "sensitivity (hidden)", "trajectory divergence"]
    rows = []
    for row in overall.to_dict("records"):
        n = int(row["seeds"]) if math.isfinite(row["seeds"]) else None
        robust = fmt(row["robust_quality"], row["robust_quality_ci"], n=n)
        clean = fmt(row["quality"], row["quality_ci"], n=n)
        rows.append([
            row["optimizer"], f"{robust} [{fmt_rank(row['robust_rank'], row['robust_tie'])}]",
            f"{clean} [{fmt_rank(row['quality_rank'], row['quality_tie'])}]",
            f"{row['rows_with_failures']} of {row['rows']}",
            fmt(row["sensitivity"]), fmt(row["sensitivity.hidden"]), fmt(row["divergence"]),
        ])
    return header, rows


def entries(data: BatteryRuns, cells: pd.DataFrame, task: str):
    """(optimizer, its rows of ``task`` by perturbation, its clean row or ``None``), in display order."""
    mine = cells[cells["task"] == task]
    for optimizer in data.optimizers:
        own = mine[mine["optimizer"] == optimizer].set_index("perturbation")
        if not own.empty:
            yield optimizer, own, own.loc["none"] if "none" in own.index else None


def outcome_cells(data: BatteryRuns, cells: pd.DataFrame, task: str) -> Table:
    """Per task: the tuned lr, the clean score, and the normalised score with its rank per perturbation."""
    score = data.scores.get(task)
    perturbations = data.perturbations(task)
    header = ["optimizer", "lr", f"{score.name} {arrow(score.higher_is_better)} (clean, raw)"]
    header += [f"{label(p)}" for p in perturbations]
    rows = []
    for optimizer, own, clean in entries(data, cells, task):
        row = [optimizer, "—" if clean is None or not math.isfinite(clean["lr"]) else f"{clean['lr']:.3g}",
               "—" if clean is None else fmt(clean["val_score"], clean["val_score_ci"], n=int(clean["seeds"]))]
        row += [_outcome(own.loc[p]) if p in own.index else "—" for p in perturbations]
        rows.append(row)
    return header, rows


def mechanism_cells(data: BatteryRuns, cells: pd.DataFrame, task: str) -> Table:
    """Per task: ω1 of the clean run, the update sensitivity per perturbation, and the clip's activity."""
    perturbations = [p for p in data.perturbations(task) if p != "none"]
    mine = cells[cells["task"] == task]
    clipped = mine["clip_frac"].notna().any() if "clip_frac" in mine else False
    header = ["optimizer", "ω1 (clean)"] + [label(p) for p in perturbations]
    header += ["clip active (clean)"] if clipped else []
    rows = []
    for optimizer, own, clean in entries(data, cells, task):
        row = [optimizer, "—" if clean is None else fmt(clean["omega1"], clean["omega1_ci"])]
        row += [fmt(own.loc[p, "sensitivity"], own.loc[p, "sensitivity_ci"]) if p in own.index else "—"
                for p in perturbations]
        if clipped:
            row.append("—" if clean is None or not math.isfinite(clean["clip_frac"]) else
                       f"{100 * clean['clip_frac']:.0f}% of steps")
        rows.append(row)
    return header, rows


def links_cells(links: pd.DataFrame) -> Table:
    header = ["mechanism metric", "outcome", "Spearman ρ [95% CI]", "cells"]
    rows = [[row["metric"], row["outcome"],
             "—" if not math.isfinite(row["spearman"]) else
             f"{row['spearman']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]", str(row["n"])]
            for row in links.to_dict("records")]
    return header, rows


def scale_cells(data: BatteryRuns) -> Table:
    header = ["task", "score", "trivial baseline s₀ (score at init)", f"reference s_ref ({data.reference}, clean)",
              "reference runs"]
    rows = [[task, f"{data.scores[task].name} {arrow(data.scores[task].higher_is_better)}", f"{n.trivial:.4g}",
             f"{n.reference:.4g}", str(n.runs)] for task, n in data.normalisers.items()]
    return header, rows


def worked_example(data: BatteryRuns, cells: pd.DataFrame) -> str:
    """One row of the board recomputed by hand (the reference's first perturbed row of the first scored task)."""
    for task, scale in data.normalisers.items():
        rows = cells[(cells["task"] == task) & (cells["optimizer"] == data.reference)
                     & (cells["perturbation"] != "none")]
        if rows.empty:
            continue
        row = rows.iloc[0]
        score = data.scores[task]
        q = scale(row["val_score"])
        return (f"Worked example — `{data.reference}` on {task} under `{label(row['perturbation'])}`: mean "
                f"{score.name} {row['val_score']:.4g}; with s₀ = {scale.trivial:.4g} and s_ref = "
                f"{scale.reference:.4g}, q = ({row['val_score']:.4g} − {scale.trivial:.4g}) / "
                f"({scale.reference:.4g} − {scale.trivial:.4g}) = {q:.3f} (the table shows the mean of the "
                f"per-seed q: {fmt(row['quality'], row['quality_ci'])}, rank {fmt_rank(row['rank'], row['tie'])}).")
    return ""


def findings(data: BatteryRuns, cells: pd.DataFrame) -> list[str]:
    """Sentences the numbers support: what a gradient clip does to the battery, and the matched β pair."""
    out = []
    for task in data.tasks:
        mine = cells[cells["task"] == task]
        post = mine[mine["perturbation"].str.contains("order=post-clip")]
        if post.empty or "clip_frac" not in mine:
            continue
        pre = mine[mine["perturbation"].isin(post["perturbation"].str.replace(",order=post-clip", "", regex=False))]
        active = mine.loc[mine["perturbation"] == "none", "clip_frac"].dropna()
        out.append(
            f"**{task} clips its gradients**, and the clip was active on {100 * active.mean():.0f}% of the clean "
            f"runs' steps (mean over optimizers). Rescaled before the clip (pre-clip, what a real bug does), "
            f"the median update sensitivity over the optimizers is {pre['sensitivity'].median():.3g}; rescaled "
            f"after it (post-clip, what the optimizer alone sees) {post['sensitivity'].median():.3g}; the mean "
            f"normalised score is {pre['quality'].mean():.3f} pre-clip and {post['quality'].mean():.3f} post-"
            "clip. Pre-clip rows say what the training recipe does; post-clip rows what the optimizer does.")
    pairs = [("adam[beta1=0.95,beta2=0.999]", "adam-balanced")]
    overall = cells[cells["perturbation"] != "none"]
    for unequal, balanced in pairs:
        a, b = overall[overall["optimizer"] == unequal], overall[overall["optimizer"] == balanced]
        if a.empty or b.empty:
            continue
        out.append(
            f"**β2 = β1 in isolation**: `{balanced}` (β1 = β2 = 0.95) against `{unequal}` (same β1, β2 = 0.999): "
            f"mean update sensitivity over the perturbed rows {b['sensitivity'].mean():.3g} against "
            f"{a['sensitivity'].mean():.3g}; mean normalised score under the perturbations "
            f"{b['quality'].mean():.3f} against {a['quality'].mean():.3f}.")
    return out


def seeds_line(data: BatteryRuns, common: list[int]) -> str:
    per_task = {task: sorted(map(int, rows["seed"].unique())) for task, rows in data.runs.groupby("task", sort=False)}
    text = "; ".join(f"{task}: {len(seeds)} seeds" for task, seeds in per_task.items())
    return (f"Seeds per task — {text}. The overall columns average over seeds {', '.join(map(str, common))}, "
            "the ones every scored task ran, so that every optimizer is compared seed by seed.") if common else text


def readme(data: BatteryRuns, cells: pd.DataFrame, overall: pd.DataFrame, links: pd.DataFrame,
           commands: list[str], provenance: dict[str, str], files: list[str], common: list[int]) -> str:
    parts = [
        "# gsibench leaderboard", "",
        f"Generated from the MLflow experiment `{data.experiment}` ({len(data.runs)} runs: "
        f"{len(data.optimizers)} optimizers × {len(data.tasks)} tasks × {len(data.perturbations())} "
        "perturbations incl. clean). " + ", ".join(f"{k} {v}" for k, v in provenance.items()) + ".", "",
        "Regenerate (the lr sweep and finished cells are reused from MLflow):", "", "```sh", *commands, "```", "",
        "Files: " + ", ".join(files) + ".", "",
        "## Overall (sorted by robust quality)", "", md_table(*overall_cells(data, overall)), "",
        seeds_line(data, common), "",
        "## How to read it", "", how_to_read(data), "",
        md_table(*scale_cells(data)), "", worked_example(data, cells), "",
    ]
    found = findings(data, cells)
    if found:
        parts += ["## Findings", "", *[f"- {line}" for line in found], ""]
    if not links.empty:
        parts += ["## What the robustness numbers predict", "",
                  "Spearman's ρ between a mechanism metric and the quality drop (clean minus perturbed normalised "
                  "score) across the perturbed cells; the pooled row ranks within each task first. 95% "
                  "percentile-bootstrap intervals over cells (`metric_links.csv`).", "",
                  md_table(*links_cells(links)), ""]
    if data.superseded or not data.failed.empty:
        parts += [f"Superseded runs ignored: {data.superseded}; failed cells (no result): {len(data.failed)}.", ""]
    parts += ["## Per task", ""]
    for task in data.tasks:
        score = data.scores.get(task)
        steps = data.runs.loc[data.runs["task"] == task, "steps"].dropna().unique()
        seeds = data.runs.loc[data.runs["task"] == task, "seed"].nunique()
        subtitle = f"{score.name} {arrow(score.higher_is_better)}" if score else "no validation score"
        parts += [f"### {task} ({subtitle}; {', '.join(str(int(s)) for s in steps)} steps; {seeds} seeds)", ""]
        if task in data.normalisers:
            parts += ["Outcome: normalised score (rank) per perturbation; †n = n seeds diverged or collapsed.", "",
                      md_table(*outcome_cells(data, cells, task)), ""]
        parts += ["Mechanism: update sensitivity per perturbation.", "", md_table(*mechanism_cells(data, cells, task)),
                  ""]
    return "\n".join(parts)
