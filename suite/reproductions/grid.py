"""The (β1, β2) grid of arXiv 2601.21739: the ω1 table and the tests that compare its cells.

Every cell of a β grid trains Adam without any perturbation; ω1 (DESIGN "Oscillation") measures how
much its update norm ‖R_k‖ wanders. The paper claims the diagonal β1 = β2 is the smoothest cell of its
row. Each test below looks at one β1 row and one seed at a time (a *trial*) and asks a yes/no question;
under the null hypothesis that the cells of a row are exchangeable, a yes has probability p0 = 1/(cells
compared), and the p-value is the exact one-sided P(X ≥ successes) (:func:`~gsibench.measure.metrics.
success_tail`: the binomial tail when p0 is the same in every trial). Ties count as successes.

* ``row_minimum`` (the paper's test): the diagonal has the row's smallest ω1. 9/9 at p0 = 1/3 gives
  p = 5.08e-5 (papers.md).
* ``local_dip``: the diagonal against its immediate β2 neighbours only, leaving out any neighbour with
  β2 < β1² (there β1 > √β2, Zhang et al.'s unstable side, where ω1 is large for a reason that has nothing
  to do with β1 = β2). On a 3×3 grid of {0.9, 0.99, 0.999} every below-diagonal cell is on that side,
  so the row-minimum test cannot tell "β1 = β2 is smoothest" from "the smallest β2 with β1 < √β2 is
  smoothest"; the dip test can, on a grid with admissible neighbours on both sides (``--fine``).
* ``smoothest_is_best``: the row's smallest-ω1 cell also has the row's best validation score.
* ``diagonal_is_best`` (the authors' ``min_val_loss`` test): the diagonal has the row's best score.
  For these two, p0 accounts for ties of the score (:func:`score_trials`).

A diverged run counts as ω1 = +∞ and as the worst score, so it is never the row's minimum or best and a
diverged diagonal is never a success. A row in which every run diverged is a failed trial of the
row-minimum test (as this project always did; the authors skip such rows) and is not a trial of the
other three. In the table a cell's ω1 is the mean over its *non-diverged* seeds (the authors give NaN
as soon as one seed is non-finite), and ``diverged_frac`` says how many seeds diverged.

``omega1_scaled`` is ω1 divided by the mean ‖R_k‖ over the same window: ‖R_k‖ grows like the square root
of the number of parameters, so only this ratio compares across tasks and with the paper's sizes.

The functions are pure (DataFrames in, DataFrames out) so that the leaderboard can call them on any
frame of runs; :mod:`gsibench.reproductions.grid_run` (behind ``gsibench grid``) trains the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from gsibench.measure.metrics import success_tail

GRID_COLUMNS = ("task", "beta1", "beta2", "omega1", "omega1_std", "omega1_scaled", "val_score", "diverged_frac")
TEST_COLUMNS = ("task", "successes", "trials", "p_value")
TESTS_COLUMNS = ("task", "test", "successes", "trials", "expected", "p_value", "excluded")
"""All four tests: ``expected`` = Σ p0 over the trials (successes expected by chance); ``excluded`` =
neighbour cells the local dip test left out because β2 < β1²."""
DIP_COLUMNS = ("task", "seed", "beta1", "beta2_below", "beta2_diag", "beta2_above", "omega_below", "omega_diag",
               "omega_above", "dip")
RUN_COLUMNS = ("task", "beta1", "beta2", "seed", "omega1", "omega1_scaled", "val_score", "diverged")
"""A tidy frame of grid runs, one row per run (what :func:`tidy_runs` returns)."""
TESTS = ("row_minimum", "local_dip", "smoothest_is_best", "diagonal_is_best")


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def tidy_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs as read from MLflow (:func:`gsibench.tracking.runs.runs_frame`) -> :data:`RUN_COLUMNS`.

    Keeps clean runs only (perturbation ``none``); β1, β2 come from ``opt.beta1``/``opt.beta2``, or
    from ``opt.beta`` for ``adam-balanced``. Runs without betas are dropped. A frame that already has
    the tidy columns is returned as is (``omega1_scaled`` may be missing: NaN)."""
    if set(RUN_COLUMNS) - {"omega1_scaled"} <= set(frame.columns):
        return frame.assign(omega1_scaled=_numeric(frame, "omega1_scaled")).loc[:, list(RUN_COLUMNS)].copy()
    if frame.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    rows = frame[frame["perturbation"] == "none"] if "perturbation" in frame else frame
    balanced = _numeric(rows, "opt.beta")
    tidy = pd.DataFrame({
        "task": rows["task"],
        "beta1": _numeric(rows, "opt.beta1").fillna(balanced),
        "beta2": _numeric(rows, "opt.beta2").fillna(balanced),
        "seed": _numeric(rows, "seed"),
        "omega1": _numeric(rows, "omega1"),
        "omega1_scaled": _numeric(rows, "omega1_scaled"),
        "val_score": _numeric(rows, "val_score"),
    })
    outcome = rows["outcome"] if "outcome" in rows else pd.Series("", index=rows.index)
    tidy["diverged"] = (outcome == "diverged") | (_numeric(rows, "diverged") == 1)
    return tidy.dropna(subset=["beta1", "beta2"]).reset_index(drop=True)


