"""``gsibench grid``: the (β1, β2) grid of arXiv 2601.21739 (:mod:`gsibench.reproductions.grid`)."""

from __future__ import annotations

import argparse
import math

from gsibench.cli.options import add_reproduction_options
from gsibench.reproductions.defaults import (
    FINE_POINTS,
    GRID_BETAS,
    GRID_MEMORIES,
    GRID_PROTOCOL,
    GRID_PROTOCOLS,
    GRID_SEEDS,
    GRID_TASK,
    PAPER_GRIDS,
)

TEST_TITLES = {
    "row_minimum": "the diagonal has the row's smallest ω1 (the paper's test)",
    "local_dip": "the diagonal's ω1 ≤ its immediate β2 neighbours' with β2 ≥ β1²",
    "smoothest_is_best": "the row's smallest-ω1 cell has the row's best validation score",
    "diagonal_is_best": "the diagonal has the row's best validation score",
}


def add_parser(subparsers) -> None:
    grids = ", ".join(f"{name} = {betas}" for name, betas in PAPER_GRIDS.items())
    parser = subparsers.add_parser(
        "grid", help="the (beta1, beta2) grid of arXiv 2601.21739: omega1 table, diagonal and local-dip tests",
        description="Train adam[beta1=..,beta2=..] on every cell of a beta grid (clean runs), then print "
                    "the omega1 table, four binomial tests per (beta1 row, seed) and the best cell; writes "
                    "grid.csv, grid_test.csv, grid_dip.csv, grid_settings.csv and a heat-map per task. "
                    "Finished cells are skipped on a re-run.")
    parser.add_argument("--task", default=GRID_TASK,
                        help=f"task spec, or a comma list (digits-mlp,digits-cnn,char-gpt); default {GRID_TASK}")
    parser.add_argument("--betas", default=GRID_BETAS,
                        help=f"beta values of rows and columns, or one of the paper's grids ({grids}); "
                             f"default {GRID_BETAS}")
    parser.add_argument("--fine", action="store_true",
                        help=f"per beta1 of --betas, scan {FINE_POINTS} values of beta2 with 1 - beta2 log-spaced "
                             "(factor sqrt 2) around 1 - beta1, instead of the square grid")
    parser.add_argument("--protocol", choices=GRID_PROTOCOLS, default=GRID_PROTOCOL,
                        help="quick (default: each task's schedule and init, no weight decay, omega window "
                             "T/20 after T/10) or paper (sinusoidal init, warm-up 20%% then cosine, weight decay, "
                             "omega window 200 after the first 5%% of the steps)")
    parser.add_argument("--seeds", default=GRID_SEEDS, help="number of seeds (3 -> 0,1,2) or a comma list")
    parser.add_argument("--steps", type=int,
                        help=f"training steps (default: the task's own, but at least {GRID_MEMORIES}/(1 - max beta2))")
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's, 1e-3 for adam)")
    parser.add_argument("--optimizer", default="adam", help="adam (default) or adamw, hyperparameters "
                        "allowed except the betas, e.g. adam[eps=1e-10]")
    parser.add_argument("--schedule", help="quick protocol: lr schedule, constant or warmup-cosine "
                        "(default: the task's)")
    parser.add_argument("--init", help="quick protocol: initialization for tasks that take it, default or "
                        "sinusoidal")
    add_reproduction_options(parser, "grid")
    parser.set_defaults(func=run)


