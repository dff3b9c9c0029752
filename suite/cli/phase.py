"""``gsibench phase``: Adam's converge/diverge map over (β1, β2) per n (Zhang et al. 2022;
:mod:`gsibench.reproductions.phase`)."""

from __future__ import annotations

import argparse

from gsibench.cli.options import add_reproduction_options
from gsibench.reproductions.defaults import (
    PHASE_CRITERION,
    PHASE_GRID,
    PHASE_LR,
    PHASE_NS,
    PHASE_SCHEDULES,
    PHASE_SEEDS,
    PHASE_TASK,
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "phase", help="Adam's converge/diverge map over (beta1, beta2) per n (Zhang et al. 2022)",
        description="Train adam[beta1=..,beta2=..] on finite-sum[n=N] over a grid of the (beta1, beta2) "
                    "plane for each n and seed; writes phase.csv (the diverged fraction of seeds per cell), "
                    "phase_runs.csv and phase.png (one panel per n, with the curve beta1 = sqrt(beta2)) and "
                    "prints the diverged cells per n.")
    parser.add_argument("--task", default=PHASE_TASK, help=f"task spec with an n option (default {PHASE_TASK})")
    parser.add_argument("--n", default=PHASE_NS, help=f"comma list of component counts (default {PHASE_NS})")
    parser.add_argument("--grid", type=int, default=PHASE_GRID, help=f"grid points per axis (default {PHASE_GRID})")
    parser.add_argument("--seeds", default=PHASE_SEEDS,
                        help=f"number of seeds or a comma list (default {PHASE_SEEDS})")
    parser.add_argument("--steps", type=int, help="training steps (default: the task's own, 2000)")
    parser.add_argument("--lr", type=float, default=PHASE_LR, help=f"Adam's lr (default {PHASE_LR})")
    parser.add_argument("--schedule", choices=PHASE_SCHEDULES, default="constant",
                        help="constant (default) or inverse-sqrt: lr/sqrt(k+1)")
    parser.add_argument("--criterion", choices=("drift", "worse"), default=PHASE_CRITERION,
                        help="drift (default: x still rising over the second half of the run, a positive trend "
                             "of its epoch means by more than 3 standard errors) or worse (it ends worse than it "
                             "started; meaningful with a constant lr only)")
    parser.add_argument("--engine", choices=("batched", "cells"), default="batched",
                        help="batched (default: all cells of an n at once on the CPU, one MLflow run per n) or "
                             "cells (one runner cell and one MLflow run per grid point; any task)")
    add_reproduction_options(parser, "phase")
    parser.set_defaults(func=run)


def parse_ns(text: str) -> list[int]:
    from gsibench.core.errors import UsageError

    try:
        ns = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise UsageError(f"--n must be a comma list of integers, got {text!r}") from None
    if not ns or any(n < 2 for n in ns):
        raise UsageError(f"--n needs integers >= 2, got {text!r}")
    return sorted(set(ns))


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store

    check_store(args)

    import time
    from pathlib import Path

    import numpy as np

    from gsibench.battery.spec import parse_seeds
    from gsibench.cli.options import executor_from_args
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.cli.tables import frame_table, report_console
    from gsibench.core.errors import UsageError
    from gsibench.reproductions.phase import beta_grid, boundary, diverged_counts, phase_table, task_spec
    from gsibench.reproductions.phase_run import run_batched, run_cells
    from gsibench.reproductions.plots import phase_maps
    from gsibench.tasks import registry as task_registry
    from gsibench.tracking.store import Tracker

    console, progress = report_console(), ConsoleProgress()
    ns, seeds = parse_ns(args.n), parse_seeds(args.seeds)
    if args.grid < 2:
        raise UsageError(f"--grid must be at least 2, got {args.grid}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    task = task_registry.resolve(task_spec(args.task, ns[0]))[0]
    steps = args.steps or task.default_steps
    if task.name != "finite-sum" and (args.engine == "batched" or args.criterion == "drift"):
        raise UsageError(f"the batched engine and the drift criterion know finite-sum only; use --engine cells "
                         f"--criterion worse for '{args.task}'")
    beta1s, beta2s = beta_grid(args.grid)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(args.tracking_uri, args.experiment)
    started = time.perf_counter()
    failed = 0
    if args.engine == "batched":
        runs = run_batched(args.task, ns, seeds, beta1s, beta2s, steps, args.lr, tracker, args.schedule, progress)
    else:
        runs, failed = run_cells(args.task, ns, seeds, beta1s, beta2s, steps, args.lr, args.device, tracker,
                                 executor_from_args(args, progress=progress), args.schedule, progress)
    wall = time.perf_counter() - started
    table = phase_table(runs, args.criterion)
    counts = diverged_counts(table)
    setting = f"{args.schedule} lr {args.lr:g}, {steps} steps, criterion {args.criterion}"
    for name, frame in (("phase", table), ("phase_runs", runs)):
        frame.assign(schedule=args.schedule, criterion=args.criterion).to_csv(out / f"{name}.csv", index=False)
    phase_maps(table, out / "phase.png", ns, subtitle=setting)
    console.print(frame_table(counts, f"Adam on {args.task}: diverged cells of the {args.grid}×{args.grid} "
                              f"(β1, β2) grid per n ({len(seeds)} seed{'s' * (len(seeds) > 1)}; {setting}; "
                              "diverged_cells: some seed diverged, all_seeds_cells: every seed)"))
    console.print(frame_table(boundary(table), "where the diverged region ends (a cell with some diverged seed "
                              "counts); β1 = 0 is the grid's first row"))
    grows = bool(np.all(np.diff(counts["diverged_cells"].to_numpy()) > 0))
    if len(ns) > 1:
        console.print(f"the diverged region {'grows' if grows else 'does NOT grow'} with n: "
                      + " → ".join(f"{c} (n={n})" for n, c in zip(counts["n"], counts["diverged_cells"])))
    progress.note(f"wall time {wall:.0f} s ({args.engine} engine); wrote {out}/phase.csv, phase_runs.csv and "
                  f"phase.png. MLflow: {tracker.uri} (experiment '{tracker.experiment_name}')")
    return 1 if failed else 0
