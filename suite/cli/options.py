"""Options shared by several commands, and turning them into engine objects (a battery, an executor)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from gsibench.battery.limits import STARTUP_SECONDS
from gsibench.core.errors import UsageError


def add_tracking_options(parser: argparse.ArgumentParser, experiment: str | None = "gsibench") -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                        "else sqlite:///./mlflow.db)")
    parser.add_argument("--experiment", default=experiment, help="MLflow experiment name")


def check_store(args: argparse.Namespace) -> None:
    """Before anything heavy is imported: the tracking server of --tracking-uri (or $MLFLOW_TRACKING_URI)
    answers, within seconds (:mod:`gsibench.tracking.preflight`)."""
    from gsibench.tracking.preflight import check_reachable, default_uri

    check_reachable(args.tracking_uri or default_uri())


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """--executor, --jobs, --address (every command that runs cells can take them)."""
    parser.add_argument("--executor", default="local", choices=["local", "pool", "ray"],
                        help="local (default: a process pool of --jobs workers, in-process for --jobs 1), "
                        "pool (worker processes even for one job) or ray (a Ray task per cell)")
    parser.add_argument("--jobs", type=int, help="cells run at once (default: $GSIBENCH_JOBS, else every core)")
    parser.add_argument("--address", help="Ray cluster for --executor ray: auto (the cluster this machine is in) "
                        "or HOST:PORT (default: start a local Ray)")
    parser.add_argument("--cell-timeout", metavar="SECONDS|off",
                        help="a cell running longer is failed (reason: timeout), its worker killed and replaced, "
                        f"and the battery goes on (default: {STARTUP_SECONDS:g} s + steps x the task's per-step "
                        "budget, e.g. 150 s for digits-mlp's 300 steps; also cell_timeout in a battery file). It "
                        "needs a worker process: cells run in-process (--jobs 1) get no limit unless one is given "
                        "here, which runs them in one worker process")


def add_import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                        help="import MODULE first (registers @register'ed plugins; modules in the working "
                        "directory are found); repeatable")


def add_reproduction_options(parser: argparse.ArgumentParser, command: str) -> None:
    """--tracking-uri/--experiment, --out, --executor/--jobs/--address, --device (grid, invariance, phase)."""
    add_tracking_options(parser, experiment=command)
    add_executor_options(parser)
    parser.add_argument("--out", default=str(Path("results") / command),
                        help=f"folder for the CSVs and plots (default results/{command})")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def executor_from_args(args: argparse.Namespace, timeout: float | str | None = None, progress=None):
    """The executor that --executor/--jobs/--address/--cell-timeout name (``timeout``: a battery file's
    cell_timeout, which the flag overrides); ``progress`` is told when cells will run without a limit."""
    from gsibench.battery.limits import parse_timeout
    from gsibench.execution.executors import available_cores, make_executor

    jobs = args.jobs
    if jobs is None and args.executor != "ray":
        text = os.environ.get("GSIBENCH_JOBS") or str(available_cores())
        if not text.strip().isdigit():
            raise UsageError(f"$GSIBENCH_JOBS must be a positive integer, got {text!r}")
        jobs = int(text)
    if getattr(args, "cell_timeout", None) is not None:
        timeout = parse_timeout(args.cell_timeout)
    executor = make_executor(args.executor, jobs=jobs, address=getattr(args, "address", None), timeout=timeout)
    if progress is not None and executor.timeout == "off" and timeout != "off":
        progress.note("cells run in this process (--jobs 1) without a time limit: a timeout needs a worker "
                      "process (--cell-timeout SECONDS runs them in one)")
    return executor


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
