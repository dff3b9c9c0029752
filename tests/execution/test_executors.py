"""Executors: the process pool and Ray give the local executor's numbers; a dying worker fails only its cell."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from gsibench.battery.spec import Battery
from gsibench.core.errors import UsageError
from gsibench.execution.driver import run_battery
from gsibench.execution.executors import LocalExecutor, PoolExecutor, RayExecutor, make_executor
from gsibench.execution.spool import Spool
from gsibench.tracking.store import Tracker

SMALL = Battery(optimizers=["adam", "lion"], tasks=["oracle", "digits-mlp[width=16]"],
                perturbations=["step:at=0.5,factor=10"], seeds=[0], steps=40)


def assert_same_results(results, reference) -> None:
    """Same cells, same status, bit-identical series and summaries (same seed ⇒ same numbers)."""
    assert set(results) == set(reference)
    for key, result in results.items():
        expected = reference[key]
        assert result.status == expected.status == "finished", result.error
        assert set(result.series) == set(expected.series)
        for name, values in result.series.items():
            np.testing.assert_array_equal(values, expected.series[name], err_msg=f"{result.cell.label()} {name}")
        np.testing.assert_array_equal([result.omega1, result.omega2, result.travel, result.val_score],
                                      [expected.omega1, expected.omega2, expected.travel, expected.val_score])
        np.testing.assert_array_equal(result.final_params, expected.final_params)


@pytest.fixture(scope="module")
def local_results():
    cells, _ = SMALL.plan()
    return {r.cell.key: r for r in LocalExecutor().run(cells)}


def test_pool_gives_the_local_numbers(local_results):
    cells, _ = SMALL.plan()
    order = []
    results = {}
    for result in PoolExecutor(jobs=2).run(cells):
        order.append(result.cell.key)
        results[result.cell.key] = result
    assert len(order) == len(cells) == 8  # each cell exactly once
    assert_same_results(results, local_results)


def write_plugins(folder) -> None:
    """Two optimizers that end their process: one by import path, one @register'ed (needs ``imports``)."""
    (folder / "dying_opt.py").write_text(textwrap.dedent('''
        import os, signal
        import torch
        from gsibench.optimizers.registry import register

        class ExitingSGD(torch.optim.SGD):
            """Calls os._exit(7) in its third step, like a plugin that kills its process."""
            def __init__(self, params, lr=0.1):
                super().__init__(params, lr=lr)
                self.calls = 0

            def step(self, closure=None):
                self.calls += 1
                if self.calls == 3:
                    os._exit(7)
                return super().step(closure)

        @register("test-segfaulting-sgd", defaults={"lr": 0.1})
        def segfaulting_sgd(params, lr):
            class Doomed(torch.optim.SGD):
                def step(self, closure=None):
                    os.kill(os.getpid(), signal.SIGKILL)
            return Doomed([p.tensor for p in params], lr=lr)
    '''))


def test_a_dying_worker_fails_only_its_cell_and_the_battery_finishes(tmp_path, monkeypatch):
    write_plugins(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    battery = Battery(optimizers=["dying_opt:ExitingSGD", "adam", "test-segfaulting-sgd", "signsgd"],
                      tasks=["oracle"], perturbations=["step:at=0.5,factor=10"], seeds=[0, 1], steps=30,
                      imports=["dying_opt"])
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "deaths")
    outcome = run_battery(battery, tracker, PoolExecutor(jobs=2), spool=Spool(tmp_path / "spool"))

    assert outcome.ran == len(outcome.cells) == 4 * 2 * 2
    failed = {cell.key for cell in outcome.failed}
    assert failed == {c.key for c in outcome.cells if c.optimizer in ("dying_opt:ExitingSGD", "test-segfaulting-sgd")}
    runs = tracker.runs()
    assert len(runs) == 16 and len({r.data.tags["cell_key"] for r in runs}) == 16
    for run in runs:
        optimizer = run.data.params["optimizer"]
        if optimizer in ("adam", "signsgd"):
            assert run.info.status == "FINISHED"
            continue
        assert run.info.status == "FAILED"
        traceback = tracker.client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path))
        text = open(traceback).read()
        expected = "exited with code 7" if optimizer == "dying_opt:ExitingSGD" else "killed by signal 9"
        assert expected in text and "other cells were not affected" in text
    # the survivors' numbers are the in-process ones
    survivors = [c for c in outcome.cells if c.optimizer in ("adam", "signsgd")]
    local = {r.cell.key: r for r in LocalExecutor().run(survivors)}
    pooled = {r.cell.key: r for r in PoolExecutor(jobs=2).run(survivors)}
    assert_same_results(pooled, local)


