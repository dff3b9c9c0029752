"""The (β1, β2) grid: the diagonal binomial test of arXiv 2601.21739, the local dip test, the validation
tests, the ω1 table, the protocols and `gsibench grid`."""

import itertools
import math

import pandas as pd
import pytest

from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.measure.metrics import success_tail
from gsibench.reproductions.grid import (
    DIP_COLUMNS,
    GRID_COLUMNS,
    TEST_COLUMNS,
    TESTS_COLUMNS,
    best_cells,
    diagonal_test,
    diagonal_trials,
    dip_trials,
    grid_table,
    grid_tests,
    tidy_runs,
)
from gsibench.reproductions.grid_design import PAPER, fine_pairs, grid_specs, square_pairs, steps_needed
from gsibench.tracking.store import Tracker

BETAS = (0.9, 0.99, 0.999)


def runs(omega, seeds=(0, 1, 2), diverged=(), task="t", pairs=None, score=lambda b1, b2, s: 0.5):
    """A tidy frame; ``omega(b1, b2, seed)`` gives ω1, ``score`` the validation score, ``diverged`` lists
    (b1, b2, seed) that diverged; ``pairs`` defaults to the square grid of BETAS."""
    pairs = pairs or list(itertools.product(BETAS, BETAS))
    rows = [{"task": task, "beta1": b1, "beta2": b2, "seed": s, "omega1": omega(b1, b2, s),
             "val_score": score(b1, b2, s), "diverged": (b1, b2, s) in diverged}
            for (b1, b2), s in itertools.product(pairs, seeds)]
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
    frame["omega1_scaled"] = frame["omega1"] / 10
    table = grid_table(frame).set_index(["beta1", "beta2"])
    assert table.loc[(0.9, 0.99), "omega1_scaled"] == pytest.approx(0.015)
    assert list(grid_table(frame).columns) == list(GRID_COLUMNS)
    assert table.loc[(0.9, 0.9), "omega1"] == pytest.approx(0.2)
    assert table.loc[(0.9, 0.9), "omega1_std"] == pytest.approx(0.1)
    assert table.loc[(0.9, 0.99), "omega1"] == pytest.approx(0.15)
    assert table.loc[(0.9, 0.99), "diverged_frac"] == pytest.approx(1 / 3)


def test_best_cell_respects_the_score_direction():
    table = pd.DataFrame({"task": ["acc", "acc", "loss", "loss"], "beta1": [0.9, 0.99] * 2, "beta2": [0.9] * 4,
                          "omega1": [0.1] * 4, "omega1_std": [0.0] * 4, "omega1_scaled": [0.01] * 4,
                          "val_score": [0.8, 0.9, 2.0, 1.5],
                          "diverged_frac": [0.0] * 4})
    best = best_cells(table, {"acc": True, "loss": False}).set_index("task")["beta1"]
    assert best["acc"] == 0.99 and best["loss"] == 0.99
    table.loc[1, "val_score"] = math.nan  # a diverged cell has no score and cannot be best
    assert best_cells(table, {"acc": True}).iloc[0]["beta1"] == 0.9


def test_grid_specs_set_both_betas_and_refuse_a_beta_in_the_base_spec():
    specs = grid_specs(square_pairs((0.9, 0.99)), "adam[eps=1e-10]", lr=3e-4)
    assert specs[1] == "adam[beta1=0.9,beta2=0.99,eps=1e-10,lr=0.0003]"
    with pytest.raises(ValueError):
        grid_specs(square_pairs((0.9,)), "adam[beta1=0.5]")
    # weight decay goes in only where the spec has none
    assert grid_specs([(0.9, 0.9)], "adam", weight_decay=1e-4) == ["adam[beta1=0.9,beta2=0.9,weight_decay=0.0001]"]
    assert grid_specs([(0.9, 0.9)], "adam[weight_decay=0]", weight_decay=1e-4)[0].endswith("weight_decay=0]")


def test_steps_cover_three_memories_of_the_slowest_average():
    assert steps_needed(square_pairs((0.9, 0.99, 0.999))) == 3000  # 3/(1 − 0.999), not 3001 from rounding
    assert steps_needed(square_pairs((0.9, 0.968, 0.99, 0.9968, 0.999))) == 3000
    assert steps_needed(square_pairs((0.9, 0.9968))) == 938  # 3/0.0032 = 937.5
    assert steps_needed(fine_pairs((0.99,))) == 600  # the scan reaches 1 − β2 = 0.01/2


def test_fine_scan_puts_admissible_neighbours_around_the_diagonal():
    pairs = fine_pairs((0.9, 0.99))
    row = [b2 for b1, b2 in pairs if b1 == 0.9]
    assert row == [0.8, 0.85857864, 0.9, 0.92928932, 0.95]  # 1 − β2 = 0.1·√2^j, j = 2 … −2
    assert row[1] >= 0.9**2 > row[0]  # the nearest lower neighbour keeps β1 < √β2, the next one does not
    assert fine_pairs((0.99,))[1][1] == pytest.approx(1 - 0.01 * 2**0.5, abs=1e-8)
    with pytest.raises(UsageError):
        fine_pairs((0.3,))  # β2 = 1 − 2·0.7 < 0