def grid_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, β1, β2): mean and std over seeds of ω1, the mean scale-free ω1 and the mean validation
    score, all over the non-diverged seeds, and the fraction of seeds that diverged (:data:`GRID_COLUMNS`)."""
    runs = tidy_runs(frame)
    rows = []
    for (task, beta1, beta2), cell in runs.groupby(["task", "beta1", "beta2"], sort=True):
        kept = cell[~cell["diverged"]]
        omega, scaled = kept["omega1"].dropna(), kept["omega1_scaled"].dropna()
        rows.append({
            "task": task, "beta1": beta1, "beta2": beta2,
            "omega1": float(omega.mean()) if len(omega) else math.nan,
            "omega1_std": float(omega.std(ddof=1)) if len(omega) > 1 else math.nan,
            "omega1_scaled": float(scaled.mean()) if len(scaled) else math.nan,
            "val_score": float(kept["val_score"].mean()) if len(kept) else math.nan,
            "diverged_frac": float(cell["diverged"].mean()),
        })
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


def best_cells(table: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """Per task, the cell with the best mean validation score (``higher_is_better[task]``; tasks
    without a score are left out)."""
    best = []
    for task, cells in table.groupby("task", sort=False):
        scored = cells.dropna(subset=["val_score"])
        if task not in higher_is_better or scored.empty:
            continue
        index = scored["val_score"].idxmax() if higher_is_better[task] else scored["val_score"].idxmin()
        best.append(table.loc[index])
    return pd.DataFrame(best, columns=table.columns).reset_index(drop=True)


# ---- trials: one β1 row and one seed ------------------------------------------------------------

def _design(task_runs: pd.DataFrame, betas: Sequence[float] | None) -> dict[float, list[float]]:
    """β1 -> the β2 values of its row: ``betas`` for a square grid, else those found in the runs."""
    if betas is not None:
        return {float(b): [float(x) for x in betas] for b in betas}
    return {float(b1): sorted(float(b) for b in rows["beta2"].unique())
            for b1, rows in task_runs.groupby("beta1", sort=True)}


def rows_of(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> Iterator[tuple]:
    """``(task, β1, seed, β2s, ω1s, scores)`` for every (task, β1 row, seed) whose row has a run in every
    cell; ω1 is +∞ and the score NaN for a diverged run or a missing value."""
    runs = tidy_runs(frame)
    for task, task_runs in runs.groupby("task", sort=False):
        for beta1, beta2s in _design(task_runs, betas).items():
            for seed, row in task_runs[np.isclose(task_runs["beta1"], beta1)].groupby("seed"):
                omegas, scores = [], []
                for beta2 in beta2s:
                    match = row[np.isclose(row["beta2"], beta2)]
                    if match.empty:
                        break
                    run = match.iloc[0]
                    finite = not run["diverged"] and math.isfinite(run["omega1"])
                    omegas.append(float(run["omega1"]) if finite else math.inf)
                    scores.append(math.nan if run["diverged"] else float(run["val_score"]))
                else:
                    yield task, beta1, int(seed), beta2s, np.array(omegas), np.array(scores)


def _diagonal(beta1: float, beta2s: Sequence[float]) -> int | None:
    index = [i for i, beta2 in enumerate(beta2s) if np.isclose(beta2, beta1)]
    return index[0] if index else None


def _best(scores: np.ndarray, higher: bool) -> np.ndarray:
    """Indices of the best finite score (ties: all of them)."""
    finite = np.where(np.isfinite(scores), scores if higher else -scores, -np.inf)
    return np.flatnonzero(finite == finite.max()) if np.isfinite(finite.max()) else np.array([], dtype=int)


def diagonal_trials(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> pd.DataFrame:
    """One row per (task, β1 row, seed) with every cell of the row present: ``success`` says whether
    the diagonal cell has the row's minimal ω1 (ties count; diverged or missing ω1 = +inf); ``p0`` is
    1/(cells in the row)."""
    rows = []
    for task, beta1, seed, beta2s, omegas, _ in rows_of(frame, betas):
        diagonal = _diagonal(beta1, beta2s)
        if diagonal is None:
            continue
        success = math.isfinite(omegas[diagonal]) and omegas[diagonal] <= omegas.min()
        rows.append({"task": task, "beta1": beta1, "seed": seed, "success": bool(success), "p0": 1 / len(beta2s)})
    return pd.DataFrame(rows, columns=["task", "beta1", "seed", "success", "p0"])


def score_trials(frame: pd.DataFrame, higher_is_better: Mapping[str, bool],
                 betas: Sequence[float] | None = None) -> pd.DataFrame:
    """Per (task, β1 row, seed) with every cell present, a finite ω1 and a score somewhere in the row:
    ``smoothest_is_best`` (a smallest-ω1 cell has the best score) and ``diagonal_is_best``.

    Scores such as a validation accuracy on 360 examples tie often, and a tie for the best counts as a
    success, so each trial's null probability is conditional on its ties: with b cells tied for the
    best score and a tied for the smallest ω1 among m, p0 = b/m for ``diagonal_is_best`` and
    1 − C(m − b, a)/C(m, a) for ``smoothest_is_best`` (the chance that a random a-set meets the best set);
    both are 1/m without ties."""
    rows = []
    for task, beta1, seed, beta2s, omegas, scores in rows_of(frame, betas):
        diagonal = _diagonal(beta1, beta2s)
        best = _best(scores, higher_is_better.get(task, True)) if task in higher_is_better else []
        if diagonal is None or len(best) == 0 or not np.isfinite(omegas.min()):
            continue
        smoothest = np.flatnonzero(omegas == omegas.min())
        m, a, b = len(beta2s), len(smoothest), len(best)
        rows.append({"task": task, "beta1": beta1, "seed": seed,
                     "p0_smoothest": 1 - math.comb(m - b, a) / math.comb(m, a), "p0_diagonal": b / m,
                     "smoothest_is_best": bool(set(smoothest) & set(best)),
                     "diagonal_is_best": diagonal in set(best)})
    return pd.DataFrame(rows, columns=["task", "beta1", "seed", "p0_smoothest", "p0_diagonal", "smoothest_is_best",
                                       "diagonal_is_best"])


def dip_trials(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local dip test's trials (:data:`DIP_COLUMNS`) and the neighbour cells it left out.

    Per (task, β1 row, seed): the diagonal against the nearest β2 below and above it in the row, each
    only where it exists and has β2 ≥ β1². ``dip`` is True when the diagonal's ω1 is at most every
    compared neighbour's (a diverged diagonal never dips), NA where no neighbour is left (no trial).
    The second frame lists each left-out cell once: (task, beta1, beta2)."""
    rows, excluded = [], set()
    for task, beta1, seed, beta2s, omegas, _ in rows_of(frame, betas):
        diagonal = _diagonal(beta1, beta2s)
        if diagonal is None:
            continue
        row = {"task": task, "seed": seed, "beta1": beta1, "beta2_diag": beta2s[diagonal],
               "omega_diag": omegas[diagonal]}
        compared = []
        for side, index in (("below", diagonal - 1), ("above", diagonal + 1)):
            beta2 = beta2s[index] if 0 <= index < len(beta2s) else math.nan
            admissible = math.isfinite(beta2) and beta2 >= beta1**2
            if math.isfinite(beta2) and not admissible:
                excluded.add((task, beta1, beta2))
            row[f"beta2_{side}"] = beta2 if admissible else math.nan
            row[f"omega_{side}"] = omegas[index] if admissible else math.nan
            if admissible:
                compared.append(omegas[index])
        diag = omegas[diagonal]
        row["dip"] = pd.NA if not compared else bool(math.isfinite(diag) and diag <= min(compared))
        rows.append(row)
    trials = pd.DataFrame(rows, columns=list(DIP_COLUMNS))
    for column in ("omega_below", "omega_diag", "omega_above"):  # a diverged run's +inf stays +inf
        trials[column] = trials[column].astype(float)
    return trials, pd.DataFrame(sorted(excluded), columns=["task", "beta1", "beta2"])


