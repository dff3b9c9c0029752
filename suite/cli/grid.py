"""``gsibench grid``: the (β1, β2) grid of arXiv 2601.21739 (:mod:`gsibench.reproductions.grid`)."""

from __future__ import annotations

import argparse
import math

from gsibench.cli.options import add_reproduction_options
from gsibench.reproductions.defaults import GRID_BETAS, GRID_SEEDS, GRID_TASK


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grid", help="the (beta1, beta2) grid of arXiv 2601.21739: omega1 table and diagonal binomial test",
        description="Train adam[beta1=..,beta2=..] on every cell of a beta grid (clean runs), then print "
                    "the omega1 table, the diagonal binomial test and the best cell; writes grid.csv, "
                    "grid_test.csv and a heat-map per task. Finished cells are skipped on a re-run.")
    parser.add_argument("--task", default=GRID_TASK,
                        help=f"task spec, or a comma list (digits-mlp,digits-cnn,char-gpt); default {GRID_TASK}")
    parser.add_argument("--betas", default=GRID_BETAS, help=f"beta values of rows and columns (default {GRID_BETAS})")
    parser.add_argument("--seeds", default=GRID_SEEDS, help="number of seeds (3 -> 0,1,2) or a comma list")
    parser.add_argument("--steps", type=int, help="training steps (default: the task's own)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's, 1e-3 for adam)")
    parser.add_argument("--optimizer", default="adam", help="adam (default) or adamw, hyperparameters "
                        "allowed except the betas, e.g. adam[eps=1e-10]")
    parser.add_argument("--schedule", help="lr schedule: constant or warmup-cosine (default: the task's)")
    parser.add_argument("--init", help="initialization for tasks that take it: default or sinusoidal")
    add_reproduction_options(parser, "grid")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store

    check_store(args)

    from pathlib import Path

    from gsibench.battery.spec import parse_seeds
    from gsibench.cli.options import executor_from_args, parse_floats
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.cli.tables import frame_table, report_console
    from gsibench.core.specs import split_list
    from gsibench.reproductions.grid import run_grid
    from gsibench.tracking.store import Tracker

    console, progress = report_console(), ConsoleProgress()
    betas = parse_floats(args.betas, "--betas", 0.0, 1.0)
    tasks = list(split_list(args.task))
    seeds = parse_seeds(args.seeds)
    tracker = Tracker(args.tracking_uri, args.experiment)
    executor = executor_from_args(args, progress=progress)
    done = run_grid(tasks, betas, seeds, tracker, executor, Path(args.out), optimizer=args.optimizer,
                    lr=args.lr, steps=args.steps, schedule=args.schedule, init=args.init, device=args.device,
                    progress=progress)
    for task, cells_of_task in done.table.groupby("task", sort=False):
        console.print(grid_matrix(cells_of_task, betas, task))
    console.print(frame_table(done.test, "diagonal binomial test (success: β1 = β2 has the row's minimal ω1)",
                              formatters={"p_value": lambda v: f"{v:.3g}"}))
    if not done.best.empty:
        names = ", ".join(f"{spec}: {score.name} {'↑' if score.higher_is_better else '↓'}"
                          for spec, score in done.scores.items() if score)
        console.print(frame_table(done.best, f"best cell by validation score ({names})"))
    outcome = done.outcome
    for cell in outcome.failed:
        progress.note(f"failed {cell.label()} (traceback in the run's artifacts)")
    progress.note(f"{len(outcome.cells)} runs ({outcome.ran} now, {outcome.already_done} already in MLflow, "
                  f"{outcome.diverged} diverged) in {done.seconds:.0f} s; wrote {args.out}/grid.csv, grid_test.csv "
                  f"and heat-maps. MLflow: {tracker.uri} (experiment '{tracker.experiment_name}')")
    return 1 if outcome.failed else 0


def grid_matrix(cells, betas, task: str):
    """The ω1 table as the paper prints it: rows β1, columns β2, ``mean ± std``, diverged marked."""
    import numpy as np
    from rich.table import Table

    table = Table(title=f"ω1 on {task}: rows β1, columns β2 (mean ± std over seeds; † = some seeds diverged)")
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
            text = "diverged" if math.isnan(cell["omega1"]) else f"{cell['omega1']:.4g}"
            if not math.isnan(cell["omega1_std"]):
                text += f" ± {cell['omega1_std']:.2g}"
            if cell["diverged_frac"] > 0 and not math.isnan(cell["omega1"]):
                text += f" † {cell['diverged_frac']:.0%}"
            row.append(f"[bold]{text}[/]" if np.isclose(beta1, beta2) else text)
        table.add_row(*row)
    return table