def test_make_executor_choices_and_errors():
    assert isinstance(make_executor("local"), LocalExecutor)
    assert isinstance(make_executor("local", jobs=1), LocalExecutor)
    pool = make_executor("local", jobs=3)
    assert isinstance(pool, PoolExecutor) and pool.jobs == 3
    assert make_executor("pool", jobs=1).jobs == 1
    assert PoolExecutor(jobs=64).threads == 1  # never fewer than one thread, never more than cores // jobs
    assert PoolExecutor(jobs=1).threads == max(1, len(os.sched_getaffinity(0)))
    with pytest.raises(UsageError, match="unknown executor 'rey'. Did you mean 'ray'"):
        make_executor("rey")
    with pytest.raises(UsageError, match="--address is for --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(UsageError, match="--jobs must be a positive integer"):
        make_executor("pool", jobs=0)
    with pytest.raises(UsageError, match="fork after torch is unsafe"):
        PoolExecutor(jobs=2, start_method="fork")


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray (2 CPUs) for the module: starting one costs about 5 s."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    assert RayExecutor(jobs=2).started  # a local Ray, started as `gsibench run --executor ray` starts it
    yield ray
    ray.shutdown()


def test_a_local_rays_workers_are_not_niced(ray_cluster):
    """Ray's default worker niceness (15) starved cells beside any busy process until they timed out."""
    def niceness() -> int:  # nested: sent by value (the workers cannot import the test module)
        return os.nice(0)

    assert ray_cluster.get(ray_cluster.remote(niceness).remote()) == os.nice(0)


def test_ray_gives_the_local_numbers(ray_cluster, local_results):
    cells, _ = SMALL.plan()
    executor = RayExecutor()
    assert not executor.started  # joined the running cluster, will not shut it down
    results = {r.cell.key: r for r in executor.run(cells)}
    assert len(results) == len(cells)
    assert_same_results(results, local_results)


def test_ray_battery_logs_every_cell_once(ray_cluster, tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "ray")
    outcome = run_battery(SMALL, tracker, make_executor("ray"), spool=Spool(tmp_path / "spool"))
    assert outcome.ran == 8 and not outcome.failed
    runs = tracker.runs("attributes.status = 'FINISHED'")
    assert sorted(r.data.tags["cell_key"] for r in runs) == sorted(c.key for c in outcome.cells)
    sensitivity = {r.data.params["optimizer"]: r.data.metrics["sensitivity"] for r in runs
                   if r.data.tags["kind"] == "perturbed" and r.data.params["task"] == "oracle"}
    assert sensitivity["adam"] > 1e-3 and sensitivity["lion"] < 1e-6  # Lion's sign update ignores the scale


def test_ray_fails_a_cell_past_its_time_limit_and_goes_on(ray_cluster):
    """The limit counts from submission, so it includes a fresh Ray worker's start (imports: seconds)."""
    battery = Battery(optimizers=["tests.plugins.hanging_opt:HangingSGD", "adam"], tasks=["oracle"],
                      perturbations=["none"], seeds=[0], steps=20)
    cells, _ = battery.plan()
    results = list(RayExecutor(timeout=20.0).run(cells))
    assert len(results) == len(cells) == 2
    for result in results:
        if result.cell.optimizer == "adam":
            assert result.status == "finished", result.error
        else:
            assert result.status == "failed" and result.info["failure"] == "timeout", result.error


def test_cli_executor_options(monkeypatch):
    from gsibench.cli.options import executor_from_args
    from gsibench.cli.parser import build_parser
    from gsibench.execution.executors import available_cores

    parser = build_parser()
    plain = parser.parse_args(["run", "--optimizers", "adam"])
    monkeypatch.setenv("GSIBENCH_JOBS", "1")
    assert isinstance(executor_from_args(plain), LocalExecutor)
    monkeypatch.setenv("GSIBENCH_JOBS", "3")
    assert executor_from_args(plain).jobs == 3
    monkeypatch.delenv("GSIBENCH_JOBS")
    default = executor_from_args(plain)  # every core: the pool, unless this machine has one core
    assert (default.jobs == available_cores()) if available_cores() > 1 else isinstance(default, LocalExecutor)
    pool = executor_from_args(parser.parse_args(["run", "--executor", "pool", "--jobs", "1"]))
    assert isinstance(pool, PoolExecutor) and pool.jobs == 1
    monkeypatch.setenv("GSIBENCH_JOBS", "many")
    with pytest.raises(UsageError, match="GSIBENCH_JOBS must be a positive integer"):
        executor_from_args(plain)
