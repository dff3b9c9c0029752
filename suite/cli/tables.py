"""Printing results for people: rich tables on a terminal, wide plain tables in a log.

Every cell goes through :func:`escape`: specs such as ``adam[beta1=0.95]`` would otherwise be read as
rich markup and lose their brackets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def report_console():
    """Standard output for result tables; 220 columns when it is not a terminal (a log file), so that
    values are never cut to fit 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=220)


def fmt(value: object, digits: int = 4) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def frame_table(frame, title: str, columns: Sequence[str] | None = None,
                formatters: dict[str, Callable[[object], str]] | None = None):
    """A rich table of a DataFrame (numbers right-aligned, 4 significant digits), never truncating cells."""
    import pandas as pd
    from rich.table import Table

    columns = list(columns or frame.columns)
    formatters = formatters or {}
    table = Table(title=title)
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) if column in frame else False
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*(escape(formatters.get(c, fmt)(row[c])) for c in columns))
    return table


def print_summary(table, console) -> None:
    """The end-of-battery table (:func:`gsibench.tracking.runs.summarize`)."""
    from rich.table import Table

    if table.empty:
        console.print("no results")
        return
    columns = ["optimizer", "task", "perturbation", "omega1", "sensitivity", "val_score", "seeds", "status"]
    text_columns = ("optimizer", "task", "perturbation", "status")
    rich_table = Table(title="gsibench results (mean over seeds)", show_lines=False)
    for column in columns:
        rich_table.add_column(column, justify="left" if column in text_columns else "right", overflow="fold")
    for _, row in table.iterrows():
        rich_table.add_row(*(escape(fmt(row.get(c, math.nan))) for c in columns))
    console.print(rich_table)


def print_choices(choices, console) -> None:
    """The learning rates the sweep chose (:func:`gsibench.execution.tuning.run_sweep`)."""
    from rich.table import Table

    from gsibench.execution.tuning import TUNE_SEED, choice_note

    table = Table(title=f"learning rates chosen by the sweep (seed {TUNE_SEED}, clean runs)")
    for column in ("optimizer", "task", "default lr", "grid", "chosen lr", "score", "note"):
        table.add_column(column, overflow="fold")
    for choice in choices:
        score = choice.scores.get(choice.lr)
        grid = sorted(choice.scores)
        span = f"{grid[0]:.3g}–{grid[-1]:.3g} ({len(grid)})" if grid else "—"
        table.add_row(escape(choice.optimizer), escape(choice.task), f"{choice.default_lr:.3g}", span,
                      f"{choice.lr:.3g}", "—" if score is None else f"{score:.4g}", choice_note(choice))
    console.print(table)
