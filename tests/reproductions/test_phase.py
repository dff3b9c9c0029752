"""Adam's phase map on the finite sum (Zhang et al. 2022): the batched engine, the criteria, the schedules,
the command."""

import numpy as np
import pandas as pd
import pytest

from gsibench.battery.spec import Battery
from gsibench.cli import main
from gsibench.execution.runner import run_cell
from gsibench.reproductions.phase import (
    BOUNDARY_COLUMNS,
    COUNT_COLUMNS,
    DRIFT_T,
    PHASE_COLUMNS,
    RUN_COLUMNS,
    adam_spec,
    batched_phase,
    beta_grid,
    boundary,
    cell_row,
    diverged,
    diverged_counts,
    drift_t,
    phase_table,
    task_spec,
)
from gsibench.tasks.finite_sum import optimal_value, position_from_loss
from gsibench.tracking.store import Tracker


def test_beta_grid_spans_the_plane_and_crowds_near_one():
    beta1s, beta2s = beta_grid(20)
    assert beta1s[0] == 0 and beta1s[-1] == 0.95 and beta2s[0] == 0 and beta2s[-1] == 0.9999
    assert np.all(np.diff(beta2s) > 0) and (beta2s > 0.99).sum() >= 7


def test_task_spec_keeps_other_options():
    assert task_spec("finite-sum[sampling='replacement']", 5) == "finite-sum[n=5,sampling='replacement']"


def test_the_two_criteria():
    runs = pd.DataFrame({"n": 10, "flagged": [True, False, False, False, False, False],
                         "suboptimality": [0.1, np.nan, 1.2, 1.0, 0.5, 0.01], "initial": 1.1,
                         "drift_t": [np.nan, np.nan, 0.5, 4.0, -9.0, 4.0],
                         "x_end": [np.nan, np.nan, 0.2, 0.5, 0.3, -1.02]})
    assert diverged(runs, "worse").tolist() == [True, True, True, False, False, False]
    # the last run rises, but ends on the wall (x < −1), near x* = −1.1: not divergence
    assert diverged(runs, "drift").tolist() == [True, True, False, True, False, False]
    with pytest.raises(ValueError):
        diverged(runs, "ends-high")


def test_boundary_reads_the_edge_of_the_region():
    table = pd.DataFrame({"n": 5, "beta1": [0.0] * 4 + [0.9] * 4, "beta2": [0.0, 0.5, 0.9, 0.99] * 2,
                          "seeds": 3, "diverged_frac": [1, 1 / 3, 0, 0, 1, 0, 0, 0]})
    row = boundary(table).iloc[0]
    assert (row["max_beta2_diverged"], row["beta1_0_last_diverged"], row["beta1_0_first_converged"]) == (0.5, 0.5, 0.9)
    assert row["diverged_with_beta1_below_sqrt_beta2"] == 1  # (0, 0.5); at β2 = 0, β1 < √β2 fails
    assert list(boundary(table).columns) == list(BOUNDARY_COLUMNS)


def test_drift_t_reads_the_trend_of_the_second_half():
    steps, block = 200, 5
    k = np.arange(steps, dtype=float)[:, None]
    wobble = np.sin(k * 2.0)  # a deterministic oscillation inside each block
    x = np.hstack([0.01 * k + wobble, -0.01 * k + wobble, wobble, np.where(k < 100, 5.0 - 0.05 * k, 0.0) + wobble,
                   0.001 * k])
    t = drift_t(x, block)
    assert t[0] > DRIFT_T and t[1] < -DRIFT_T and abs(t[2]) < DRIFT_T  # rising, falling, flat
    assert abs(t[3]) < DRIFT_T  # fell in the first half only: not rising over the second half
    assert t[4] > 1e6  # a straight rise: residuals of float rounding only
    assert np.isnan(drift_t(x[:10], block)).all()  # fewer than three blocks


def test_position_from_loss_inverts_every_component():
    x = np.linspace(-3.9, 3.0, 70)  # the inversion is unique for x > −1 − n
    for n in (3, 10):
        for slope in (float(n), -1.0):
            loss = slope * x + 0.5 * np.maximum(-1.0 - x, 0.0) ** 2
            assert np.allclose(position_from_loss(loss, np.full_like(x, slope)), x, atol=1e-9)