def _test_row(task: str, test: str, successes: pd.Series, p0: pd.Series, excluded: int = 0) -> dict:
    k = int(successes.sum())
    return {"task": task, "test": test, "successes": k, "trials": len(successes), "expected": float(p0.sum()),
            "p_value": success_tail(k, list(p0)), "excluded": excluded}


def diagonal_test(frame: pd.DataFrame, betas: Sequence[float] | None = None) -> pd.DataFrame:
    """The paper's row-minimum test per task (:data:`TEST_COLUMNS`): successes over (β1 row, seed)
    trials, p = P(X ≥ successes) for X ~ Binomial(trials, 1/len(betas)).

    ``frame`` is a frame of runs (MLflow's, or tidy); ``betas`` defaults to the β values found per row."""
    trials = diagonal_trials(frame, betas)
    rows = [_test_row(task, "row_minimum", t["success"], t["p0"]) for task, t in trials.groupby("task", sort=False)]
    return pd.DataFrame(rows, columns=list(TESTS_COLUMNS)).loc[:, list(TEST_COLUMNS)]


def grid_tests(frame: pd.DataFrame, higher_is_better: Mapping[str, bool],
               betas: Sequence[float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(all four tests per task (:data:`TESTS_COLUMNS`), the dip trials, the cells the dip test left out)."""
    rows = []
    diagonal, scored = diagonal_trials(frame, betas), score_trials(frame, higher_is_better, betas)
    dips, excluded = dip_trials(frame, betas)
    for task in dict.fromkeys(tidy_runs(frame)["task"]):
        mine = diagonal[diagonal["task"] == task]
        rows.append(_test_row(task, "row_minimum", mine["success"], mine["p0"]))
        trials = dips[(dips["task"] == task) & dips["dip"].notna()]
        compared = 1 + trials[["beta2_below", "beta2_above"]].notna().sum(axis=1)
        rows.append(_test_row(task, "local_dip", trials["dip"].astype(bool), 1 / compared,
                              int((excluded["task"] == task).sum())))
        mine = scored[scored["task"] == task]
        for test, p0 in (("smoothest_is_best", "p0_smoothest"), ("diagonal_is_best", "p0_diagonal")):
            rows.append(_test_row(task, test, mine[test], mine[p0]))
    return pd.DataFrame(rows, columns=list(TESTS_COLUMNS)), dips, excluded