def test_paper_protocol_has_the_authors_window_and_warm_up():
    assert (PAPER.omega_window, PAPER.omega_warmup(3000), PAPER.lr_warmup) == (200, 150, 0.2)
    assert (PAPER.weight_decay_for("char-gpt"), PAPER.weight_decay_for("digits-mlp")) == (1e-4, 1e-3)


FIVE = (0.9, 0.968, 0.99, 0.9968, 0.999)


def test_local_dip_leaves_out_neighbours_below_beta1_squared():
    """On the paper's 5×5 grid every lower neighbour has β2 < β1² (1 − β2 ≈ 3.2(1 − β1) > 2(1 − β1)): four
    cells left out, each row compares the diagonal with the cell above it only (p0 = 1/2)."""
    frame = runs(lambda b1, b2, s: 1.0 + abs(b2 - b1), pairs=square_pairs(FIVE), seeds=(0, 1))
    trials, excluded = dip_trials(frame)
    assert list(trials.columns) == list(DIP_COLUMNS)
    assert sorted(zip(excluded["beta1"], excluded["beta2"])) == [(0.968, 0.9), (0.99, 0.968), (0.9968, 0.99),
                                                                 (0.999, 0.9968)]
    assert trials["beta2_below"].isna().all()
    tested = trials[trials["dip"].notna()]
    assert len(tested) == 8 and tested["dip"].all()  # β1 = 0.999 has no neighbour left: no trial
    test = grid_tests(frame, {"t": True})[0].set_index("test")
    assert list(grid_tests(frame, {"t": True})[0].columns) == list(TESTS_COLUMNS)
    assert test.loc["local_dip", ["successes", "trials", "excluded"]].tolist() == [8, 8, 4]
    assert test.loc["local_dip", "p_value"] == pytest.approx(0.5**8)


def test_local_dip_fails_when_the_minimum_sits_near_beta1_squared():
    """A fine scan where ω1 is smallest at the lower neighbour (the "smallest admissible β2 wins" picture):
    no dip in any row, p = 1; with both neighbours compared p0 = 1/3."""
    pairs = fine_pairs((0.9, 0.95, 0.99))
    below = {b1: sorted(b2 for a, b2 in pairs if a == b1)[1] for b1 in (0.9, 0.95, 0.99)}
    frame = runs(lambda b1, b2, s: 0.1 if b2 == below[b1] else 1.0 + abs(b2 - b1), pairs=pairs)
    test = grid_tests(frame, {"t": True})[0].set_index("test")
    assert test.loc["local_dip", ["successes", "trials", "excluded"]].tolist() == [0, 9, 0]
    assert test.loc["local_dip", "expected"] == pytest.approx(3.0)
    assert test.loc["local_dip", "p_value"] == 1.0
    assert test.loc["row_minimum", "successes"] == 0


def test_a_diverged_diagonal_never_dips_and_a_diverged_neighbour_always_loses():
    pairs = fine_pairs((0.9,))
    frame = runs(lambda b1, b2, s: 1.0, pairs=pairs, seeds=(0, 1),
                 diverged={(0.9, 0.9, 0), (0.9, 0.92928932, 1)})
    trials = dip_trials(frame)[0].set_index("seed")
    assert not trials.loc[0, "dip"] and trials.loc[1, "dip"]


def test_smoothest_is_best_and_the_papers_validation_test():
    """Per row and seed, p0 = 1/5 on a 5×5 grid; the authors' ResNet 5×5 gave the diagonal the best
    validation loss in 2 of 15 trials, p = 0.833 (paper_artifacts/tables/grid5/hypothesis_tests.csv)."""
    def loss(b1, b2, s):  # lowest at β2 = 0.99 in every row; the diagonal is best in rows 0.99 (all seeds)
        return 1.0 + abs(b2 - 0.99) + (0.5 if (b1, s) == (0.9, 0) else 0.0)

    frame = runs(lambda b1, b2, s: 0.1 + abs(b2 - 0.99), pairs=square_pairs(FIVE), score=loss)
    test = grid_tests(frame, {"t": False})[0].set_index("test")
    assert test.loc["smoothest_is_best", ["successes", "trials"]].tolist() == [15, 15]
    assert test.loc["diagonal_is_best", ["successes", "trials"]].tolist() == [3, 15]
    assert test.loc["diagonal_is_best", "p_value"] == pytest.approx(0.6020, abs=1e-4)  # P(X ≥ 3), X ~ B(15, 1/5)
    assert success_tail(2, [1 / 5] * 15) == pytest.approx(0.8329, abs=1e-4)  # the authors' 2/15
    frame.loc[frame["beta1"] == 0.9, "val_score"] *= -1  # now 0.9 row: best = largest loss -> no match
    assert grid_tests(frame, {"t": False})[0].set_index("test").loc["smoothest_is_best", "successes"] == 12


