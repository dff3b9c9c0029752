"""A real MLflow server: `gsibench server` starts one, a battery logs to it over HTTP and is read back;
the server going away mid-battery loses nothing (results spooled, written by the next run)."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gsibench.battery.spec import Battery
from gsibench.cli import main
from gsibench.execution.executors import LocalExecutor
from gsibench.tracking.server import wait_healthy
from gsibench.tracking.store import Tracker

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``gsibench server`` in a subprocess, on a SQLite file and artifact folder in ``folder``."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.db = folder / "server.db"
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "gsibench", "server", "--port", str(self.port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{self.db}",
                   "--artifacts-destination", str(self.folder / "artifacts")]
        self.log = open(self.folder / "server.log", "ab")
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_healthy(self.url, self.process, timeout=180)

    def crash(self) -> None:
        """SIGKILL the server and its workers at once, like a machine going away."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        """Ctrl-C; if its workers are still closing connections after 30 s, the whole group is killed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.crash()
        self.log.close()

    def finished(self) -> list[str]:
        with sqlite3.connect(self.db, timeout=10) as connection:
            return [row[0] for row in connection.execute("SELECT run_uuid FROM runs WHERE status = 'FINISHED'")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("server"))
    server.start()
    yield server
    server.stop()


def test_a_battery_logs_to_a_real_server_and_reads_back(server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    battery = ["--optimizers", "adam,signsgd", "--tasks", "oracle", "--perturbations", "step:at=0.5,factor=10",
               "--seeds", "1", "--steps", "40"]
    args = ["run", *battery, "--no-tune", "--jobs", "1", "--tracking-uri", server.url, "--experiment", "http"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert server.url in captured.err and "View run" not in captured.out

    tracker = Tracker(server.url, "http")
    runs = {r.data.tags["cell_key"]: r for r in tracker.runs()}
    cells, _ = Battery(optimizers=["adam", "signsgd"], tasks=["oracle"], perturbations=["step:at=0.5,factor=10"],
                       seeds=[0], steps=40).plan()
    assert set(runs) == {cell.key for cell in cells} and {r.info.status for r in runs.values()} == {"FINISHED"}
    local = {r.cell.key: r for r in LocalExecutor().run(cells)}
    for cell in cells:  # what the server holds is what the runner computed
        run = runs[cell.key]
        assert run.data.metrics["omega1"] == pytest.approx(local[cell.key].omega1, rel=1e-12)
        trace = tracker.load_trace(run.info.run_id, cell)  # the artifact, through the server's proxy
        np.testing.assert_array_equal(trace.series["update_norm"], local[cell.key].series["update_norm"])
    assert not (tmp_path / "mlruns").exists()  # artifacts went to the server, not to the client's disk
    assert any((server.folder / "artifacts").rglob("trace.npz"))


def test_server_command_refuses_bad_stores_and_busy_ports(tmp_path, capsys):
    assert main(["server", "--backend-store-uri", "mysql://x", "--port", str(free_port())]) == 2
    assert "must be sqlite:///PATH or postgresql://" in capsys.readouterr().err
    assert main(["server", "--backend-store-uri", f"sqlite:///{tmp_path}/nope/m.db"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["server", "--backend-store-uri", f"sqlite:///{tmp_path}/m.db", "--port", str(port)]) == 2
    assert "pick another --port" in capsys.readouterr().err



def test_server_lost_mid_battery_loses_nothing(server, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    slow = "tests.plugins.slow_opt:SlowSGD"
    command = [sys.executable, "-m", "gsibench", "run", "--optimizers", f"{slow},{slow}[lr=0.02]",
               "--tasks", "oracle", "--perturbations", "step:at=0.5,factor=10,noise:sigma=0.5", "--seeds", "3",
               "--steps", "60", "--no-tune", "--jobs", "1", "--tracking-uri", server.url, "--experiment", "lost"]
    before = set(server.finished())
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while len(set(server.finished()) - before) < 3:
        assert driver.poll() is None, driver.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.crash()
    _, err = driver.communicate(timeout=300)
    err = err.decode().replace("\n", " ")
    assert driver.returncode == 1 and "the tracking store failed mid-run" in err, err[-2000:]
    spooled = list((tmp_path / ".gsibench-spool").rglob("*.pkl"))
    written = len(set(server.finished()) - before)
    assert spooled and written + len(spooled) >= 2 * 3 * 3  # every cell is in the store or in the spool

    server.start()
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert "results kept in" in rerun.stderr.decode().replace("\n", " ")
    assert not (tmp_path / ".gsibench-spool").exists()
    runs = Tracker(server.url, "lost").runs("attributes.status = 'FINISHED'")
    assert Counter(Counter(r.data.tags["cell_key"] for r in runs).values()) == Counter({1: 2 * 3 * 3})


def test_two_drivers_of_one_battery_run_every_cell_exactly_once(server, tmp_path):
    """Two `gsibench run` of the same battery started together against one server: each cell's run is a
    claim, so the drivers share the cells and every cell ends with exactly one FINISHED run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    slow = "tests.plugins.slow_opt:SlowSGD"
    command = [sys.executable, "-m", "gsibench", "run", "--optimizers", f"{slow},{slow}[lr=0.02],adam,signsgd",
               "--tasks", "oracle", "--perturbations", "step:at=0.5,factor=10,noise:sigma=0.5", "--seeds", "2",
               "--steps", "60", "--no-tune", "--jobs", "1", "--tracking-uri", server.url, "--experiment", "twice"]
    drivers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    errs = []
    for driver in drivers:
        _, err = driver.communicate(timeout=600)
        errs.append(err.decode().replace("\n", " "))
        assert driver.returncode == 0, errs[-1][-2000:]
    runs = Tracker(server.url, "twice").runs()
    finished = Counter(r.data.tags["cell_key"] for r in runs if r.info.status == "FINISHED")
    cells, _ = Battery(optimizers=[slow, f"{slow}[lr=0.02]", "adam", "signsgd"], tasks=["oracle"],
                       perturbations=["step:at=0.5,factor=10", "noise:sigma=0.5"], seeds=[0, 1], steps=60).plan()
    assert len(cells) == 24 and finished == Counter({cell.key: 1 for cell in cells})
    assert all(r.info.status == "FINISHED" for r in runs)  # withdrawn claims are deleted, none left RUNNING
    ran = [int(re.search(r"24 cells: (\d+) run now", err).group(1)) for err in errs]
    assert sum(ran) == 24, errs  # the compute was shared, not doubled
    for err, own in zip(errs, ran):
        if own < 24:
            assert f"{24 - own} run by another driver" in err
    perturbed = [r for r in runs if r.data.tags["kind"] == "perturbed"]
    twins = {r.data.tags["cell_key"]: r.info.run_id for r in runs if r.data.tags["kind"] == "clean"}
    assert all(r.data.tags["twin_run_id"] == twins[r.data.tags["twin_key"]] for r in perturbed)
    assert all("sensitivity" in r.data.metrics for r in perturbed)  # compared, even with a twin from the other
