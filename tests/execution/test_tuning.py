"""The tuning protocol: the lr grid, the choice rule, the sweep plan, and the sweep cached in MLflow."""

from __future__ import annotations

import math

import pytest

from gsibench.battery.spec import Battery
from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.execution.executors import LocalExecutor
from gsibench.execution.tuning import (
    MAX_EXTEND,
    TUNE_SEED,
    choose_lr,
    extend_grid,
    lr_grid,
    plan_sweep,
    tune,
    tuning_experiment,
)
from gsibench.tracking.runs import runs_frame
from gsibench.tracking.store import Tracker


def test_lr_grid_is_log_spaced_around_the_default():
    assert lr_grid(1e-3) == [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2]
    assert lr_grid(0.02, points=3) == [0.002, 0.02, 0.2]
    assert lr_grid(0.5, points=1) == [0.5]
    ratios = [b / a for a, b in zip(lr_grid(1e-3, 9), lr_grid(1e-3, 9)[1:])]
    assert all(r == pytest.approx(10**0.25, rel=1e-2) for r in ratios)


def test_extend_grid_steps_outward_from_an_end():
    grid = lr_grid(1e-3)
    assert extend_grid(grid, 1e-2, 1e-3) == 0.0316 and extend_grid(grid, 1e-4, 1e-3) == 3.16e-5
    assert extend_grid(grid + [0.0316], 0.0316, 1e-3) == 0.1  # from the exponent, not the rounded value
    assert extend_grid(grid, 1e-3, 1e-3) is None and extend_grid([1e-3], 1e-3, 1e-3) is None
    assert lr_grid(0.015625)[2] == 0.015625  # the default itself is never rounded


def test_choose_lr_direction_divergence_and_ties():
    scores = {1e-4: 0.80, 1e-3: 0.95, 1e-2: None}
    assert choose_lr(scores, higher_is_better=True, default=1e-3) == 1e-3
    assert choose_lr({1e-4: 0.3, 1e-3: 0.5, 1e-2: math.nan}, higher_is_better=False, default=1e-3) == 1e-4
    assert choose_lr({1e-4: 0.9, 1e-3: 0.9, 1e-2: 0.9}, True, default=1e-2) == 1e-2  # tie: nearest the default
    assert choose_lr({1e-4: 0.9, 1e-2: 0.9}, True, default=1e-3) == 1e-4  # equally near: the smaller
    assert choose_lr({1e-4: None, 1e-3: None}, True, default=1e-3) == 1e-3  # all diverged: default kept


def test_sweep_skips_explicit_lr_and_scoreless_tasks():
    battery = Battery(optimizers=["adam", "lion[lr=3e-5]", "adam-balanced[beta=0.99]"],
                      tasks=["oracle", "quadratic"], perturbations=["step:at=0.5,factor=10"], seeds=[0, 1],
                      steps=20, experiment="b")
    sweep = plan_sweep(battery, points=3)
    assert set(sweep.grids) == {("adam", "quadratic"), ("adam-balanced[beta=0.99]", "quadratic")}
    assert len(sweep.cells) == 6
    assert all(c.is_clean and c.seed == TUNE_SEED and c.steps == 20 and c.task == "quadratic" for c in sweep.cells)
    lrs = sorted(dict(c.hparams)["lr"] for c in sweep.cells if c.optimizer == "adam")
    assert lrs == [1e-4, 1e-3, 1e-2]
    with pytest.raises(UsageError):
        plan_sweep(battery, points=0)


class CountingExecutor(LocalExecutor):
    def __init__(self):
        self.ran = 0

    def run(self, cells):
        for result in super().run(cells):
            self.ran += 1
            yield result


def test_tune_picks_the_best_run_and_reuses_the_sweep(tracking_uri):
    battery = Battery(optimizers=["adam", "sgd"], tasks=["quadratic"], seeds=[0], steps=30, experiment="tune-test")
    executor = CountingExecutor()
    lrs = tune(battery, tracking_uri, executor, points=3)
    frame = runs_frame(Tracker(tracking_uri, tuning_experiment("tune-test")))
    assert executor.ran == len(frame) >= 6
    for optimizer in ("adam", "sgd"):
        rows = frame[frame["optimizer"] == optimizer]
        finished = rows[rows["outcome"] == "finished"]
        best = finished.loc[finished["val_score"].idxmin(), "opt.lr"]  # suboptimality: lower is better
        assert lrs[(optimizer, "quadratic")] == float(best)
    again = CountingExecutor()
    assert tune(battery, tracking_uri, again, points=3) == lrs
    assert again.ran == 0


def test_run_uses_tuned_lr_unless_no_tune(tracking_uri):
    common = ["run", "--optimizers", "adam", "--tasks", "quadratic", "--perturbations", "step:at=0.5,factor=10",
              "--seeds", "1", "--steps", "30", "--tracking-uri", tracking_uri, "--tune-points", "3"]
    assert main(common + ["--experiment", "tuned"]) == 0
    tuned = runs_frame(Tracker(tracking_uri, "tuned"))
    sweep = runs_frame(Tracker(tracking_uri, "tuned-tuning"))
    best = sweep.loc[sweep["val_score"].idxmin(), "opt.lr"]
    assert set(tuned["opt.lr"]) == {best} and len(tuned) == 2
    assert main(common + ["--experiment", "plain", "--no-tune"]) == 0
    assert set(runs_frame(Tracker(tracking_uri, "plain"))["opt.lr"]) == {"0.001"}


def test_sweep_extends_past_an_edge(tracking_uri):
    """Lion's default lr (1e-4) is far too small for the quadratic in 30 steps: the best point of the
    first grid is its top end, so the sweep steps outward until the best is inside (or the limit)."""
    battery = Battery(optimizers=["lion"], tasks=["quadratic"], seeds=[0], steps=30, experiment="edge")
    lr = tune(battery, tracking_uri, LocalExecutor(), points=3)[("lion", "quadratic")]
    frame = runs_frame(Tracker(tracking_uri, tuning_experiment("edge")))
    grid = sorted(float(x) for x in frame["opt.lr"])
    assert len(grid) > 3 and grid[-1] > 1e-3 and lr > 1e-3
    assert lr < grid[-1] or len(grid) == 3 + MAX_EXTEND
