"""``gsibench leaderboard``: the leaderboard of one experiment, from MLflow only."""

from __future__ import annotations

import argparse

from gsibench.cli.options import add_tracking_options
from gsibench.leaderboard import DEFAULT_EXPERIMENT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="write the leaderboard (Markdown, CSV, HTML, plots) from MLflow",
        description="Read a battery's runs from MLflow (never re-running anything) and write README.md, "
                    "leaderboard.csv, index.html and plots/ to --out.")
    add_tracking_options(parser, experiment=DEFAULT_EXPERIMENT)
    parser.add_argument("--out", default="leaderboard", help="output folder (default: leaderboard/)")
    parser.add_argument("--reference", default="adam", help="optimizer whose tuned clean runs fix each task's "
                        "normalised score at 1 (default adam; it must be in the experiment)")
    parser.add_argument("--grid-experiment", action="append", metavar="NAME",
                        help="experiment with β-grid runs for the ω heat-map (repeatable; default: the "
                             "battery's own and every experiment whose name starts with 'grid')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gsibench.cli.tables import report_console
    from gsibench.leaderboard.build import build

    console = report_console()
    written = build(args.tracking_uri, args.experiment, Path(args.out), args.grid_experiment, args.reference)
    print_overall(written.data, written.overall, console)
    console.print(f"wrote {written.out}/README.md, leaderboard.csv ({len(written.cells)} rows), index.html and "
                  f"{len(written.figures)} plots in {written.seconds:.1f} s")
    return 0


def print_overall(data, overall, console) -> None:
    from rich.table import Table

    from gsibench.cli.tables import escape
    from gsibench.leaderboard.markdown import overall_cells

    header, rows = overall_cells(data, overall)
    table = Table(title=f"gsibench leaderboard — experiment '{data.experiment}' (sorted by robust quality)")
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