def betas_from_args(text: str) -> list[float]:
    """A paper grid's name or a comma list of betas in [0, 1)."""
    from gsibench.cli.options import parse_floats

    return parse_floats(PAPER_GRIDS.get(text.strip(), text), "--betas", 0.0, 1.0)


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store

    check_store(args)

    from pathlib import Path

    from rich.markup import escape

    from gsibench.battery.spec import parse_seeds
    from gsibench.cli.options import executor_from_args
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.cli.tables import frame_table, report_console
    from gsibench.core.errors import UsageError
    from gsibench.core.specs import split_list
    from gsibench.reproductions.grid_design import PROTOCOLS, fine_pairs, square_pairs
    from gsibench.reproductions.grid_run import run_grid
    from gsibench.tracking.store import Tracker

    console, progress = report_console(), ConsoleProgress()
    protocol = PROTOCOLS[args.protocol]
    if protocol.name != "quick" and (args.schedule or args.init):
        raise UsageError(f"--schedule and --init belong to the quick protocol; --protocol {protocol.name} "
                         f"fixes them ({protocol.schedule}, {protocol.init})")
    betas = betas_from_args(args.betas)
    pairs = fine_pairs(betas) if args.fine else square_pairs(betas)
    tasks = list(split_list(args.task))
    seeds = parse_seeds(args.seeds)
    tracker = Tracker(args.tracking_uri, args.experiment)
    executor = executor_from_args(args, progress=progress)
    done = run_grid(tasks, pairs, seeds, tracker, executor, Path(args.out), protocol=protocol,
                    optimizer=args.optimizer, lr=args.lr, steps=args.steps, schedule=args.schedule, init=args.init,
                    device=args.device, progress=progress)
    console.print(frame_table(done.settings, f"{protocol.name} protocol: what each task ran"))
    for task, cells in done.table.groupby("task", sort=False):
        if args.fine:
            console.print(frame_table(cells.drop(columns="task"), f"{escape(task)}, {protocol.name} protocol, fine "
                                      "scan: ω1 (mean over non-diverged seeds), scale-free ω1, validation score"))
            continue
        console.print(grid_matrix(cells, betas, task, protocol.name))
        console.print(grid_matrix(cells, betas, task, protocol.name, "omega1_scaled",
                                  "scale-free ω1 = ω1 / mean ‖R_k‖"))
        console.print(grid_matrix(cells, betas, task, protocol.name, "val_score", "validation score"))
    console.print(frame_table(done.tests.assign(test=done.tests["test"].map(lambda t: f"{t}: {TEST_TITLES[t]}")),
                              f"tests over (β1 row, seed) trials, {protocol.name} protocol (p: exact one-sided "
                              "P(X ≥ successes); expected: successes expected by chance)",
                              formatters={"p_value": lambda v: f"{v:.3g}", "expected": lambda v: f"{v:.2f}"}))
    if not done.excluded.empty:
        cells = ", ".join(f"({b1:g}, {b2:g})" for b1, b2 in zip(done.excluded["beta1"], done.excluded["beta2"]))
        console.print(f"local dip test: {len(done.excluded)} neighbour cell(s) with β2 < β1² left out: {cells}")
    if not done.best.empty:
        names = ", ".join(f"{spec}: {score.name} {'↑' if score.higher_is_better else '↓'}"
                          for spec, score in done.scores.items() if score)
        console.print(frame_table(done.best, f"best cell by validation score ({escape(names)})"))
    for cell in done.failed:
        progress.note(f"failed {cell.label()} (traceback in the run's artifacts)")
    progress.note(f"{done.runs} runs ({done.ran} now, {done.already_done} already in MLflow, {done.diverged} "
                  f"diverged) in {done.seconds:.0f} s; wrote {args.out}/grid.csv, grid_test.csv, grid_dip.csv, "
                  f"grid_settings.csv and heat-maps. MLflow: {tracker.uri} (experiment '{tracker.experiment_name}')")
    return 1 if done.failed else 0


def grid_matrix(cells, betas, task: str, protocol: str, column: str = "omega1", name: str = "ω1"):
    """A value over the square grid as the paper prints it: rows β1, columns β2; ω1 as ``mean ± std``,
    diverged cells marked, the diagonal in bold."""
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{name} on {escape(task)}, {protocol} protocol: rows β1, columns β2 (mean over non-diverged "
                        "seeds; † = some seeds diverged)")
    table.add_column("β1 \\ β2")
    for beta2 in betas:
        table.add_column(f"{beta2:g}", justify="right")
    for beta1 in betas:
        row = [f"{beta1:g}"]
        for beta2 in betas:
            match = cells[np.isclose(cells["beta1"], beta1) & np.isclose(cells["beta2"], beta2)]
            if match.empty:
                row.append("")
                continue
            cell = match.iloc[0]
            if math.isnan(cell[column]):
                text = "diverged" if cell["diverged_frac"] == 1 else "—"
            else:
                text = f"{cell[column]:.4g}"
            if column == "omega1" and not math.isnan(cell["omega1_std"]):
                text += f" ± {cell['omega1_std']:.2g}"
            if cell["diverged_frac"] > 0 and not math.isnan(cell[column]):
                text += f" † {cell['diverged_frac']:.0%}"
            row.append(f"[bold]{text}[/]" if np.isclose(beta1, beta2) else text)
        table.add_row(*row)
    return table
