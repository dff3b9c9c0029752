"""The ``gsibench`` command line.

Sub-commands are small modules; each defines ``add_parser(subparsers)`` which registers its
parser with ``func=`` set. A ``UsageError`` anywhere prints one line and exits 2, before any
training starts.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from suite.errors import UsageError
from suite.perturbations import split_specs

COMMAND_MODULES: tuple[str, ...] = ("suite.leaderboard.command", "suite.check", "suite.grid", "suite.invariance",
                                   "suite.phase", "suite.server")
"""Modules adding further sub-commands (reproductions, leaderboard, check, server, ...)."""


def add_tracking_options(parser: argparse.ArgumentParser, experiment: str | None = "gsibench") -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                        "else sqlite:///./mlflow.db)")
    parser.add_argument("--experiment", default=experiment, help="MLflow experiment name")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """--executor, --jobs, --address (every command that runs cells can take them)."""
    parser.add_argument("--executor", default="local", choices=["local", "pool", "ray"],
                        help="local (default: a process pool of --jobs workers, in-process for --jobs 1), "
                        "pool (worker processes even for one job) or ray (a Ray task per cell)")
    parser.add_argument("--jobs", type=int, help="cells run at once (default: $GSIBENCH_JOBS, else every core)")
    parser.add_argument("--address", help="Ray cluster for --executor ray: auto (the cluster this machine is in) "
                        "or HOST:PORT (default: start a local Ray)")


def executor_from_args(args: argparse.Namespace):
    """The executor that --executor/--jobs/--address name."""
    from suite.executors import available_cores, make_executor

    jobs = args.jobs
    if jobs is None and args.executor != "ray":
        text = os.environ.get("GSIBENCH_JOBS") or str(available_cores())
        if not text.strip().isdigit():
            raise UsageError(f"$GSIBENCH_JOBS must be a positive integer, got {text!r}")
        jobs = int(text)
    return make_executor(args.executor, jobs=jobs, address=getattr(args, "address", None))


def add_battery_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe cells (shared by every command that trains)."""
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
    parser.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                        help="import MODULE first (registers @register'ed plugins); repeatable")
    parser.add_argument("--init", help="initialization for tasks that take it: default or sinusoidal")
    parser.add_argument("--text", help="text file for char-gpt (default: the shipped corpus)")
    parser.add_argument("--data-dir", help="folder with data sets (also $GSIBENCH_DATA)")


def battery_from_args(args: argparse.Namespace):
    """A :class:`~suite.battery.Battery` from a TOML file (if given) overridden by flags."""
    from suite.battery import DEFAULT_BATTERY, Battery

    if args.data_dir:
        os.environ["GSIBENCH_DATA"] = args.data_dir
    source = getattr(args, "battery", None)
    if source is None and not args.optimizers:
        source = DEFAULT_BATTERY
    data = {}
    if source is not None:
        import tomllib

        try:
            data = tomllib.loads(open(source, encoding="utf-8").read())
        except FileNotFoundError:
            raise UsageError(f"battery file '{source}' does not exist") from None
        except OSError as error:  # a folder, no permission, ...
            raise UsageError(f"battery file '{source}' cannot be read: {error.strerror or error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise UsageError(f"battery file '{source}' is not valid TOML: {error}") from None
        if not isinstance(data, dict):
            raise UsageError(f"battery file '{source}' must be a TOML table")
    for key in ("optimizers", "tasks", "seeds", "steps", "schedule", "clip", "device"):
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


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                    console=console, disable=not console.is_terminal and os.environ.get("GSIBENCH_PROGRESS") != "1")


