"""Claims settle races deterministically: the earliest claim wins, losers withdraw and pick up the winner's
run, a dead driver's claims are taken over (two Claims on one SQLite store stand for two drivers). Every
test runs twice: claims through straight SQL (the SQLite fast path) and through MLflow's client."""

from __future__ import annotations

import time

import pytest

import gsibench.tracking.claims as claims_module
from gsibench.battery.spec import Battery
from gsibench.tracking.claim_store import SqliteOps, ops_for
from gsibench.tracking.claims import TAG_BEAT, TAG_PID, Claims
from gsibench.tracking.store import Tracker

CELLS, _ = Battery(optimizers=["adam"], tasks=["oracle"], perturbations=["step:at=0.5,factor=10"], seeds=[0, 1],
                   steps=20).plan()


@pytest.fixture(params=["sql", "mlflow"])
def tracker(tmp_path, monkeypatch, request):
    monkeypatch.setattr(claims_module, "SETTLE", {"local": 0.05, "server": 0.05})
    monkeypatch.setattr(claims_module, "POLL", 0.05)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "claims")
    assert tracker.fast is not None
    if request.param == "mlflow":
        tracker.fast = None
    return tracker


def status(tracker: Tracker) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for run in tracker.runs():
        found.setdefault(run.data.tags["cell_key"], []).append(run.info.status)
    return found


def test_the_earliest_claim_wins_and_the_loser_withdraws(tracker):
    first, second = Claims(tracker, batch=len(CELLS)), Claims(tracker, batch=len(CELLS))
    mine, theirs = first._create(CELLS), second._create(CELLS)  # both claim every cell, first one earlier
    lost_first, lost_second = {}, {}
    assert second._settle(*theirs, lost_second) == []  # either may settle first: same answer
    assert first._settle(*mine, lost_first) == CELLS and lost_first == {}
    assert lost_second == {claim.cell.key: claim.run_id for claim in mine[0]}
    assert status(tracker) == {cell.key: ["RUNNING"] for cell in CELLS}  # the losers' claims are gone


def test_a_later_driver_takes_what_is_left_and_picks_up_the_rest(tracker):
    first, second = Claims(tracker, batch=2), Claims(tracker, batch=2)
    taken = first.lazily(CELLS, {})
    assert [next(taken), next(taken)] == CELLS[:2]  # first holds its batch and has created the next one
    lost: dict[str, str] = {}
    assert list(second.lazily(CELLS, lost)) == []  # everything is claimed by the first driver by now
    assert set(lost) == {cell.key for cell in CELLS}
    with first.heartbeat():
        list(taken)
        for cell in CELLS:
            run_id = first.take(cell.key)
            tracker.client.set_terminated(run_id, "FINISHED" if cell.is_clean else "FAILED")
    done, free = second.wait(lost)
    assert free == [] and not lost
    assert {key: run.status for key, run in done.items()} == {
        cell.key: "FINISHED" if cell.is_clean else "FAILED" for cell in CELLS}


def test_a_dead_drivers_claims_are_taken_over(tracker):
    dead, alive = Claims(tracker, batch=4), Claims(tracker, batch=4)
    assert list(dead.lazily(CELLS[:1], {})) == CELLS[:1]
    lost: dict[str, str] = {}
    assert list(alive.lazily(CELLS[:1], lost)) == []
    run_id = lost[CELLS[0].key]
    tracker.client.set_tag(run_id, TAG_BEAT, f"{time.time() - 2 * claims_module.STALE:.3f}")  # no heartbeat since
    done, free = alive.wait(lost)
    assert done == {} and free == [CELLS[0].key]
    assert alive.reap() == 1 and tracker.client.get_run(run_id).info.status == "KILLED"
    assert list(alive.lazily(CELLS[:1], {})) == CELLS[:1]  # claimed again, and won


def test_a_claim_of_a_process_gone_from_this_host_is_stale_at_once(tracker):
    ghost = Claims(tracker)
    list(ghost.lazily(CELLS[:1], {}))
    run_id = ghost.take(CELLS[0].key)
    tracker.client.set_tag(run_id, TAG_PID, "999999999")  # no such process
    assert Claims(tracker).reap() == 1


def test_runs_without_a_heartbeat_are_reaped_and_a_finished_cell_is_not_written_twice(tracker):
    stray = tracker.client.create_run(tracker.experiment_id, tags={"cell_key": CELLS[0].key}).info.run_id
    claims = Claims(tracker)
    assert claims.reap() == 1 and tracker.client.get_run(stray).info.status == "KILLED"
    assert claims.finished_by_other(CELLS[0].key) is None
    tracker.client.set_terminated(stray, "FINISHED")
    assert claims.finished_by_other(CELLS[0].key) == stray


def test_claims_written_with_sql_are_runs_mlflow_reads(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "claims")
    ops = ops_for(tracker)
    assert isinstance(ops, SqliteOps)
    run_id = ops.create("a cell", 1_700_000_000_000, {"cell_key": "k"})
    run = tracker.client.get_run(run_id)
    assert (run.info.status, run.info.start_time, run.info.run_name, run.data.tags["cell_key"]) == (
        "RUNNING", 1_700_000_000_000, "a cell", "k")
    assert [view.run_id for view in ops.running()] == [run.info.run_id]
    ops.tagger()(run_id, TAG_BEAT, "1.5")
    assert tracker.client.get_run(run_id).data.tags[TAG_BEAT] == "1.5"
    ops.terminate(run_id, "FINISHED")
    assert ops.finished_of("k") == run_id and ops.running() == []
    assert tracker.client.get_run(run_id).info.status == "FINISHED"
    ops.delete(run_id)
    assert tracker.client.get_run(run_id).info.lifecycle_stage == "deleted" and ops.finished_of("k") is None
