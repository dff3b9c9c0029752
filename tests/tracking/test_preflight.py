"""Every command that touches MLflow fails fast, in one line, when the store is not there; reading never
creates a store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.tracking.preflight import check_database, check_reachable, check_readable

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def gsibench(args: list[str], cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update(PYTHONPATH=str(REPO), **env)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gsibench", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120)
    return done, time.monotonic() - start


def test_leaderboard_against_an_unreachable_server_exits_2_at_once(tmp_path):
    done, seconds = gsibench(["leaderboard", "--tracking-uri", UNREACHABLE], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"gsibench: error: MLflow tracking server '{UNREACHABLE}' is unreachable")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert seconds < 15, f"took {seconds:.1f} s"
    assert not list(tmp_path.iterdir())


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers (a hung server, a black-holing proxy)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_fails_after_the_tunable_wait(tmp_path, silent_server):
    done, seconds = gsibench(["leaderboard", "--tracking-uri", silent_server], tmp_path, GSIBENCH_STORE_TIMEOUT="1")
    assert done.returncode == 2, done.stderr
    assert "no answer within 1 s; $GSIBENCH_STORE_TIMEOUT sets the wait" in done.stderr
    assert seconds < 15, f"took {seconds:.1f} s"


def test_leaderboard_in_an_empty_folder_says_where_it_looked_and_creates_nothing(tmp_path):
    done, _ = gsibench(["leaderboard"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"nothing to read: no MLflow store at {tmp_path / 'mlflow.db'} (the default" in done.stderr
    assert not list(tmp_path.iterdir())  # no mlflow.db, no mlruns/, no leaderboard/


@pytest.mark.parametrize("command", [["run", "--optimizers", "adam", "--no-tune"], ["grid"], ["invariance"],
                                     ["phase"], ["leaderboard"]])
def test_every_command_touching_mlflow_checks_the_server_first(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    assert main([*command, "--tracking-uri", UNREACHABLE]) == 2
    assert f"MLflow tracking server '{UNREACHABLE}' is unreachable" in capsys.readouterr().err
    assert time.monotonic() - start < 15
    assert not list(tmp_path.iterdir())


def test_the_checks_themselves(tmp_path, silent_server):
    check_reachable(f"sqlite:///{tmp_path / 'absent.db'}")  # a writer may create a SQLite store
    with pytest.raises(UsageError, match="nothing to read"):
        check_readable(f"sqlite:///{tmp_path / 'absent.db'}")
    with pytest.raises(UsageError, match=r"no answer within 0.5 s"):
        check_reachable(silent_server, seconds=0.5)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(UsageError, match=f"127.0.0.1:{port}' is unreachable"):
        check_database(f"postgresql://user:secret@127.0.0.1:{port}/mlflow", seconds=2)
    check_database(f"sqlite:///{tmp_path / 'm.db'}")


def test_the_wait_must_be_a_positive_number(monkeypatch):
    monkeypatch.setenv("GSIBENCH_STORE_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="GSIBENCH_STORE_TIMEOUT must be a number"):
        check_reachable(UNREACHABLE)