def cmd_run(args: argparse.Namespace) -> int:
    from suite.driver import run_battery
    from suite.summary import print_summary, runs_frame, summarize
    from suite.tracking import Tracker

    console = Console(stderr=True)
    battery = battery_from_args(args)
    battery.plan()  # every name and value checked before MLflow or training is touched
    tracker = Tracker(args.tracking_uri, battery.experiment)
    executor = executor_from_args(args)
    if not args.no_tune:
        from suite.tuning import tune

        battery.tuned_lrs = tune(battery, args.tracking_uri, executor, console, points=args.tune_points)
    with progress_bar(console) as progress:
        bar = progress.add_task("cells", total=None, last="")

        def on_plan(total: int, todo: int) -> None:
            progress.update(bar, total=todo)
            if todo < total:
                console.print(f"resuming: {total - todo} of {total} cells already finished in MLflow")

        def on_result(result) -> None:
            state = "failed" if result.status == "failed" else "diverged" if result.diverged else "ok"
            progress.update(bar, advance=1, last=f"{result.cell.label()} → {state}")

        outcome = run_battery(battery, tracker, executor, on_result=on_result, on_plan=on_plan)
    if outcome.flushed:
        console.print(f"wrote {outcome.flushed} results kept in {outcome.spool_root} by an earlier run")
    if outcome.store_error:
        console.print(f"[red]the tracking store failed mid-run[/] ({outcome.store_error}); {outcome.spooled} "
                      f"results are kept in {outcome.spool_root}: re-run the same command to write them "
                      "(cells already written are not run again)")
        return 1
    for task, reason in outcome.skipped_tasks:
        console.print(f"[yellow]skipped[/] {task}: {reason}")
    out = Console()
    print_summary(summarize(runs_frame(tracker, set(outcome.run_ids.values()))),
                  out if out.is_terminal else Console(width=220))
    console.print(f"{len(outcome.cells)} cells: {outcome.ran} run now, {outcome.already_done} already done, "
                  f"{outcome.diverged} diverged, {len(outcome.failed)} failed. MLflow: {tracker.uri} "
                  f"(experiment '{tracker.experiment_name}')")
    for cell in outcome.failed:
        console.print(f"[red]failed[/] {cell.label()} (traceback in the run's artifacts)")
    return 1 if outcome.failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=True)
    if args.what == "optimizers":
        from optimizers import registry

        table.add_column("optimizer"), table.add_column("defaults"), table.add_column("description")
        for name in registry.available():
            entry = registry.get(name)
            table.add_row(name, ", ".join(f"{k}={v}" for k, v in entry.defaults.items()), entry.description)
    elif args.what == "tasks":
        from tasks import registry

        table.add_column("task"), table.add_column("steps"), table.add_column("score"), table.add_column("description")
        for name in registry.available():
            task = registry.get(name)
            score = f"{task.score.name} ({'↑' if task.score.higher_is_better else '↓'})" if task.score else "—"
            table.add_row(name, str(task.default_steps), score, task.description)
    else:
        from suite.perturbations import describe

        table.add_column("perturbation"), table.add_column("example"), table.add_column("c_k")
        for row in describe():
            table.add_row(*(escape(c) for c in row))
    Console(width=160).print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsibench", description="Optimizer benchmark with a gradient-scale "
                                     "robustness battery. Results go to MLflow.")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="list optimizers, tasks or perturbations")
    listing.add_argument("what", choices=["optimizers", "tasks", "perturbations"])
    listing.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="run a battery (default: the built-in default battery)",
                         description="Run a battery from flags or a TOML file; finished cells are skipped.")
    run.add_argument("battery", nargs="?", help="battery TOML file (flags override its values)")
    add_battery_options(run)
    add_tracking_options(run)
    add_executor_options(run)
    run.add_argument("--no-tune", action="store_true", help="use each optimizer's default lr (no lr sweep)")
    run.add_argument("--tune-points", type=int, default=5, help="learning rates per sweep, log-spaced over "
                     "default x 10^[-1, 1] (default 5); see suite/tuning.py")
    run.set_defaults(func=cmd_run)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # database set-up chatter; warnings still show
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"gsibench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsibench: interrupted; finished cells are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
