"""Plumbing shared by the paper-reproduction commands (``grid``, ``invariance``, ``phase``).

Each command builds cells, runs them through an executor (through the driver, so MLflow records every
run and a re-run resumes), turns the results into pandas tables, prints them with rich and writes
CSVs and plots into an output folder. What is common to the three lives here: the options, the
output folder, running a battery with a progress bar, and printing a table (the executor comes
from :func:`suite.cli.executor_from_args`, as for ``gsibench run``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from suite.errors import UsageError


def add_run_options(parser: argparse.ArgumentParser, command: str) -> None:
    """--tracking-uri/--experiment, --out, --executor/--jobs/--address (as ``gsibench run``: make the
    executor with :func:`suite.cli.executor_from_args`), --device."""
    from suite.cli import add_executor_options, add_tracking_options

    add_tracking_options(parser, experiment=command)
    add_executor_options(parser)
    parser.add_argument("--out", default=str(Path("results") / command),
                        help=f"folder for the CSVs and plots (default results/{command})")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def report_console() -> Console:
    """Standard output for the result tables: 140 columns when it is not a terminal (a log file),
    so that the tables are not squeezed to 80."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def output_folder(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def parse_floats(text: str, name: str, low: float = -math.inf, high: float = math.inf) -> list[float]:
    """``'0.9,0.99'`` -> [0.9, 0.99], each in [low, high); errors name the option and the value."""
    values = []
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"{name}: '{item}' is not a number (expected e.g. 0.9,0.99,0.999)") from None
        if not (low <= value < high) or not math.isfinite(value):
            raise UsageError(f"{name}: {item} is outside [{low}, {high})")
        values.append(value)
    if not values:
        raise UsageError(f"{name}: no values given")
    if len(set(values)) != len(values):
        raise UsageError(f"{name}: values must be distinct, got {text}")
    return values


def run_battery_with_progress(battery, tracker, executor, console: Console, label: str):
    """Run ``battery`` through the driver with a progress bar.

    Returns ``(outcome, fresh)`` where ``fresh`` maps cell key -> :class:`~suite.runner.CellResult`
    for the cells run now (cells finished earlier are only in MLflow; see :func:`full_results`).
    """
    from suite.cli import progress_bar
    from suite.driver import run_battery

    fresh = {}
    with progress_bar(console) as progress:
        bar = progress.add_task(label, total=None, last="")

        def on_plan(total: int, todo: int) -> None:
            progress.update(bar, total=todo)
            if todo < total:
                console.print(f"resuming: {total - todo} of {total} cells already finished in MLflow")

        def on_result(result) -> None:
            fresh[result.cell.key] = result
            state = "failed" if result.status == "failed" else "diverged" if result.diverged else "ok"
            progress.update(bar, advance=1, last=f"{result.cell.label()} → {state}")

        outcome = run_battery(battery, tracker, executor, on_result=on_result, on_plan=on_plan)
    for cell in outcome.failed:
        console.print(f"[red]failed[/] {cell.label()} (traceback in the run's artifacts)")
    return outcome, fresh


def full_results(cells, outcome, tracker, fresh: dict) -> dict:
    """cell key -> CellResult with the full step series: this run's results, else the trace stored in
    MLflow (``Tracker.load_trace``) for cells finished by an earlier run."""
    results = {}
    for cell in cells:
        if cell.key in fresh:
            results[cell.key] = fresh[cell.key]
        elif cell.key in outcome.run_ids:
            results[cell.key] = tracker.load_trace(outcome.run_ids[cell.key], cell)
    return results


def fmt(value: object, digits: int = 4) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def frame_table(frame: pd.DataFrame, title: str, columns: Sequence[str] | None = None,
                formatters: dict[str, Callable[[object], str]] | None = None) -> Table:
    """A rich table of ``frame`` (numbers right-aligned, 4 significant digits)."""
    columns = list(columns or frame.columns)
    formatters = formatters or {}
    table = Table(title=title)
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) if column in frame else False
        table.add_column(column, justify="right" if numeric else "left")
    for _, row in frame.iterrows():
        table.add_row(*(formatters.get(c, fmt)(row[c]) for c in columns))
    return table
