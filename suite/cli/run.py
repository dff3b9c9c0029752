"""``gsibench run``: a battery into MLflow (lr sweep, clean twins, resume)."""

from __future__ import annotations

import argparse
import os

from gsibench.cli.options import add_executor_options, add_import_option, add_tracking_options


def add_battery_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe cells."""
    parser.add_argument("--optimizers", help="comma list of optimizer specs, e.g. "
                        "adam,adam-balanced[beta=0.99],mypkg.opt:MyAdam[lr=1e-3]")
    parser.add_argument("--tasks", help="comma list of task specs, e.g. oracle,digits-mlp[width=256]")
    parser.add_argument("--perturbations", help="comma list of perturbation specs, e.g. "
                        "step:at=0.5,factor=10,noise:sigma=0.5 (see `gsibench list perturbations`)")
    parser.add_argument("--seeds", help="number of seeds (3 -> 0,1,2) or a comma list (1,10,100)")
    parser.add_argument("--steps", type=int, help="training steps per cell (default: each task's own)")
    parser.add_argument("--schedule", help="lr schedule: constant or warmup-cosine (default: the task's)")
    parser.add_argument("--clip", type=float, help="gradient-norm clipping after the perturbation")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    add_import_option(parser)
    parser.add_argument("--init", help="initialization for tasks that take it: default or sinusoidal")
    parser.add_argument("--text", help="text file for char-gpt (default: the shipped corpus)")
    parser.add_argument("--data-dir", help="folder with data sets (also $GSIBENCH_DATA)")


FROM_DEFAULT = ("tasks", "perturbations", "seeds")
"""What a flags-only run (``--optimizers`` and no battery file) takes from the default battery."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a battery (default: the built-in default battery)",
                                   description="Run a battery from flags or a TOML file; finished cells are "
                                   "skipped. Exit 0 when every cell finished (diverged counts as finished), 1 "
                                   "when any failed, 2 on a usage error.")
    parser.add_argument("battery", nargs="?", help="battery TOML file (flags override its values); without one, "
                        "the default battery, or with --optimizers its tasks, perturbations and seeds")
    add_battery_options(parser)
    add_tracking_options(parser)
    add_executor_options(parser)
    parser.add_argument("--no-tune", action="store_true", help="use each optimizer's default lr (no lr sweep)")
    parser.add_argument("--tune-points", type=int, default=5, help="learning rates per sweep, log-spaced over "
                        "default x 10^[-1, 1] (default 5); see gsibench/execution/tuning.py")
    parser.set_defaults(func=run)


def battery_from_args(args: argparse.Namespace):
    """A :class:`~gsibench.battery.spec.Battery` from a TOML file (if given) overridden by flags."""
    from gsibench.battery.perturbations import split_specs
    from gsibench.battery.spec import DEFAULT_BATTERY, Battery, read_battery_file

    if args.data_dir:
        os.environ["GSIBENCH_DATA"] = args.data_dir
    source = getattr(args, "battery", None)
    if source is None and not args.optimizers:
        source = DEFAULT_BATTERY
    if source is not None:
        data = read_battery_file(source)
    else:  # flags only: the default battery's tasks, perturbations and seeds, unless flags say otherwise
        default = read_battery_file(DEFAULT_BATTERY)
        data = {key: default[key] for key in FROM_DEFAULT if key in default}
    for key in ("optimizers", "tasks", "seeds", "steps", "schedule", "clip", "device", "cell_timeout"):
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    if args.perturbations is not None:
        data["perturbations"] = split_specs(args.perturbations)
    if args.imports:
        data["imports"] = list(data.get("imports", [])) + args.imports
    options = dict(data.get("task_options", {}))
    options.update({k: v for k, v in (("init", args.init), ("text", args.text)) if v is not None})
    if options:
        data["task_options"] = options
    if getattr(args, "experiment", None) and (source is None or args.experiment != "gsibench"):
        data["experiment"] = args.experiment
    return Battery.from_mapping(data, source=str(source or "the command line"))


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store
    from gsibench.cli.progress import ConsoleProgress

    check_store(args)
    progress = ConsoleProgress()
    battery = battery_from_args(args)
    battery.check_names()  # a misspelt name fails here, before torch or MLflow is imported
    cells, _ = battery.plan()  # every name and value checked before MLflow or training is touched

    from gsibench.cli.options import executor_from_args
    from gsibench.cli.tables import print_choices, print_summary, report_console
    from gsibench.execution.driver import run_battery
    from gsibench.tracking.runs import runs_frame, summarize
    from gsibench.tracking.store import Tracker

    progress.note(battery.describe(len(cells)))
    tracker = Tracker(args.tracking_uri, battery.experiment)
    executor = executor_from_args(args, battery.cell_timeout, progress)
    if not args.no_tune:
        from gsibench.execution.tuning import run_sweep

        choices = run_sweep(battery, args.tracking_uri, executor, progress, points=args.tune_points)
        battery.tuned_lrs = {(c.optimizer, c.task): c.lr for c in choices}
        if choices:
            print_choices(choices, report_console())
    outcome = run_battery(battery, tracker, executor, progress, "cells")
    if outcome.flushed:
        progress.note(f"wrote {outcome.flushed} results kept in {outcome.spool_root} by an earlier run")
    if outcome.store_error:
        progress.note(f"the tracking store failed mid-run ({outcome.store_error}); {outcome.spooled} results are "
                      f"kept in {outcome.spool_root}: re-run the same command to write them (cells already "
                      "written are not run again)")
        return 1
    for task, reason in outcome.skipped_tasks:
        progress.note(f"skipped {task}: {reason}")
    print_summary(summarize(runs_frame(tracker, set(outcome.run_ids.values()))), report_console())
    others = f"{outcome.elsewhere} run by another driver, " if outcome.elsewhere else ""
    progress.note(f"{len(outcome.cells)} cells: {outcome.ran} run now, {outcome.already_done} already done, {others}"
                  f"{outcome.diverged} diverged, {len(outcome.failed)} failed. MLflow: {tracker.uri} "
                  f"(experiment '{tracker.experiment_name}')")
    for cell in outcome.failed:
        progress.note(f"failed {cell.label()} (traceback in the run's artifacts)")
    return 1 if outcome.failed else 0
