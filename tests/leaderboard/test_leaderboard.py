"""The leaderboard: statistics, tables from a real (tiny) battery in MLflow, and the page in a real browser."""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.leaderboard.build import build
from gsibench.leaderboard.links import LINK_COLUMNS, bootstrap, spearman
from gsibench.leaderboard.plots import pareto_front
from gsibench.leaderboard.scoring import add_quality, normalisers
from gsibench.leaderboard.stats import benjamini_hochberg, mean_ci, paired_pvalue, significance_ranks, tiered_ranks
from gsibench.leaderboard.tables import CSV_COLUMNS

# ---- statistics --------------------------------------------------------------------------------


def test_mean_ci_is_student_t():
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302653 / math.sqrt(3))  # t_{0.975, 2} · s/√n with s = 1
    assert mean_ci([5.0, math.nan])[:3:2] == (5.0, 1) and math.isnan(mean_ci([5.0])[1])
    assert math.isnan(mean_ci([])[0])


def test_paired_pvalue_matches_scipy_and_handles_exact_cases():
    a, b = [1.0, 2.0, 3.5], [1.2, 2.6, 3.6]
    assert paired_pvalue(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_pvalue([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0  # no difference at all
    assert paired_pvalue([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == 0.0  # deterministic task: an exact difference


def test_benjamini_hochberg_step_up():
    assert benjamini_hochberg([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04])
    assert benjamini_hochberg([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert benjamini_hochberg([0.02, 0.03, 0.04, 0.9]) == pytest.approx([0.16 / 3] * 3 + [0.9])


def test_ranks_only_where_significant():
    """A is consistently better than B and C; B and C differ by noise only: ranks 1, 2, 2.
    With 3 seeds Wilcoxon could not separate anything (minimum two-sided p = 0.25)."""
    values = {"A": {0: 0.10, 1: 0.11, 2: 0.12},
              "B": {0: 0.90, 1: 1.01, 2: 1.10},
              "C": {0: 1.00, 1: 0.95, 2: 1.12}}
    ranks, tests = significance_ranks(values, lower_is_better=True)
    assert ranks == {"A": 1, "B": 2, "C": 2}
    assert len(tests) == 3
    assert stats.wilcoxon([0.1, 0.11, 0.12], [0.9, 1.01, 1.1]).pvalue == pytest.approx(0.25)
    flipped, _ = significance_ranks(values, lower_is_better=False)
    assert flipped == {"A": 3, "B": 1, "C": 1}


def test_an_entry_with_failed_seeds_never_ranks_with_or_ahead_of_one_without():
    """B's mean is higher (one lucky seed), but it failed on a seed: A, failure-free, is ahead of it, and
    B is not tied with A. C and A are indistinguishable: a tie, marked as one rank."""
    values = {"A": {0: 0.50, 1: 0.52, 2: 0.51}, "B": {0: 0.0, 1: 3.0, 2: 0.9}, "C": {0: 0.49, 1: 0.53, 2: 0.52}}
    ranks, _ = tiered_ranks(values, {"B": 1})
    assert ranks["B"] == 3 and ranks["A"] == ranks["C"] == 1


def test_tiers_do_not_hide_significance_within_a_tier():
    values = {"A": {0: 0.9, 1: 0.91, 2: 0.92}, "B": {0: 0.1, 1: 0.11, 2: 0.12},
              "C": {0: 0.0, 1: 0.5, 2: 0.2}, "D": {0: 0.0, 1: 0.9, 2: 0.92}}
    ranks, _ = tiered_ranks(values, {"C": 1, "D": 2})
    assert ranks["A"] == 1 and ranks["B"] == 2 and ranks["C"] >= 3 and ranks["D"] >= 3


def test_pareto_front():
    points = {"strong-fragile": (1.0, 0.2), "invariant-weak": (0.6, 0.8), "both": (0.9, 0.7), "dominated": (0.5, 0.5)}
    assert pareto_front(points) == ["invariant-weak", "both", "strong-fragile"]


def test_normalised_score_in_both_directions_and_failures_score_zero():
    runs = pd.DataFrame({
        "optimizer": ["ref", "ref", "x", "x", "x", "ref", "y"],
        "task": ["acc", "acc", "acc", "acc", "acc", "loss", "loss"],
        "perturbation": ["none"] * 7,
        "outcome": ["finished"] * 3 + ["diverged", "finished", "finished", "finished"],
        "diverged": [0, 0, 0, 1, 0, 0, 0],
        "val_score": [0.9, 0.9, 0.55, math.nan, 0.12, 2.0, 3.0],
        "init_score": [0.1, 0.1, 0.1, 0.1, 0.1, 4.0, 4.0],
    })
    scales = normalisers(runs, ["acc", "loss"], reference="ref")
    assert (scales["acc"].trivial, scales["acc"].reference) == (pytest.approx(0.1), pytest.approx(0.9))
    scored = add_quality(runs, scales)
    assert scored["quality"].tolist()[:5] == pytest.approx([1.0, 1.0, 0.5625, 0.0, 0.0])
    assert scored["failure"].tolist()[:5] == ["", "", "", "diverged", "collapsed"]  # 0.12: q = 0.025 < 0.1
    assert scored["quality"].iloc[6] == pytest.approx(0.5)  # a loss: (3 - 4) / (2 - 4), lower is better
    assert normalisers(runs, ["acc"], reference="nobody") == {}


def test_spearman_and_its_stratified_form():
    x, y = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]), np.array([0.1, 0.2, 0.3, 0.05, 0.06, 0.07])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    groups = np.array(["a"] * 3 + ["b"] * 3)
    assert spearman(x, y, groups) == pytest.approx(1.0)  # within each task the order agrees exactly
    low, high = bootstrap(x, -x ** 2, None, resamples=200)
    assert low == pytest.approx(-1.0) and high == pytest.approx(-1.0)


# ---- a real battery, read back from MLflow -------------------------------------------------------

BATTERY = ["--tasks", "oracle,quadratic", "--perturbations", "step:at=0.5,factor=10,ramp:start=0.3,end=0.6,factor=100",
           "--seeds", "3", "--steps", "40", "--tune-points", "3"]
VALUES = [c for c in CSV_COLUMNS if c not in ("rank", "tie")]
"""Every number of a cell that must not depend on who else is on the board (ranks compare, so they may)."""


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """adam (the reference) and sgd first; then signsgd joins the same experiment and the board is rebuilt."""
    root = tmp_path_factory.mktemp("board")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["run", "--optimizers", "adam,sgd", *BATTERY, "--tracking-uri", uri, "--experiment", "lb"]) == 0
    before = build(uri, "lb", root / "before")
    assert main(["run", "--optimizers", "signsgd", *BATTERY, "--tracking-uri", uri, "--experiment", "lb"]) == 0
    grid = ",".join(f"adam[beta1={b1},beta2={b2}]" for b1 in (0.9, 0.99) for b2 in (0.9, 0.99))
    assert main(["run", "--optimizers", grid, "--tasks", "oracle", "--perturbations", "none", "--seeds", "2",
                 "--steps", "60", "--tracking-uri", uri, "--experiment", "grid-lb", "--no-tune"]) == 0
    written = build(uri, "lb", root / "out")
    return uri, root / "out", written, before


def test_adding_an_entry_leaves_every_other_entrys_numbers_unchanged(board):
    _, out, written, before = board
    old, new = before.cells.set_index(["optimizer", "task", "perturbation"]), written.cells.set_index(
        ["optimizer", "task", "perturbation"])
    assert set(new.index.get_level_values(0)) == {"adam", "sgd", "signsgd"}
    pd.testing.assert_frame_equal(old[[c for c in VALUES if c in old]].sort_index(),
                                  new.loc[old.index, [c for c in VALUES if c in new]].sort_index())
    numbers = ["robust_quality", "robust_quality_ci", "quality", "quality_ci", "rows_with_failures", "rows",
               "sensitivity", "divergence", "seeds"]
    pd.testing.assert_frame_equal(before.overall.set_index("optimizer").loc[["adam", "sgd"], numbers],
                                  written.overall.set_index("optimizer").loc[["adam", "sgd"], numbers])


def test_csv_has_one_row_per_cell_with_cis(board):
    _, out, _, _ = board
    table = pd.read_csv(out / "leaderboard.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert len(table) == 3 * 2 * 3 and set(table["seeds"]) == {3}
    quadratic = table[table["task"] == "quadratic"]
    assert quadratic["quality_ci"].notna().all() and quadratic["rank"].notna().all()
    reference = quadratic[(quadratic["optimizer"] == "adam") & (quadratic["perturbation"] == "none")]
    assert reference["quality"].iloc[0] == pytest.approx(1.0)  # the reference's clean score defines 1
    assert table.loc[table["task"] == "oracle", "rank"].isna().all()  # no score: no outcome, not ranked
    perturbed = table[table["perturbation"] != "none"]
    sign = perturbed[perturbed["optimizer"] == "signsgd"]
    assert (sign["sensitivity"] < 1e-4).all()  # the mechanism: exactly scale invariant
    step = perturbed[(perturbed["optimizer"] == "sgd") & (perturbed["perturbation"] == "step:at=0.5,factor=10.0")
                     & (perturbed["task"] == "oracle")]
    assert step["sensitivity"].iloc[0] == pytest.approx(math.log(10), rel=1e-5)  # |log 10| every step


def test_no_entry_with_failed_seeds_ranks_at_or_above_one_without(board):
    _, _, written, _ = board
    for _, row in written.cells[written.cells["rank"].notna()].groupby(["task", "perturbation"]):
        failed = (row["diverged_seeds"] + row["collapsed_seeds"]) > 0
        if failed.any() and (~failed).any():
            assert row.loc[failed, "rank"].min() > row.loc[~failed, "rank"].max()


def test_lr_column_is_the_tuned_lr(board):
    uri, out, _, _ = board
    from gsibench.tracking.runs import runs_frame
    from gsibench.tracking.store import Tracker

    table = pd.read_csv(out / "leaderboard.csv")
    sweep = runs_frame(Tracker(uri, "lb-tuning"))
    for optimizer in ("adam", "signsgd", "sgd"):
        rows = sweep[(sweep["optimizer"] == optimizer) & (sweep["outcome"] == "finished")]
        best = float(rows.loc[rows["val_score"].idxmin(), "opt.lr"])
        lrs = table[(table["optimizer"] == optimizer) & (table["task"] == "quadratic")]["lr"]
        assert set(lrs) == {best}


def test_readme_and_overall_table(board):
    _, out, written, _ = board
    text = (out / "README.md").read_text()
    assert "## Overall (sorted by robust quality)" in text and "## How to read it" in text
    assert "### oracle" in text and "### quadratic" in text and "Worked example" in text
    assert "--experiment lb" in text and "--optimizers 'adam,sgd,signsgd'" in text and "BATTERY.toml" not in text
    assert "--task oracle --betas 0.9,0.99 --seeds 2" in text  # grid runs found: say how to make them
    assert "baseline.json" not in text  # none was written
    overall = written.overall
    assert list(overall["robust_quality"]) == sorted(overall["robust_quality"], reverse=True)
    header = next(line for line in text.splitlines() if line.startswith("| optimizer | robust quality"))
    assert "quality [rank]" in header and "update sensitivity" in header


def test_metric_links_are_written(board):
    _, out, _, _ = board
    links = pd.read_csv(out / "metric_links.csv")
    assert list(links.columns) == list(LINK_COLUMNS)
    assert set(links["metric"]) >= {"sensitivity", "omega1", "divergence"}
    assert (links["n"] > 0).all() and set(links["outcome"]) >= {"quality_drop", "quality_drop (quadratic)"}


def test_plots_include_pareto_grid_heatmap_and_lr_curves(board):
    _, out, written, _ = board
    names = {p.name for p in written.figures}
    assert {"pareto.png", "sensitivity.png", "lr_sensitivity.png", "traces_oracle.png",
            "traces_quadratic.png", "omega_grid_oracle.png"} <= names
    assert all((out / "plots" / name).stat().st_size > 5000 for name in names)


def test_html_is_self_contained(board):
    _, out, written, _ = board
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(written.figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(https?:)?//', page) and "<script" not in page
    # overall, scales, metric links; quadratic: outcome + mechanism; oracle (no score): mechanism
    assert page.count("<table") == 3 + 2 + 1


def test_unknown_experiment_is_a_usage_error(board):
    uri, out, _, _ = board
    with pytest.raises(UsageError, match="no experiment 'nope'.*lb"):
        build(uri, "nope", out)
    assert main(["leaderboard", "--tracking-uri", uri, "--experiment", "nope", "--out", str(out)]) == 2


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_page_renders_in_headless_chromium(board, tmp_path):
    """Debian's chromium opens the page alone: the DOM has the tables and images, no console errors, and
    the screenshot shows the plots (coloured pixels), not a blank page."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be (CI installs it: apt-get install chromium)")
    _, out, written, _ = board
    url = (out / "index.html").resolve().as_uri()
    common = [browser, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = (out / "index.html").read_text()
    assert dom.stdout.count("<img") == len(written.figures) and dom.stdout.count("<table") == page.count("<table")
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "page.png"
    run = subprocess.run([*common, "--window-size=1300,4000", f"--screenshot={shot}", url], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).mean() > 0.005  # plot lines and bars are coloured; text and tables are grey
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.005  # and there is text


def test_only_the_newest_run_of_a_cell_counts():
    """Runs left from before a cell's key changed (a task option, a default) are superseded; in the lr sweep
    each learning rate is its own cell."""
    from gsibench.leaderboard.data import latest_per_seed

    frame = pd.DataFrame({"optimizer": ["adam"] * 4, "task": ["quadratic"] * 4, "perturbation": ["none"] * 4,
                          "seed": [0] * 4, "opt.lr": [1e-3, 1e-3, 1e-2, 1e-3], "start_time": [1, 3, 2, 2],
                          "val_score": [0.5, 0.7, 0.6, 0.4]})
    kept, dropped = latest_per_seed(frame, by=("opt.lr",))
    assert dropped == 2 and sorted(zip(kept["opt.lr"], kept["val_score"])) == [(1e-3, 0.7), (1e-2, 0.6)]
    kept, dropped = latest_per_seed(frame)
    assert dropped == 3 and list(kept["val_score"]) == [0.7]
