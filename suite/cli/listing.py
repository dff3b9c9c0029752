"""``gsibench list optimizers|tasks|perturbations``: what is registered, with defaults and examples."""

from __future__ import annotations

import argparse

from gsibench.cli.options import add_import_option


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list optimizers, tasks or perturbations",
                                   description="List the registered optimizers (with default hyperparameters), "
                                   "tasks (steps, score) or perturbation kinds (with an example each). "
                                   "--import lists the plugins a module registers too.")
    parser.add_argument("what", choices=["optimizers", "tasks", "perturbations"])
    add_import_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gsibench.core.registry import import_plugins

    import_plugins(args.imports or [])
    table = Table(show_header=True)
    if args.what == "optimizers":
        from gsibench.optimizers import registry

        for column in ("optimizer", "defaults", "description"):
            table.add_column(column, overflow="fold")
        for name in registry.available():
            entry = registry.get(name)
            table.add_row(escape(name), escape(", ".join(f"{k}={v}" for k, v in entry.defaults.items())),
                          escape(entry.description))
    elif args.what == "tasks":
        from gsibench.tasks import registry

        for column in ("task", "steps", "score", "description"):
            table.add_column(column, overflow="fold")
        for name in registry.available():
            task = registry.get(name)
            score = f"{task.score.name} ({'↑' if task.score.higher_is_better else '↓'})" if task.score else "—"
            table.add_row(escape(name), str(task.default_steps), score, escape(task.description))
    else:
        from gsibench.battery.perturbations import describe

        for column in ("perturbation", "example", "c_k"):
            table.add_column(column, overflow="fold")
        for row in describe():
            table.add_row(*(escape(c) for c in row))
    Console(width=160).print(table)
    return 0
