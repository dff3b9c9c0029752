"""``gsibench baseline`` and ``gsibench check``: the regression test for optimizer changes
(:mod:`gsibench.regression.check`)."""

from __future__ import annotations

import argparse
import sys

from gsibench.cli.options import add_import_option
from gsibench.regression.check import METRICS, QUICK, TRAJECTORIES

QUICK_DESCRIPTION = (f"CPU; {', '.join(QUICK['tasks'])}; {QUICK['steps']} steps; seeds "
                     f"{','.join(map(str, QUICK['seeds']))}; clean, {', '.join(QUICK['perturbations'])}")
QUANTITIES = ", ".join(list(METRICS) + [f"traj.{name}" for name in TRAJECTORIES])


def add_parser(subparsers) -> None:
    baseline = subparsers.add_parser(
        "baseline", help="record a regression baseline for `gsibench check`",
        description=f"Run the fixed quick battery ({QUICK_DESCRIPTION}) for one optimizer and write its "
                    "metrics and curves to a JSON file.")
    baseline.add_argument("--optimizer", required=True, help="optimizer spec, e.g. adam or mypkg.opt:MyAdam")
    baseline.add_argument("--out", required=True, help="baseline JSON file to write")
    baseline.add_argument("--tasks", help="override the quick battery's tasks (comma list)")
    baseline.add_argument("--perturbations", help="override its perturbations")
    baseline.add_argument("--seeds", help="override its seeds (count or comma list)")
    baseline.add_argument("--steps", type=int, help="override its steps (default 200)")
    add_import_option(baseline)
    baseline.set_defaults(func=run_baseline)

    check = subparsers.add_parser(
        "check", help="rerun a baseline's battery for an optimizer and compare (exit 1 if anything moved)",
        description="Regression test: exit 0 when no metric or trajectory moved beyond tolerance, 1 with a "
                    "diff table when one did, 2 on usage errors.")
    check.add_argument("--optimizer", required=True, help="optimizer spec to check, e.g. mypkg.opt:MyAdam")
    check.add_argument("--baseline", required=True, help="baseline JSON from `gsibench baseline`")
    check.add_argument("--tolerance", action="append", metavar="K|NAME=VALUE",
                       help="K: multiple of the seed-to-seed SD (default 1); NAME=VALUE: absolute tolerance of "
                            f"one quantity ({QUANTITIES}); repeatable")
    check.add_argument("--only-worse", action="store_true", help="flag only moves in the bad direction")
    check.add_argument("--all", action="store_true", help="print every compared quantity, not only moved ones")
    add_import_option(check)
    check.set_defaults(func=run_check)


def run_baseline(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from gsibench.battery.perturbations import split_specs
    from gsibench.battery.spec import parse_seeds
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.core.errors import UsageError
    from gsibench.core.specs import split_list
    from gsibench.regression.check import QUICK, quick_battery, record_baseline

    settings = dict(QUICK)
    if args.tasks:
        settings["tasks"] = list(split_list(args.tasks))
    if args.perturbations:
        settings["perturbations"] = split_specs(args.perturbations)
    if args.seeds:
        settings["seeds"] = parse_seeds(args.seeds)
    if args.steps:
        if args.steps < 10:
            raise UsageError(f"--steps must be at least 10, got {args.steps}")
        settings["steps"] = args.steps
    quick_battery(args.optimizer, settings, args.imports or []).plan()
    document = record_baseline(args.optimizer, settings, args.imports or [], ConsoleProgress())
    failed = [c for c in document["cells"] if c["status"] != "finished"]
    if failed:
        print(f"gsibench: error: {len(failed)} baseline cells failed, e.g. {failed[0]['error']}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"baseline of {args.optimizer}: {len(document['cells'])} cells in {document['seconds']} s -> {out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from gsibench.cli.progress import ConsoleProgress
    from gsibench.regression import check

    document = check.load_baseline(args.baseline)
    check.parse_tolerances(args.tolerance)
    check.quick_battery(args.optimizer, {k: document["battery"][k] for k in check.QUICK},
                        list(document["battery"].get("imports", [])) + (args.imports or [])).plan()
    report = check.run_check(args.optimizer, document, args.tolerance, args.only_worse, args.imports or [],
                             ConsoleProgress())
    print(report.text(show_all=args.all))
    print(f"({len(report.rows)} quantities, {report.seconds:.1f} s)")
    return 0 if report.passed else 1
