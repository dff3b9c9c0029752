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
from gsibench.leaderboard.plots import profile_curve
from gsibench.leaderboard.stats import benjamini_hochberg, mean_ci, paired_pvalue, significance_ranks, worst_substituted
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


def test_diverged_runs_count_as_the_worst():
    values = {"A": {0: 0.1, 1: 0.2}, "B": {0: 0.05, 1: 5.0}}
    out = worst_substituted(values, {"B": {0}}, lower_is_better=True)
    assert out == {"A": {0: 0.1, 1: 0.2}, "B": {0: 5.0, 1: 5.0}}


def test_performance_profile_curve():
    costs = {"a": [1.0, 2.0, math.inf], "b": [2.0, 1.0, 4.0]}
    curves = profile_curve(costs, np.array([1.0, 2.0, 10.0]))
    assert curves["a"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert curves["b"].tolist() == pytest.approx([2 / 3, 1.0, 1.0])


# ---- a real battery, read back from MLflow -------------------------------------------------------

BATTERY = ["--optimizers", "adam,signsgd,sgd", "--tasks", "oracle,quadratic",
           "--perturbations", "step:at=0.5,factor=10,ramp:start=0.3,end=0.6,factor=100", "--seeds", "3",
           "--steps", "40"]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["run", *BATTERY, "--tracking-uri", uri, "--experiment", "lb", "--tune-points", "3"]) == 0
    grid = ",".join(f"adam[beta1={b1},beta2={b2}]" for b1 in (0.9, 0.99) for b2 in (0.9, 0.99))
    assert main(["run", "--optimizers", grid, "--tasks", "oracle", "--perturbations", "none", "--seeds", "2",
                 "--steps", "60", "--tracking-uri", uri, "--experiment", "grid-lb", "--no-tune"]) == 0
    written = build(uri, "lb", root / "out")
    return uri, root / "out", written


def test_csv_has_one_row_per_cell_with_cis(board):
    _, out, _ = board
    table = pd.read_csv(out / "leaderboard.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert len(table) == 3 * 2 * 3 and set(table["seeds"]) == {3}
    perturbed = table[table["perturbation"] != "none"]
    assert perturbed["sensitivity_ci"].notna().all() and perturbed["rank"].notna().all()
    oracle = table[table["task"] == "oracle"]
    assert oracle.loc[oracle["perturbation"] == "none", "rank"].isna().all()  # no score: not ranked
    sign = perturbed[perturbed["optimizer"] == "signsgd"]
    assert (sign["sensitivity"] < 1e-4).all() and (sign["rank"] == 1).all()  # exactly scale invariant
    sgd = perturbed[(perturbed["optimizer"] == "sgd") & (perturbed["task"] == "oracle")]
    assert (sgd["rank"] == 3).all()  # SGD's update follows the gradient scale: worst, and significantly so
    step = perturbed[(perturbed["optimizer"] == "sgd") & (perturbed["perturbation"] == "step:at=0.5,factor=10.0")
                     & (perturbed["task"] == "oracle")]
    assert step["sensitivity"].iloc[0] == pytest.approx(math.log(10), rel=1e-5)  # |log 10| every step


def test_lr_column_is_the_tuned_lr(board):
    uri, out, _ = board
    from gsibench.tracking.runs import runs_frame
    from gsibench.tracking.store import Tracker

    table = pd.read_csv(out / "leaderboard.csv")
    sweep = runs_frame(Tracker(uri, "lb-tuning"))
    for optimizer in ("adam", "signsgd", "sgd"):
        rows = sweep[(sweep["optimizer"] == optimizer) & (sweep["outcome"] == "finished")]
        best = float(rows.loc[rows["val_score"].idxmin(), "opt.lr"])
        lrs = table[(table["optimizer"] == optimizer) & (table["task"] == "quadratic")]["lr"]
        assert set(lrs) == {best}


def test_readme_has_overall_and_per_task_tables(board):
    _, out, written = board
    text = (out / "README.md").read_text()
    assert "## Overall" in text and "## How to read these tables" in text
    assert "### oracle" in text and "### quadratic" in text
    assert "gsibench leaderboard" in text and "--experiment lb" in text
    assert "--task oracle --betas 0.9,0.99 --seeds 2" in text  # grid runs found: say how to make them
    overall = written.overall.set_index("optimizer")
    assert overall.loc["signsgd", "robustness"] == pytest.approx(1.0, abs=1e-3)
    assert overall.loc["sgd", "robustness"] < overall.loc["adam", "robustness"] < 1.0
    assert overall.index[0] != "sgd"
    header = next(line for line in text.splitlines() if line.startswith("| optimizer | mean rank"))
    assert "robustness [95% CI]" in header and "quadratic suboptimality ↓" in header


def test_plots_include_grid_heatmap_and_lr_curves(board):
    _, out, written = board
    names = {p.name for p in written.figures}
    assert {"performance_profile.png", "sensitivity.png", "lr_sensitivity.png", "traces_oracle.png",
            "traces_quadratic.png", "omega_grid_oracle.png"} <= names
    assert all((out / "plots" / name).stat().st_size > 5000 for name in names)


def test_html_is_self_contained(board):
    _, out, written = board
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(written.figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(https?:)?//', page) and "<script" not in page
    assert page.count("<table") == 1 + 2  # overall + one per task


def test_unknown_experiment_is_a_usage_error(board):
    uri, out, _ = board
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
    _, out, written = board
    url = (out / "index.html").resolve().as_uri()
    common = [browser, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img") == len(written.figures) and dom.stdout.count("<table") == 3
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