def test_score_ties_raise_the_null_probability_of_a_success():
    """Accuracies tie: with two of three cells tied for the best, a random cell is among them with
    probability 2/3, not 1/3, so p0 follows the ties (here every trial has b = 2, a = 1)."""
    frame = runs(lambda b1, b2, s: 0.1 if b1 == b2 else 0.5 + abs(b1 - b2),
                 score=lambda b1, b2, s: 0.9 if b2 != 0.999 else 0.8)
    test = grid_tests(frame, {"t": True})[0].set_index("test")
    assert test.loc["smoothest_is_best", ["successes", "trials"]].tolist() == [6, 9]  # rows 0.9, 0.99
    assert test.loc["smoothest_is_best", "expected"] == pytest.approx(9 * 2 / 3)
    assert test.loc["diagonal_is_best", "p_value"] == pytest.approx(success_tail(6, [2 / 3] * 9))


def test_grid_command_end_to_end_writes_the_csvs_and_resumes(tmp_path, tracking_uri, capsys):
    out = tmp_path / "grid"
    args = ["grid", "--task", "quadratic", "--betas", "0.9,0.99", "--seeds", "1", "--steps", "20",
            "--out", str(out), "--tracking-uri", tracking_uri, "--experiment", "g", "--jobs", "1"]
    assert main(args) == 0
    grid = pd.read_csv(out / "grid.csv")
    test = pd.read_csv(out / "grid_test.csv")
    dip = pd.read_csv(out / "grid_dip.csv")
    assert list(grid.columns) == ["protocol", *GRID_COLUMNS] and len(grid) == 4
    assert list(test.columns) == ["protocol", *TESTS_COLUMNS] and len(test) == 4
    assert list(dip.columns) == ["protocol", *DIP_COLUMNS] and len(dip) == 2
    assert (grid["protocol"] == "quick").all() and (test["protocol"] == "quick").all()
    assert test.set_index("test").loc["row_minimum", "trials"] == 2 and grid["omega1"].notna().all()
    assert (grid["omega1_scaled"] > 0).all()
    assert (out / "grid_quadratic.png").stat().st_size > 1000
    assert len(Tracker(tracking_uri, "g").runs()) == 4
    printed = capsys.readouterr()
    assert "20 steps is shorter than 3/(1 − max β2) = 300" in printed.err.replace("\n", " ")
    assert "local_dip" in printed.out and "(0.99, 0.9)" in printed.out  # the left-out neighbour is named

    assert main(args) == 0  # everything is in MLflow already: nothing reruns, same numbers
    assert "4 already in MLflow" in capsys.readouterr().err.replace("\n", " ")
    assert len(Tracker(tracking_uri, "g").runs()) == 4
    pd.testing.assert_frame_equal(pd.read_csv(out / "grid.csv"), grid)  # scale-free ω1 from the stored traces


def test_paper_protocol_cells_carry_init_schedule_weight_decay_and_window(tmp_path, tracking_uri):
    out = tmp_path / "paper"
    assert main(["grid", "--task", "digits-mlp", "--betas", "0.9,0.99", "--seeds", "1", "--steps", "40",
                 "--protocol", "paper", "--out", str(out), "--tracking-uri", tracking_uri, "--experiment", "p",
                 "--jobs", "1"]) == 0
    settings = pd.read_csv(out / "grid_settings.csv").iloc[0]
    assert (settings["protocol"], settings["schedule"], settings["init"]) == ("paper", "warmup-cosine", "sinusoidal")
    assert (settings["weight_decay"], int(settings["omega_window"]), int(settings["omega_warmup"])) == (1e-3, 200, 2)
    params = [run.data.params for run in Tracker(tracking_uri, "p").runs()]
    assert len(params) == 4
    assert {(p["omega_window"], p["omega_warmup"], p["opt.weight_decay"], p["task.init"], p["warmup"])
            for p in params} == {("200", "2", "0.001", "sinusoidal", "0.2")}
    assert (pd.read_csv(out / "grid.csv")["protocol"] == "paper").all()


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "paper", "--init", "default"], "belong to the quick protocol"),
    (["--betas", "0.9,1.0"], "outside [0.0, 1.0)"),
    (["--betas", "6x6"], "'6x6' is not a number"),
    (["--fine", "--betas", "0.2"], "use rows with"),
])
def test_grid_command_refuses_bad_settings_before_training(extra, message, tracking_uri, capsys, tmp_path):
    assert main(["grid", "--task", "quadratic", *extra, "--out", str(tmp_path), "--tracking-uri", tracking_uri]) == 2
    assert message in capsys.readouterr().err


def test_named_paper_grids():
    from gsibench.cli.grid import betas_from_args

    assert betas_from_args("5x5") == [0.9, 0.968, 0.99, 0.9968, 0.999]
    assert betas_from_args("4x4") == [0.9, 0.95, 0.99, 0.999]
    assert betas_from_args("0.5,0.6") == [0.5, 0.6]
