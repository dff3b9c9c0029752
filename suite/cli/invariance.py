"""``gsibench invariance``: the order of gradient-scale invariance on the oracle and Figs. 1–2
(:mod:`gsibench.reproductions.invariance`)."""

from __future__ import annotations

import argparse

from gsibench.cli.options import add_reproduction_options
from gsibench.reproductions.defaults import FIGURE_STEPS, INVARIANCE_DOUBLINGS, INVARIANCE_OPTIMIZERS, INVARIANCE_RATE


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "invariance", help="order of gradient-scale invariance on the oracle (D(delta) log-log slope) "
        "and the bump traces of arXiv 2601.21739 Figs. 1-2",
        description="For each optimizer: a clean run and ramps of drift rate d, 2d, 4d, ... on the oracle "
                    "task; D(d) = max_k |R_k - R_k^clean| and its log-log slope. Writes invariance.csv, "
                    "invariance_order.csv, invariance_figure.csv and PNGs.")
    parser.add_argument("--optimizers", default=INVARIANCE_OPTIMIZERS,
                        help=f"comma list of optimizer specs (default {INVARIANCE_OPTIMIZERS})")
    parser.add_argument("--rates", default=repr(INVARIANCE_RATE),
                        help=f"the smallest drift rate d0 (default {INVARIANCE_RATE:g}), or a comma list of rates")
    parser.add_argument("--doublings", type=int, default=INVARIANCE_DOUBLINGS,
                        help=f"rates d0·2^0 … d0·2^N for a single d0 (default {INVARIANCE_DOUBLINGS}: 5 rates)")
    parser.add_argument("--steps", type=int, help=f"oracle steps (default {FIGURE_STEPS})")
    parser.add_argument("--no-figure", dest="figure", action="store_false",
                        help="skip the Figs. 1-2 bump traces (8 Adam runs)")
    add_reproduction_options(parser, "invariance")
    parser.set_defaults(func=run)


def rates_from_args(args: argparse.Namespace) -> list[float]:
    from gsibench.cli.options import parse_floats
    from gsibench.core.errors import UsageError
    from gsibench.reproductions.invariance import drift_rates

    rates = parse_floats(args.rates, "--rates", 0.0)
    if any(rate <= 0 for rate in rates):
        raise UsageError(f"--rates must be positive, got {args.rates}")
    if len(rates) == 1:
        if args.doublings < 1:
            raise UsageError(f"--doublings must be at least 1, got {args.doublings}")
        rates = drift_rates(rates[0], args.doublings)
    return sorted(rates)


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store

    check_store(args)

    import math
    from pathlib import Path

    from rich.table import Table

    from gsibench.cli.options import executor_from_args
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.cli.tables import fmt, frame_table, report_console
    from gsibench.core.specs import split_list
    from gsibench.reproductions.invariance import RAMP_END, RAMP_START, order_label, run_invariance
    from gsibench.tracking.store import Tracker

    console, progress = report_console(), ConsoleProgress()
    rates = rates_from_args(args)
    tracker = Tracker(args.tracking_uri, args.experiment)
    executor = executor_from_args(args, progress=progress)
    done = run_invariance(list(split_list(args.optimizers)), rates, tracker, executor, Path(args.out),
                          steps=args.steps or FIGURE_STEPS, figure=args.figure, device=args.device, progress=progress)
    slopes = dict(zip(done.order["optimizer"], done.order["slope"]))
    table = Table(title=f"D(δ) = max_k |‖R_k‖ − ‖R_k^clean‖| on the oracle ({done.steps} steps, ramp over "
                        f"{RAMP_START:.0%}–{RAMP_END:.0%}) and the log-log slope p")
    table.add_column("optimizer", overflow="fold")
    for rate in done.rates:
        table.add_column(f"δ={rate:.3g}", justify="right")
    table.add_column("p", justify="right")
    for optimizer, rows in done.deviations.groupby("optimizer", sort=False):
        values = dict(zip(rows["drift_rate"], rows["deviation"]))
        table.add_row(optimizer, *(fmt(values.get(rate, math.nan), 3) for rate in done.rates),
                      order_label(slopes[optimizer], list(rows["deviation"])))
    console.print(table)
    if done.figure is not None:
        console.print(frame_table(done.figure,
                                  "Figs. 1–2: max_k |‖R_k‖ − ‖R_k^clean‖| under the bump s(k) (peak s = 1.49)"))
    progress.note(f"wall time {done.seconds:.0f} s; wrote {args.out}/invariance.csv, invariance_order.csv"
                  f"{', invariance_figure.csv' if done.figure is not None else ''} and PNGs. MLflow: {tracker.uri} "
                  f"(experiment '{tracker.experiment_name}')")
    return 1 if done.failed else 0