@pytest.mark.parametrize("beta1, beta2", [(0.0, 0.5), (0.9, 0.999), (0.5, 0.9), (0.95, 0.3)])
def test_batched_engine_matches_the_runner_cell_by_cell(beta1, beta2):
    """Same float32 arithmetic, same component order: the final gap agrees to 1e-5 and the drift statistic,
    read from the runner's losses by position_from_loss (exact to float32 rounding of x), to 1e-3."""
    batched = batched_phase("finite-sum", 5, [beta1], [beta2], seed=3, steps=300).iloc[0]
    cell = Battery(optimizers=[adam_spec(beta1, beta2, 0.1)], tasks=[task_spec("finite-sum", 5)],
                   perturbations=[], seeds=[3], steps=300, device="cpu").plan()[0][0]
    row = cell_row(cell, run_cell(cell))
    assert bool(batched["flagged"]) == row["flagged"]
    # both engines evaluate f(x) − f* in float32 by different programs (and may end a last bit apart in x):
    # a few ulps of |f(x)| (8 allowed), and x itself to a few ulps of |x|
    f_x = abs(row["suboptimality"] + optimal_value(5))
    assert abs(batched["suboptimality"] - row["suboptimality"]) <= 8 * np.spacing(np.float32(f_x))
    assert abs(batched["x_end"] - row["x_end"]) <= 8 * np.spacing(np.float32(abs(row["x_end"])))
    assert batched["drift_t"] == pytest.approx(row["drift_t"], rel=1e-3, abs=1e-3)
    assert batched["initial"] == row["initial"] == pytest.approx(1.1)


def test_the_diverged_region_grows_with_n():
    """6×6 grid, 1,000 steps, seed 0, drift criterion: the count rises strictly with n and stays below
    the whole grid (β2 near 1 converges)."""
    beta1s, beta2s = beta_grid(6)
    runs = pd.concat([batched_phase("finite-sum", n, beta1s, beta2s, seed=0, steps=1000) for n in (3, 6, 12)])
    counts = diverged_counts(phase_table(runs))
    assert list(counts.columns) == list(COUNT_COLUMNS)
    cells = counts["diverged_cells"].tolist()
    assert cells[0] < cells[1] < cells[2]
    assert cells[0] >= 1 and cells[2] < 36


def test_inverse_sqrt_and_constant_schedules_give_the_same_map_under_the_drift_criterion():
    """8×8 grid, 2,000 steps, seed 0, n = 5, 10, 20. Under the drift criterion the two schedules may
    disagree only on boundary cells whose trend is within noise: at most 2 of 64 cells per n (measured: 0,
    0, 0 cells differ; 11, 20, 30 diverge under both). The old criterion cannot do this: under lr/√k the
    early transient is never undone, and it flags 63 of 64 cells at n = 10 (20 under a constant lr)."""
    beta1s, beta2s = beta_grid(8)
    maps = {schedule: pd.concat([batched_phase("finite-sum", n, beta1s, beta2s, seed=0, steps=2000,
                                               schedule=schedule) for n in (5, 10, 20)])
            for schedule in ("constant", "inverse-sqrt")}
    tables = {schedule: phase_table(runs).set_index(["n", "beta1", "beta2"]) for schedule, runs in maps.items()}
    differ = (tables["constant"]["diverged_frac"] != tables["inverse-sqrt"]["diverged_frac"]).groupby("n").sum()
    assert differ.max() <= 2, differ.to_dict()
    counts = diverged_counts(tables["constant"].reset_index()).set_index("n")["diverged_cells"]
    assert counts[5] < counts[10] < counts[20]
    worse = diverged_counts(phase_table(maps["inverse-sqrt"], "worse")).set_index("n")["diverged_cells"]
    assert worse[10] - counts[10] > 20


def test_phase_command_batched_and_cells_engines_agree(tmp_path, tracking_uri, capsys):
    common = ["--n", "3,6", "--grid", "2", "--steps", "120", "--seeds", "1", "--tracking-uri", tracking_uri,
              "--jobs", "1"]
    assert main(["phase", *common, "--out", str(tmp_path / "b"), "--experiment", "pb"]) == 0
    batched = pd.read_csv(tmp_path / "b" / "phase.csv")
    assert list(batched.columns) == [*PHASE_COLUMNS, "schedule", "criterion"] and len(batched) == 8
    runs = pd.read_csv(tmp_path / "b" / "phase_runs.csv")
    assert list(runs.columns) == [*RUN_COLUMNS, "schedule", "criterion"]
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
    assert batched.set_index(["n", "beta1", "beta2"])["diverged_frac"].to_dict() == {
        (n, b1, b2): float(b1 == 0 and b2 == 0) for n in (3, 6) for b1 in (0.0, 0.95) for b2 in (0.0, 0.9999)}
    assert "1 (n=3) → 1 (n=6)" in capsys.readouterr().out


def test_phase_command_refuses_a_task_without_n_before_training(tmp_path, tracking_uri, capsys):
    assert main(["phase", "--task", "quadratic", "--engine", "cells", "--out", str(tmp_path),
                 "--tracking-uri", tracking_uri]) == 2
    assert "task 'quadratic' has no option 'n'" in capsys.readouterr().err
