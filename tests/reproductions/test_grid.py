"""The (β1, β2) grid: the diagonal binomial test of arXiv 2601.21739, the ω1 table, `gsibench grid`."""

import itertools
import math

import pandas as pd
import pytest

from gsibench.cli import main
from gsibench.reproductions.grid import (
    GRID_COLUMNS,
    TEST_COLUMNS,
    best_cells,
    diagonal_test,
    diagonal_trials,
    grid_specs,
    grid_table,
    tidy_runs,
)
from gsibench.tracking.store import Tracker

BETAS = (0.9, 0.99, 0.999)


def runs(omega, seeds=(0, 1, 2), diverged=(), task="t"):
    """A tidy frame; ``omega(b1, b2, seed)`` gives ω1, ``diverged`` lists (b1, b2, seed) that diverged."""
    rows = [{"task": task, "beta1": b1, "beta2": b2, "seed": s, "omega1": omega(b1, b2, s), "val_score": 0.5,
             "diverged": (b1, b2, s) in diverged} for b1, b2, s in itertools.product(BETAS, BETAS, seeds)]
    return pd.DataFrame(rows)


def diagonal_best(b1, b2, seed):
    return 0.1 if b1 == b2 else 0.5 + abs(b1 - b2)


def test_nine_of_nine_diagonal_wins_gives_the_papers_p_value():
    test = diagonal_test(runs(diagonal_best), BETAS)
    assert list(test.columns) == list(TEST_COLUMNS)
    row = test.iloc[0]
    assert (row["successes"], row["trials"]) == (9, 9)
    assert row["p_value"] == pytest.approx(5.0805e-5, rel=1e-4)  # papers.md: 9/9 at p0 = 1/3 -> 5.08e-5


def test_six_of_nine_gives_0_0424():
    frame = runs(lambda b1, b2, s: 0.1 if (b1 == b2) == (s < 2) else 0.3)
    row = diagonal_test(frame, BETAS).iloc[0]
    assert (row["successes"], row["trials"]) == (6, 9)
    assert row["p_value"] == pytest.approx(0.0424, abs=1e-4)


def test_ties_count_as_successes():
    row = diagonal_test(runs(lambda b1, b2, s: 0.2), BETAS).iloc[0]
    assert row["successes"] == 9


def test_a_diverged_diagonal_is_never_a_success_and_a_diverged_neighbour_never_the_minimum():
    diverged = {(0.9, 0.9, 0)}  # diagonal with the smallest ω1 but diverged
    diverged |= {(0.99, 0.9, 1)}  # off-diagonal with a tiny ω1, but diverged: it counts as +inf
    frame = runs(lambda b1, b2, s: 0.01 if (b1, b2, s) in diverged else diagonal_best(b1, b2, s), diverged=diverged)
    trials = diagonal_trials(frame, BETAS).set_index(["beta1", "seed"])["success"]
    assert not trials[(0.9, 0)]
    assert trials[(0.99, 1)]
    assert diagonal_test(frame, BETAS).iloc[0]["successes"] == 8


def test_a_row_missing_a_cell_is_not_a_trial():
    frame = runs(diagonal_best)
    frame = frame[~((frame["beta1"] == 0.9) & (frame["beta2"] == 0.999) & (frame["seed"] == 0))]
    assert diagonal_test(frame, BETAS).iloc[0]["trials"] == 8


def test_tidy_runs_reads_mlflow_params_and_balanced_adam():
    mlflow_like = pd.DataFrame([
        {"task": "t", "perturbation": "none", "opt.beta1": "0.9", "opt.beta2": "0.99", "seed": 0, "omega1": 0.3,
         "val_score": 0.9, "outcome": "finished", "diverged": 0.0},
        {"task": "t", "perturbation": "none", "opt.beta": "0.99", "seed": 0, "omega1": 0.2, "val_score": 0.8,
         "outcome": "diverged", "diverged": 1.0},
        {"task": "t", "perturbation": "step:at=0.5,factor=10.0", "opt.beta1": "0.9", "opt.beta2": "0.9", "seed": 0,
         "omega1": 0.1, "val_score": 0.9, "outcome": "finished", "diverged": 0.0},
        {"task": "t", "perturbation": "none", "opt.lr": "0.1", "seed": 0, "omega1": 0.1, "outcome": "finished"},
    ])
    tidy = tidy_runs(mlflow_like)
    assert tidy[["beta1", "beta2"]].values.tolist() == [[0.9, 0.99], [0.99, 0.99]]
    assert tidy["diverged"].tolist() == [False, True]


def test_grid_table_averages_non_diverged_seeds_and_reports_the_diverged_fraction():
    frame = runs(lambda b1, b2, s: 0.1 * (s + 1), diverged={(0.9, 0.99, 2)})
    table = grid_table(frame).set_index(["beta1", "beta2"])
    assert list(grid_table(frame).columns) == list(GRID_COLUMNS)
    assert table.loc[(0.9, 0.9), "omega1"] == pytest.approx(0.2)
    assert table.loc[(0.9, 0.9), "omega1_std"] == pytest.approx(0.1)
    assert table.loc[(0.9, 0.99), "omega1"] == pytest.approx(0.15)
    assert table.loc[(0.9, 0.99), "diverged_frac"] == pytest.approx(1 / 3)


def test_best_cell_respects_the_score_direction():
    table = pd.DataFrame({"task": ["acc", "acc", "loss", "loss"], "beta1": [0.9, 0.99] * 2, "beta2": [0.9] * 4,
                          "omega1": [0.1] * 4, "omega1_std": [0.0] * 4, "val_score": [0.8, 0.9, 2.0, 1.5],
                          "diverged_frac": [0.0] * 4})
    best = best_cells(table, {"acc": True, "loss": False}).set_index("task")["beta1"]
    assert best["acc"] == 0.99 and best["loss"] == 0.99
    table.loc[1, "val_score"] = math.nan  # a diverged cell has no score and cannot be best
    assert best_cells(table, {"acc": True}).iloc[0]["beta1"] == 0.9


def test_grid_specs_set_both_betas_and_refuse_a_beta_in_the_base_spec():
    assert grid_specs((0.9, 0.99), "adam[eps=1e-10]", lr=3e-4)[1] == "adam[beta1=0.9,beta2=0.99,eps=1e-10,lr=0.0003]"
    with pytest.raises(ValueError):
        grid_specs((0.9,), "adam[beta1=0.5]")


def test_grid_command_end_to_end_writes_the_csvs_and_resumes(tmp_path, tracking_uri, capsys):
    out = tmp_path / "grid"
    args = ["grid", "--task", "quadratic", "--betas", "0.9,0.99", "--seeds", "1", "--steps", "20",
            "--out", str(out), "--tracking-uri", tracking_uri, "--experiment", "g"]
    assert main(args) == 0
    grid = pd.read_csv(out / "grid.csv")
    test = pd.read_csv(out / "grid_test.csv")
    assert list(grid.columns) == list(GRID_COLUMNS) and len(grid) == 4
    assert list(test.columns) == list(TEST_COLUMNS)
    assert test.iloc[0]["trials"] == 2 and grid["omega1"].notna().all()
    assert (out / "grid_quadratic.png").stat().st_size > 1000
    assert len(Tracker(tracking_uri, "g").runs()) == 4
    capsys.readouterr()

    assert main(args) == 0  # everything is in MLflow already: nothing reruns, same numbers
    assert "4 already in MLflow" in capsys.readouterr().err.replace("\n", " ")
    assert len(Tracker(tracking_uri, "g").runs()) == 4
    pd.testing.assert_frame_equal(pd.read_csv(out / "grid.csv"), grid)
