"""The battery driver: plan → skip what is done → execute → compare with twins → log.

Data flows one way: cells go to the executor, results come back here, each perturbed result meets
its clean twin (from this run, or loaded from MLflow if the twin finished earlier), and the driver
writes one MLflow run per cell.

Several drivers may share one store: each cell's run is created as a claim before the cell starts, and
a cell another driver claimed first is picked up from MLflow when that driver has finished it
(:mod:`gsibench.tracking.claims`). Faults: runs a dead driver left ``RUNNING`` are marked ``KILLED``
and their cells redone; if the tracking store fails mid-battery, the driver stops writing to it and
keeps every further result in the :mod:`~gsibench.execution.spool` (the battery still finishes), and
the next run writes the spool first. A cell counts as done only when a ``FINISHED`` run carries its
key, so nothing is lost or doubled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gsibench.battery.cells import Cell
from gsibench.battery.limits import probe_limit
from gsibench.battery.spec import Battery
from gsibench.core.blas import one_blas_thread
from gsibench.core.errors import UsageError
from gsibench.core.progress import SILENT, Progress
from gsibench.execution.executors import Executor
from gsibench.execution.spool import Spool
from gsibench.measure.result import CellResult
from gsibench.measure.twins import compare
from gsibench.optimizers import registry as optimizer_registry
from gsibench.tracking.claims import Claims
from gsibench.tracking.store import Tracker, WriteFailed


@dataclass
class BatteryOutcome:
    cells: list[Cell]
    skipped_tasks: list[tuple[str, str]]
    already_done: int = 0
    interrupted_marked: int = 0
    ran: int = 0
    failed: list[Cell] = field(default_factory=list)
    diverged: int = 0
    """Diverged runs among the battery's cells: this run's and those finished earlier (read from MLflow)."""
    run_ids: dict[str, str] = field(default_factory=dict)
    flushed: int = 0
    """Results spooled by an earlier run and written to the store at the start of this one."""
    spooled: int = 0
    """Results of this run kept in the spool because the store failed (``store_error``)."""
    store_error: str | None = None
    spool_root: str | None = None
    elsewhere: int = 0
    """Cells another driver claimed first and finished (or failed) while this one ran: picked up, not run."""


def flush_spool(spool: Spool, tracker: Tracker) -> int:
    """Write the results an earlier run could not; returns how many were written."""
    entries = spool.pending(tracker.experiment_name)
    if not entries:
        return 0
    done = tracker.finished()
    spooled = {entry.result.cell.key: entry.result for entry in entries}
    written = 0
    for entry in entries:  # clean twins first
        result, cell = entry.result, entry.result.cell
        if cell.key not in done:
            twin_run = None if cell.is_clean else done.get(cell.twin.key)
            comparison = entry.comparison
            if comparison is None and not cell.is_clean and result.status == "finished":
                twin = spooled.get(cell.twin.key)
                if twin is None and twin_run is not None:
                    twin = tracker.load_trace(twin_run, cell.twin)
                if twin is not None and twin.status == "finished":
                    comparison = compare(result, twin)
            run_id = tracker.log(result, comparison, twin_run)
            if result.status == "finished":
                done[cell.key] = run_id
            written += 1
    tracker.flush()  # every spooled run is in the store before its file goes
    for entry in entries:
        spool.remove(entry)
    return written


def outcome_word(result: CellResult) -> str:
    return "failed" if result.status == "failed" else "diverged" if result.diverged else "ok"


def run_battery(battery: Battery, tracker: Tracker, executor: Executor, progress: Progress = SILENT,
                label: str = "cells", on_result: Callable[[CellResult], None] | None = None,
                spool: Spool | None = None) -> BatteryOutcome:
    """Run every cell of ``battery`` not yet FINISHED in ``tracker``'s experiment, reporting to
    ``progress`` as stage ``label``; ``on_result`` sees every result of this run (after it is logged).
    Cells are claimed (:mod:`gsibench.tracking.claims`): a cell another driver claimed first is not run
    here; its result is picked up when that driver finishes it (or the cell is taken over if it died)."""
    cells, skipped = battery.plan()
    outcome = BatteryOutcome(cells, skipped)
    spool = spool or Spool()
    outcome.spool_root = str(spool.root)
    claims = Claims(tracker, batch=2 * getattr(executor, "jobs", 1) + 2)
    outcome.interrupted_marked = claims.reap()
    try:
        outcome.flushed = flush_spool(spool, tracker)
    except Exception as error:
        raise UsageError(f"results kept in {spool.root} from an earlier run could not be written to "
                         f"'{tracker.uri}': {error}") from None
    done = tracker.finished()
    outcome.run_ids = {cell.key: done[cell.key] for cell in cells if cell.key in done}
    outcome.already_done = len(outcome.run_ids)
    if outcome.already_done:
        outcome.diverged = sum(row.get("gsibench.status") == "diverged"
                               for row in tracker.rows(set(outcome.run_ids.values())))
    todo = [cell for cell in cells if cell.key not in done]
    todo_keys = {cell.key for cell in todo}
    if todo:
        one_blas_thread()  # the twin comparisons below run here
    by_key = {cell.key: cell for cell in todo}
    if outcome.already_done:
        progress.note(f"{label}: {outcome.already_done} of {len(cells)} already finished in MLflow "
                      f"(experiment '{tracker.experiment_name}'), not run again")
    optimizer_registry.check_builds([(cell.optimizer_name, dict(cell.hparams)) for cell in todo],
                                    probe_limit(getattr(executor, "timeout", None)))
    progress.begin(label, len(todo))

    twins: dict[str, CellResult] = {}
    waiting: dict[str, list[CellResult]] = defaultdict(list)
    elsewhere: dict[str, str] = {}  # cell key -> the run of the driver that claimed it first

    def twin_of(cell: Cell) -> CellResult | None:
        key = cell.twin.key
        if key not in twins and key in outcome.run_ids and outcome.store_error is None:
            try:
                twins[key] = tracker.load_trace(outcome.run_ids[key], cell.twin)
            except Exception:  # the store is failing: the spool flush compares later
                return None
        return twins.get(key)

    def keep_one(result: CellResult, comparison: dict[str, float] | None) -> None:
        spool.save(tracker.experiment_name, tracker.uri, result, comparison)
        outcome.run_ids.pop(result.cell.key, None)
        outcome.spooled += 1

    def keep(error: WriteFailed) -> None:
        outcome.store_error = str(error)
        for result, comparison, _ in error.queued:
            keep_one(result, comparison)

    def log(result: CellResult, twin: CellResult | None) -> None:
        comparison = None
        if twin is not None and twin.status == "finished" and result.status == "finished":
            comparison = compare(result, twin)
        key = result.cell.key
        twin_run = outcome.run_ids.get(result.cell.twin.key) if not result.cell.is_clean else None
        if outcome.store_error is None:
            try:
                other = claims.finished_by_other(key)
                if other is not None:  # a race the claims could not settle: keep the first result
                    claims.withdraw(key)
                    outcome.run_ids[key] = other
                else:
                    outcome.run_ids[key] = tracker.log(result, comparison, twin_run, run_id=claims.take(key))
            except WriteFailed as error:  # the store went away: keep these and every later result locally
                keep(error)
            except Exception as error:  # the claims' reads failed: the store went away
                outcome.store_error = f"{type(error).__name__}: {error}"
                keep_one(result, comparison)
        else:
            keep_one(result, comparison)
        outcome.ran += 1
        outcome.diverged += result.diverged
        if result.status == "failed":
            outcome.failed.append(result.cell)
        progress.advance(f"{result.cell.label()} → {outcome_word(result)}")
        if on_result:
            on_result(result)

    def consume(results) -> None:
        try:
            for result in results:
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
        finally:  # Ctrl-C or an error here: stop the executor's workers now, not when garbage is collected
            close = getattr(results, "close", None)
            if close is not None:
                close()

    def picked_up(key: str, run) -> None:
        """Another driver's result for ``key``: count it, and log the results that waited for it as a twin."""
        outcome.elsewhere += 1
        if run.status == "FINISHED":
            outcome.run_ids[key] = run.run_id
            outcome.diverged += run.tags.get("gsibench.status") == "diverged"
        else:
            outcome.failed.append(by_key[key])
        progress.advance(f"{by_key[key].label()} → {run.tags.get('gsibench.status', 'failed')} (another driver)")
        pending_results = waiting.pop(key, [])
        for pending in pending_results:
            log(pending, twin_of(pending.cell))

    try:
        with claims.heartbeat():
            batch = todo
            while batch:
                consume(executor.run(claims.lazily(batch, elsewhere)))
                batch = []
                if elsewhere and outcome.store_error is None:
                    progress.note(f"{label}: waiting for {len(elsewhere)} cells another driver claimed first")
                while elsewhere and not batch and outcome.store_error is None:
                    try:
                        finished, free = claims.wait(elsewhere)
                    except Exception as error:  # the store went away: the other driver's cells stay its own
                        outcome.store_error = f"{type(error).__name__}: {error}"
                        break
                    for key, run in finished.items():
                        picked_up(key, run)
                    batch = [by_key[key] for key in free]  # its driver died or withdrew: ours now
            for pending_results in waiting.values():  # twins that never came back: log without comparison
                for pending in pending_results:
                    log(pending, None)
    finally:
        progress.end()
        try:
            tracker.flush()  # the runs still queued (also on Ctrl-C: what finished is kept)
        except WriteFailed as error:
            keep(error)
    return outcome
