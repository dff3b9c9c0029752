"""A hung or hostile plugin cannot stall the battery: cells past their time limit fail with reason
``timeout`` and the rest finish; a plugin constructor that hangs, exits or segfaults is caught by the
probe build before training, within the same limit."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest
from mlflow.tracking import MlflowClient

from gsibench.battery.limits import STARTUP_SECONDS, cell_limit, parse_timeout, probe_limit
from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.execution.executors import LocalExecutor, PoolExecutor, make_executor
from gsibench.tracking.store import Tracker

HANGING = "tests.plugins.hanging_opt:HangingSGD"


def test_a_cell_that_hangs_in_step_fails_with_reason_timeout_and_the_rest_finish(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = time.monotonic()
    code = main(["run", "--optimizers", f"adam,{HANGING},signsgd", "--tasks", "oracle", "--perturbations",
                 "step:at=0.5,factor=10", "--seeds", "1", "--steps", "30", "--no-tune", "--jobs", "1",
                 "--cell-timeout", "3", "--tracking-uri", uri, "--experiment", "hang"])
    assert code == 1  # a failed cell; the battery finished
    assert time.monotonic() - start < 120
    err = capsys.readouterr().err.replace("\n", " ")
    assert "6 cells: 6 run now" in err and "2 failed" in err
    runs = Tracker(uri, "hang").runs()
    assert len(runs) == 6
    for run in runs:
        if run.data.params["optimizer"] == HANGING:
            assert run.info.status == "FAILED"
            assert run.data.params["info.failure"] == "timeout" and run.data.params["info.cell_timeout"] == "3"
            text = open(MlflowClient(uri).download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path))).read()
            assert text.startswith("timeout: the cell ran past its limit of 3 s")
        else:
            assert run.info.status == "FINISHED", run.data.params["optimizer"]


@pytest.mark.parametrize(("plugin", "says"), [
    ("HangingInit", "did not finish within 3 s (a hang?)"),
    ("ExitingInit", "the process exited with code 3"),
    ("SegfaultingInit", "the process was killed by signal 11"),
])
def test_a_plugin_constructor_that_never_returns_is_a_usage_error_before_training(plugin, says, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    code = main(["run", "--optimizers", f"tests.plugins.hanging_opt:{plugin}", "--tasks", "oracle", "--no-tune",
                 "--cell-timeout", "3", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"building optimizer 'tests.plugins.hanging_opt:{plugin}' on probe parameters" in err and says in err
    lines = err.splitlines()  # the battery's description, then the error as the one last line
    assert lines[-1].startswith("gsibench: error: ") and "Traceback" not in err
    assert sum(line.startswith("gsibench: error") for line in lines) == 1
    if (tmp_path / "mlflow.db").exists():  # the store is opened first (the build waits for a cell to run)
        with closing(sqlite3.connect(tmp_path / "mlflow.db")) as store:
            assert store.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # no cell ran
    assert time.monotonic() - start < 60


def test_limits_default_from_the_task_and_explicit():
    assert cell_limit("digits-mlp", 300, None) == STARTUP_SECONDS + 300 * 0.1
    assert cell_limit("cifar-resnet18", 2000, None) == STARTUP_SECONDS + 2000 * 30.0
    assert cell_limit("no-such-task", 10, None) == STARTUP_SECONDS + 10 * 1.0
    assert cell_limit("digits-mlp", 300, 5.0) == 5.0 and cell_limit("digits-mlp", 300, "off") is None
    assert probe_limit(None) == STARTUP_SECONDS and probe_limit(7.0) == 7.0 and probe_limit("off") is None
    assert parse_timeout("2.5") == 2.5 and parse_timeout("OFF") == "off" and parse_timeout(None) is None
    for bad in ("soon", "0", "-1", "inf", True):
        with pytest.raises(UsageError, match="cell-timeout"):
            parse_timeout(bad)


def test_an_explicit_limit_needs_a_worker_process():
    assert isinstance(make_executor("local", jobs=1), LocalExecutor)
    one = make_executor("local", jobs=1, timeout=5.0)
    assert isinstance(one, PoolExecutor) and one.jobs == 1 and one.timeout == 5.0
    assert make_executor("pool", jobs=2).timeout is None  # the default, derived per cell


def test_battery_file_key_and_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text('optimizers = ["adam"]\ntasks = ["oracle"]\ncell_timeout = "never"\n')
    assert main(["run", "b.toml", "--no-tune", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert "cell_timeout in b.toml takes a number of seconds or 'off', got 'never'" in capsys.readouterr().err
