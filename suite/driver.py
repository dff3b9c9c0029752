"""The battery driver: plan → skip what is done → execute → compare with twins → log.

Data flows one way: cells go to the executor, results come back here, each perturbed result meets
its clean twin (from this run, or loaded from MLflow if the twin finished earlier), and the driver
writes one MLflow run per cell.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from suite.battery import Battery
from suite.cells import Cell
from suite.compare import compare
from suite.executors import Executor
from suite.runner import CellResult
from suite.tracking import Tracker


@dataclass
class BatteryOutcome:
    cells: list[Cell]
    skipped_tasks: list[tuple[str, str]]
    already_done: int = 0
    interrupted_marked: int = 0
    ran: int = 0
    failed: list[Cell] = field(default_factory=list)
    diverged: int = 0
    run_ids: dict[str, str] = field(default_factory=dict)


def run_battery(battery: Battery, tracker: Tracker, executor: Executor,
                on_result: Callable[[CellResult], None] | None = None,
                on_plan: Callable[[int, int], None] | None = None) -> BatteryOutcome:
    """Run every cell of ``battery`` not yet FINISHED in ``tracker``'s experiment."""
    cells, skipped = battery.plan()
    outcome = BatteryOutcome(cells, skipped)
    outcome.interrupted_marked = tracker.mark_interrupted()
    done = tracker.finished()
    outcome.run_ids = {cell.key: done[cell.key] for cell in cells if cell.key in done}
    outcome.already_done = len(outcome.run_ids)
    todo = [cell for cell in cells if cell.key not in done]
    todo_keys = {cell.key for cell in todo}
    if on_plan:
        on_plan(len(cells), len(todo))

    twins: dict[str, CellResult] = {}
    waiting: dict[str, list[CellResult]] = defaultdict(list)

    def twin_of(cell: Cell) -> CellResult | None:
        key = cell.twin.key
        if key not in twins and key in outcome.run_ids:
            twins[key] = tracker.load_trace(outcome.run_ids[key], cell.twin)
        return twins.get(key)

    def log(result: CellResult, twin: CellResult | None) -> None:
        comparison = None
        if twin is not None and twin.status == "finished" and result.status == "finished":
            comparison = compare(result, twin)
        twin_run = outcome.run_ids.get(result.cell.twin.key) if not result.cell.is_clean else None
        outcome.run_ids[result.cell.key] = tracker.log(result, comparison, twin_run)
        outcome.ran += 1
        outcome.diverged += result.diverged
        if result.status == "failed":
            outcome.failed.append(result.cell)
        if on_result:
            on_result(result)

    for result in executor.run(todo):
        cell = result.cell
        if cell.is_clean:
            twins[cell.key] = result
            log(result, None)
            for pending in waiting.pop(cell.key, []):
                log(pending, result)
            continue
        twin = twin_of(cell)
        if twin is None and cell.twin.key in todo_keys:
            waiting[cell.twin.key].append(result)
        else:
            log(result, twin)
    for pending_results in waiting.values():  # twins that never came back: log without comparison
        for pending in pending_results:
            log(pending, None)
    return outcome
