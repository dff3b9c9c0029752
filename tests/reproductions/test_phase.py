"""Adam's phase map on the finite sum (Zhang et al. 2022): the batched engine, the criterion, the command."""

import numpy as np
import pandas as pd
import pytest

from gsibench.battery.spec import Battery
from gsibench.cli import main
from gsibench.execution.runner import run_cell
from gsibench.reproductions.phase import (
    PHASE_COLUMNS,
    adam_spec,
    batched_phase,
    beta_grid,
    diverged_counts,
    is_diverged,
    phase_table,
    task_spec,
)
from gsibench.tasks.finite_sum import optimal_value
from gsibench.tracking.store import Tracker


def test_beta_grid_spans_the_plane_and_crowds_near_one():
    beta1s, beta2s = beta_grid(20)
    assert beta1s[0] == 0 and beta1s[-1] == 0.95 and beta2s[0] == 0 and beta2s[-1] == 0.9999
    assert np.all(np.diff(beta2s) > 0) and (beta2s > 0.99).sum() >= 7


def test_task_spec_keeps_other_options():
    assert task_spec("finite-sum[sampling='replacement']", 5) == "finite-sum[n=5,sampling='replacement']"


def test_the_criterion_is_the_tasks():
    assert is_diverged(True, 0.1, 1.1)
    assert is_diverged(False, float("nan"), 1.1)
    assert is_diverged(False, 1.2, 1.1) and not is_diverged(False, 1.0, 1.1)


@pytest.mark.parametrize("beta1, beta2", [(0.0, 0.5), (0.9, 0.999), (0.5, 0.9), (0.95, 0.3)])
def test_batched_engine_matches_the_runner_cell_by_cell(beta1, beta2):
    batched = batched_phase("finite-sum", 5, [beta1], [beta2], seed=3, steps=300).iloc[0]
    cell = Battery(optimizers=[adam_spec(beta1, beta2, 0.1)], tasks=[task_spec("finite-sum", 5)],
                   perturbations=[], seeds=[3], steps=300, device="cpu").plan()[0][0]
    result = run_cell(cell)
    initial = float(result.info["initial_suboptimality"])
    assert batched["diverged"] == is_diverged(result.diverged, result.val_score, initial)
    # both engines evaluate f(x) − f* in float32 by different programs (and may end a last bit apart in x):
    # a few ulps of |f(x)|, 8 allowed (measured: at most 1.2)
    f_x = abs(result.val_score + optimal_value(5))
    assert abs(batched["suboptimality"] - result.val_score) <= 8 * np.spacing(np.float32(f_x))


def test_the_diverged_region_grows_with_n():
    """6×6 grid, 1,000 steps, seed 0: 3, 7 and 15 diverged cells for n = 3, 6, 12 (seed 1 gives the same)."""
    beta1s, beta2s = beta_grid(6)
    runs = pd.concat([batched_phase("finite-sum", n, beta1s, beta2s, seed=0, steps=1000) for n in (3, 6, 12)])
    counts = diverged_counts(phase_table(runs))["diverged_cells"].tolist()
    assert counts[0] < counts[1] < counts[2]
    assert counts[0] >= 1 and counts[2] < 36


def test_phase_command_batched_and_cells_engines_agree(tmp_path, tracking_uri, capsys):
    common = ["--n", "3,6", "--grid", "2", "--steps", "120", "--tracking-uri", tracking_uri]
    assert main(["phase", *common, "--out", str(tmp_path / "b"), "--experiment", "pb"]) == 0
    batched = pd.read_csv(tmp_path / "b" / "phase.csv")
    assert list(batched.columns) == list(PHASE_COLUMNS) and len(batched) == 8
    assert (tmp_path / "b" / "phase.png").stat().st_size > 1000
    assert len(Tracker(tracking_uri, "pb").runs()) == 2  # one MLflow run per n
    assert main(["phase", *common, "--out", str(tmp_path / "b"), "--experiment", "pb"]) == 0
    assert len(Tracker(tracking_uri, "pb").runs()) == 2  # resumed from MLflow, nothing recomputed
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b" / "phase.csv"), batched)

    assert main(["phase", *common, "--engine", "cells", "--out", str(tmp_path / "c"), "--experiment", "pc"]) == 0
    cells = pd.read_csv(tmp_path / "c" / "phase.csv")
    assert len(Tracker(tracking_uri, "pc").runs()) == 8  # one MLflow run per cell
    pd.testing.assert_frame_equal(cells, batched)
    # β2 = 0 (Adam ≈ sign descent on one component a step) drifts away; β2 = 0.9999 converges
    assert batched.set_index(["n", "beta1", "beta2"])["diverged"].to_dict() == {
        (n, b1, b2): float(b1 == 0 and b2 == 0) for n in (3, 6) for b1 in (0.0, 0.95) for b2 in (0.0, 0.9999)}
    assert "1 (n=3) → 1 (n=6)" in capsys.readouterr().out
