"""``gsibench invariance``: the order of gradient-scale invariance on the oracle and Figs. 1–2
(:mod:`gsibench.reproductions.invariance`)."""

from __future__ import annotations

import argparse

from gsibench.cli.options import add_reproduction_options
from gsibench.reproductions.defaults import (
    CONTROL_PAIR,
    FIGURE_STEPS,
    INVARIANCE_DOUBLINGS,
    INVARIANCE_LAYOUT,
    INVARIANCE_LAYOUTS,
    INVARIANCE_OPTIMIZERS,
    INVARIANCE_RATE,
    STEADY_RATE,
    STEADY_STEPS,
    STEADY_TASK,
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "invariance", help="order of gradient-scale invariance on the oracle (D(delta) log-log slope with "
        "bootstrap intervals) and the bump traces of arXiv 2601.21739 Figs. 1-2",
        description="For each optimizer: a clean run and ramps of drift rate d, 2d, 4d, ... on the oracle "
                    "task; D(d) = max_k |R_k - R_k^clean| and its log-log slope with a bootstrap 95% interval, "
                    f"and a matched control pair adam{list(CONTROL_PAIR)} against the first-order theory. "
                    "Writes invariance.csv, invariance_order.csv, invariance_control.csv, invariance_figure.csv "
                    "and PNGs.")
    parser.add_argument("--layout", choices=INVARIANCE_LAYOUTS, default=INVARIANCE_LAYOUT,
                        help=f"short (default: the paper's oracle, {FIGURE_STEPS} steps, float32, ramps over "
                             f"30-60%%, d0 = {INVARIANCE_RATE:g}) or steady ({STEADY_TASK}, {STEADY_STEPS} steps: "
                             f"half at scale 1, then a slow ramp to the end, d0 = {STEADY_RATE:g})")
    parser.add_argument("--oracle", help="the oracle task spec instead of the layout's, e.g. "
                        "\"oracle[dtype='float64']\" (the paper's turning direction in the steady layout)")
    parser.add_argument("--optimizers", default=INVARIANCE_OPTIMIZERS,
                        help=f"comma list of optimizer specs (default {INVARIANCE_OPTIMIZERS})")
    parser.add_argument("--rates", help="the smallest drift rate d0 (default: the layout's), or a comma list of rates")
    parser.add_argument("--doublings", type=int, default=INVARIANCE_DOUBLINGS,
                        help=f"rates d0·2^0 … d0·2^N for a single d0 (default {INVARIANCE_DOUBLINGS}: 5 rates)")
    parser.add_argument("--seeds", default="1", help="number of seeds or a comma list (default 1; the oracle "
                        "itself has no randomness)")
    parser.add_argument("--steps", type=int, help="oracle steps (default: the layout's)")
    parser.add_argument("--no-figure", dest="figure", action="store_false",
                        help="skip the Figs. 1-2 bump traces of the short layout (8 Adam runs)")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the matched control pair")
    add_reproduction_options(parser, "invariance")
    parser.set_defaults(func=run)


def rates_from_args(args: argparse.Namespace, base: float = INVARIANCE_RATE) -> list[float]:
    from gsibench.cli.options import parse_floats
    from gsibench.core.errors import UsageError
    from gsibench.reproductions.invariance import drift_rates

    text = args.rates or repr(base)
    rates = parse_floats(text, "--rates", 0.0)
    if any(rate <= 0 for rate in rates):
        raise UsageError(f"--rates must be positive, got {text}")
    if len(rates) == 1:
        if args.doublings < 1:
            raise UsageError(f"--doublings must be at least 1, got {args.doublings}")
        rates = drift_rates(rates[0], args.doublings)
    return sorted(rates)


def run(args: argparse.Namespace) -> int:
    from gsibench.cli.options import check_store

    check_store(args)

    import math
    from dataclasses import replace
    from pathlib import Path

    from rich.table import Table

    from gsibench.battery.spec import parse_seeds
    from gsibench.cli.options import executor_from_args
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.cli.tables import escape, fmt, frame_table, report_console
    from gsibench.core.specs import split_list
    from gsibench.reproductions.invariance import LAYOUTS, order_label, run_invariance
    from gsibench.tracking.store import Tracker

    console, progress = report_console(), ConsoleProgress()
    layout = LAYOUTS[args.layout]
    if args.oracle:
        layout = replace(layout, task=args.oracle)
    rates = rates_from_args(args, layout.rate)
    seeds = parse_seeds(args.seeds)
    tracker = Tracker(args.tracking_uri, args.experiment)
    executor = executor_from_args(args, progress=progress)
    done = run_invariance(list(split_list(args.optimizers)), rates, tracker, executor, Path(args.out),
                          layout=layout, seeds=seeds, steps=args.steps, figure=args.figure, control=args.control,
                          device=args.device, progress=progress)
    order = done.order.set_index("optimizer")
    table = Table(title=f"D(δ) = max_k |‖R_k‖ − ‖R_k^clean‖| on {layout.task}, {layout.name} layout ({done.steps} "
                        f"steps, ramp over {layout.ramp_start:.0%}–{layout.ramp_end:.0%}; mean over {len(seeds)} "
                        "seed(s)), the log-log slope p and its bootstrap 95% interval over seeds and rates")
    table.add_column("optimizer", overflow="fold")
    for rate in done.rates:
        table.add_column(f"δ={rate:.3g}", justify="right")
    table.add_column("p", justify="right")
    table.add_column("95% interval", justify="right")
    for optimizer, rows in done.deviations.groupby("optimizer", sort=False):
        values = rows.groupby("drift_rate")["deviation"].mean().to_dict()
        low, high = order.loc[optimizer, "slope_low"], order.loc[optimizer, "slope_high"]
        table.add_row(escape(optimizer), *(fmt(values.get(rate, math.nan), 3) for rate in done.rates),
                      order_label(order.loc[optimizer, "slope"], list(rows["deviation"])),
                      "—" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]")
    console.print(table)
    if not done.control.empty:
        console.print(frame_table(done.control, f"matched control pair, {layout.name} layout: D/δ against the "
                                  "first-order theory √3·(τ2 − τ1), τ = β/(1 − β)"))
    if done.figure is not None:
        console.print(frame_table(done.figure,
                                  "Figs. 1–2: max_k |‖R_k‖ − ‖R_k^clean‖| under the bump s(k) (peak s = 1.49)"))
    progress.note(f"wall time {done.seconds:.0f} s; wrote {args.out}/invariance.csv, invariance_order.csv"
                  f"{', invariance_control.csv' if not done.control.empty else ''}"
                  f"{', invariance_figure.csv' if done.figure is not None else ''} and PNGs. MLflow: {tracker.uri} "
                  f"(experiment '{tracker.experiment_name}')")
    return 1 if done.failed else 0
