"""Faults: hostile input, an unreachable or vanishing tracking store, and a battery killed mid-way.

Each fault ends the same way: a clear message, and after a re-run every cell has exactly one
FINISHED run — none lost, none doubled.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

import gsibench.execution.executors
import gsibench.execution.runner
import gsibench.tracking.store
from gsibench.battery.spec import Battery
from gsibench.cli import main
from gsibench.execution.driver import run_battery
from gsibench.execution.executors import LocalExecutor
from gsibench.execution.spool import Spool
from gsibench.tracking.sqlite_store import SqliteStore
from gsibench.tracking.store import Tracker

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- hostile input ------------------------------------------------------------------------------
HOSTILE = {
    "garbage bytes": b"\x00\xff\xfe\x89PNG\r\n\x1a\n garbage",
    "truncated": b'optimizers = ["adam",',
    "deep nesting": b"optimizers = " + b"[" * 5000 + b"]" * 5000,
    "wrong type": b"optimizers = 5",
    "table array": b'optimizers = ["adam"]\n[[tasks]]\nname = "x"',
    "steps as text": b'optimizers = ["adam"]\nsteps = "300"',
    "huge seed count": b'optimizers = ["adam"]\nseeds = 1000000000000',
    "huge steps": b'optimizers = ["adam"]\nsteps = 9223372036854775807',
    "infinite lr": b'optimizers = ["adam[lr=1e400]"]',
    "nan warmup": b'optimizers = ["adam"]\nwarmup = nan',
    "unknown key": b'optimizers = ["adam"]\nrm_rf = true',
    "duplicate seeds": b'optimizers = ["adam"]\nseeds = [1, 1]',
    "bad device": b'optimizers = ["adam"]\ndevice = "tpu"',
    "experiment not text": b'experiment = 7\noptimizers = ["adam"]',
    "negative factor": b'optimizers = ["adam"]\nperturbations = ["step:at=0.5,factor=-1"]',
    "unknown perturbation": b'optimizers = ["adam"]\nperturbations = ["warp:speed=9"]',
    "perturbation garbage": b'optimizers = ["adam"]\nperturbations = ["ramp:start=0.9,end=0.1,,=="]',
    "missing plugin": b'optimizers = ["nosuchpkg.mod:Opt"]',
    "plugin not an optimizer": b'optimizers = ["os:getcwd"]',
    "plugin path escape": b'optimizers = ["../../etc/passwd:x"]',
    "missing import": b'optimizers = ["adam"]\nimports = ["nosuchpkg_xyz"]',
    "unknown task option": b'optimizers = ["adam"]\ntasks = ["oracle[dims=-5,evil=1]"]',
}


@pytest.mark.parametrize("content", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_battery_files_exit_2_with_one_line(content, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "battery.toml").write_bytes(content)
    assert main(["run", "battery.toml", "--no-tune", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gsibench: error: ") and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow or training


def test_a_folder_as_battery_file_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(tmp_path), "--no-tune"]) == 2
    assert "cannot be read" in capsys.readouterr().err


# ---- the tracking store -------------------------------------------------------------------------
def test_unreachable_server_is_a_clear_error_before_any_training(tmp_path, monkeypatch, capsys):
    def no_training(cell):
        raise AssertionError("training started")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gsibench.execution.executors, "run_cell", no_training)
    monkeypatch.setattr(gsibench.execution.runner, "run_cell", no_training)
    start = time.monotonic()
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["run", "--optimizers", "adam", "--tasks", "oracle", "--no-tune", "--tracking-uri", url]) == 2
    err = capsys.readouterr().err
    assert f"MLflow tracking server '{url}' is unreachable" in err and "gsibench server" in err
    assert time.monotonic() - start < 30  # not MLflow's four minutes of retries


def failing_flush(real_flush, fail_from: int, write_first: bool):
    """SqliteStore.flush that works ``fail_from`` times, then fails like a disk or server that went away.
    With ``write_first`` the failing call still writes its runs (the answer is what gets lost)."""
    calls = Counter()

    def flush(self):
        calls["n"] += 1
        if calls["n"] > fail_from:
            if write_first and calls["n"] == fail_from + 1:
                real_flush(self)
            raise sqlite3.OperationalError("disk I/O error")
        return real_flush(self)

    return flush


def finished_per_cell(tracker: Tracker) -> Counter:
    return Counter(r.data.tags["cell_key"] for r in tracker.runs("attributes.status = 'FINISHED'"))


def test_store_lost_mid_run_keeps_results_locally_and_the_next_run_writes_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "--optimizers", "adam,sgd", "--tasks", "oracle", "--perturbations", "step:at=0.5,factor=10",
            "--seeds", "2", "--steps", "30", "--no-tune", "--jobs", "1", "--tracking-uri", uri, "--experiment", "lost"]
    real_flush = SqliteStore.flush
    monkeypatch.setattr(gsibench.tracking.store, "FLUSH_RUNS", 1)  # a transaction per run, to fail mid-run
    monkeypatch.setattr(SqliteStore, "flush", failing_flush(real_flush, fail_from=3, write_first=True))
    assert main(args) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "the tracking store failed mid-run" in err and "5 results are kept in" in err
    assert len(list((tmp_path / ".gsibench-spool").rglob("*.pkl"))) == 5

    monkeypatch.setattr(SqliteStore, "flush", real_flush)
    assert main(args) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    assert "wrote 4 results kept in" in err  # the 5th had reached the store: not written twice
    assert "8 already done" in err and not (tmp_path / ".gsibench-spool").exists()
    tracker = Tracker(uri, "lost")
    counts = finished_per_cell(tracker)
    cells, _ = Battery(optimizers=["adam", "sgd"], tasks=["oracle"], perturbations=["step:at=0.5,factor=10"],
                       seeds=[0, 1], steps=30).plan()
    assert counts == Counter({cell.key: 1 for cell in cells})
    runs = {r.data.tags["cell_key"]: r for r in tracker.runs("attributes.status = 'FINISHED'")}
    for cell in cells:  # spooled perturbed runs keep their comparison and find their twin
        if not cell.is_clean:
            run = runs[cell.key]
            assert run.data.tags["twin_run_id"] == runs[cell.twin.key].info.run_id
            assert "sensitivity" in run.data.metrics and "divergence" in run.data.metrics


def test_interrupted_runs_are_marked_killed_and_redone(tmp_path):
    battery = Battery(optimizers=["adam"], tasks=["oracle"], perturbations=["noise:sigma=0.5"], seeds=[0], steps=20)
    cells, _ = battery.plan()
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "interrupted")
    stale = tracker.client.create_run(tracker.experiment_id, tags={"cell_key": cells[1].key}).info.run_id
    outcome = run_battery(battery, tracker, LocalExecutor(), spool=Spool(tmp_path / "spool"))
    assert outcome.interrupted_marked == 1 and outcome.ran == 2
    assert tracker.client.get_run(stale).info.status == "KILLED"
    assert finished_per_cell(tracker) == Counter({cell.key: 1 for cell in cells})


# ---- killing the driver -------------------------------------------------------------------------
# 24 cells of ~1 s (4 ms a step): several of the store's 2-second write batches before the end, so that
# the driver is killed with results written and cells left.
KILL_BATTERY = '''
experiment    = "killed"
optimizers    = ["tests.plugins.slow_opt:SlowSGD", "tests.plugins.slow_opt:SlowSGD[lr=0.02]"]
tasks         = ["oracle"]
perturbations = ["step:at=0.5,factor=10", "noise:sigma=0.5"]
seeds         = 4
steps         = 250
'''


def db_rows(db: Path) -> list[tuple[str, str, str]]:
    """(run id, status, cell key) straight from the SQLite file, as the driver writes it."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=10) as connection:
            return connection.execute(
                "SELECT r.run_uuid, r.status, t.value FROM runs r JOIN tags t "
                "ON t.run_uuid = r.run_uuid AND t.key = 'cell_key'").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def marked_processes(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_battery_reruns_to_exactly_one_finished_run_per_cell(how, tmp_path):
    (tmp_path / "battery.toml").write_text(KILL_BATTERY)
    db = tmp_path / "mlflow.db"
    mark = f"gsibench-test-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "GSIBENCH_TEST_MARK": mark}
    command = [sys.executable, "-m", "gsibench", "run", "battery.toml", "--no-tune", "--jobs", "2",
               "--tracking-uri", f"sqlite:///{db}"]
    # Ctrl-C's default action in the driver, even when this test runs in a background job (whose shell
    # starts it with SIGINT ignored, and Python then never raises KeyboardInterrupt).
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while sum(status == "FINISHED" for _, status, _ in db_rows(db)) < 4:
        assert driver.poll() is None, driver.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the battery never logged 4 cells"
        time.sleep(0.05)
    driver.send_signal(how)
    _, err = driver.communicate(timeout=60)
    if how == signal.SIGINT:
        assert driver.returncode == 130 and b"interrupted" in err
    else:
        assert driver.returncode == -signal.SIGKILL
    before = {run: key for run, status, key in db_rows(db) if status == "FINISHED"}
    total = 2 * 4 * 3
    assert 4 <= len(before) < total  # killed mid-way
    deadline = time.monotonic() + 20
    while marked_processes(mark):  # workers (and the forkserver) leave with their driver
        assert time.monotonic() < deadline, "worker processes outlived the killed driver"
        time.sleep(0.2)

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert f"{len(before)} of {total} already finished" in rerun.stderr.decode().replace("\n", " ")
    rows = db_rows(db)
    finished = Counter(key for _, status, key in rows if status == "FINISHED")
    assert len(finished) == total and set(finished.values()) == {1}  # every cell exactly once
    assert all((run, "FINISHED", key) in rows for run, key in before.items())  # none lost or redone
    assert not [row for row in rows if row[1] == "RUNNING"]  # interrupted runs were marked
