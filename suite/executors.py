"""Executors run cells and hand results back to the driver, which alone writes to MLflow.

An executor is anything with ``run(cells) -> Iterator[CellResult]`` yielding results as cells
complete (in any order). ``local`` runs them one after another in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from suite.cells import Cell
from suite.errors import unknown_name
from suite.runner import CellResult, run_cell


class Executor(Protocol):
    def run(self, cells: list[Cell]) -> Iterator[CellResult]: ...


class LocalExecutor:
    """In-process, sequential: the simplest and the most debuggable."""

    def run(self, cells: list[Cell]) -> Iterator[CellResult]:
        for cell in cells:
            yield run_cell(cell)


EXECUTORS = {"local": LocalExecutor}


def make_executor(name: str, **options) -> Executor:
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    return EXECUTORS[name](**options)
