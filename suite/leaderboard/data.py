"""Reading a battery back from MLflow — the leaderboard's only source.

Everything here goes through ``mlflow.search_runs`` (pandas) and ``MlflowClient.get_metric_history``;
nothing imports the runner. Column names are the tracking schema of :mod:`gsibench.tracking.store` with the
``params.``/``metrics.``/``tags.`` prefixes dropped.

When an experiment holds several runs of the same (optimizer, task, perturbation, seed) — a battery
re-run after a default changed, or with a new tuned learning rate — the latest finished one counts and
the older ones are reported as superseded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from gsibench.battery.perturbations import KINDS
from gsibench.core.errors import UsageError
from gsibench.leaderboard.scoring import REFERENCE, Normaliser, add_quality, normalisers
from gsibench.tracking.sqlite_store import SqliteStore
from gsibench.tracking.sqlite_store import experiment_names as sqlite_experiment_names
from gsibench.tracking.sqlite_store import history as sqlite_history

GROUP = ["optimizer", "task", "perturbation"]
NUMERIC_PARAMS = ("seed", "steps", "opt.lr", "opt.beta1", "opt.beta2", "opt.beta")


@dataclass(frozen=True)
class ScoreInfo:
    name: str
    higher_is_better: bool


@dataclass
class BatteryRuns:
    """One experiment's runs, ready for the tables and plots."""

    uri: str
    experiment: str
    runs: pd.DataFrame
    """Latest FINISHED run per (optimizer, task, perturbation, seed) (diverged runs included)."""
    failed: pd.DataFrame
    superseded: int
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    scores: dict[str, ScoreInfo | None] = field(default_factory=dict)
    """task spec -> its primary score (``None`` for tasks without one)."""
    order: list[str] = field(default_factory=list)
    """Display order of optimizers (the overall ranking once known); others follow in run order."""
    reference: str = REFERENCE
    normalisers: dict[str, Normaliser] = field(default_factory=dict)
    """task -> the fixed points of its normalised score (scored tasks whose reference runs exist)."""

    @property
    def optimizers(self) -> list[str]:
        found = list(dict.fromkeys(self.runs["optimizer"]))
        return [o for o in self.order if o in found] + [o for o in found if o not in self.order]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.runs["task"]))

    def perturbations(self, task: str | None = None) -> list[str]:
        """Clean first, then by kind in the order ``gsibench list perturbations`` gives, pre-clip before
        post-clip."""
        frame = self.runs if task is None else self.runs[self.runs["task"] == task]
        return sorted(dict.fromkeys(frame["perturbation"]), key=perturbation_order)


def perturbation_order(spec: str) -> tuple:
    kind = spec.partition(":")[0]
    kinds = list(KINDS)
    return (spec != "none", "order=post-clip" in spec, kinds.index(kind) if kind in kinds else len(kinds), spec)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def search(uri: str, experiment: str) -> pd.DataFrame:
    """All runs of ``experiment`` as a frame with unprefixed columns (empty if none): read straight from a
    SQLite store at the schema :mod:`~gsibench.tracking.sqlite_store` knows, else with ``mlflow.search_runs``."""
    store = SqliteStore.open(uri, experiment)
    if store is not None:
        frame = pd.DataFrame(store.rows())
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("series.")])
    else:
        import mlflow

        mlflow.set_tracking_uri(uri)
        frame = mlflow.search_runs(experiment_names=[experiment], max_results=100_000, output_format="pandas")
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("metrics.series.")])
        frame = frame.rename(columns={c: c.split(".", 1)[1] for c in frame.columns
                                      if c.startswith(("params.", "metrics.", "tags."))})
    if frame.empty:
        return frame
    for column in NUMERIC_PARAMS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "gsibench.status" in frame:
        frame["outcome"] = frame["gsibench.status"].fillna(frame["status"].str.lower())
    return frame


def experiment_names(uri: str) -> list[str]:
    names = sqlite_experiment_names(uri)
    return names if names is not None else [e.name for e in client(uri).search_experiments()]


def task_scores(frame: pd.DataFrame) -> dict[str, ScoreInfo | None]:
    """Each task's primary score, from the params every run logs (``score_name``,
    ``score_higher_is_better``); a task whose runs logged none has no score."""
    scores: dict[str, ScoreInfo | None] = {}
    for task, rows in frame.groupby("task", sort=False):
        names = rows["score_name"].dropna().unique() if "score_name" in rows else []
        if len(names) == 0:
            scores[task] = None
            continue
        direction = rows["score_higher_is_better"].dropna().astype(str).str.lower().unique()
        if len(names) > 1 or len(direction) != 1:
            raise UsageError(f"runs of task '{task}' disagree on its score ({list(names)}, higher is better: "
                             f"{list(direction)}); was the task changed between runs?")
        scores[task] = ScoreInfo(str(names[0]), direction[0] == "true")
    return scores


def latest_per_seed(frame: pd.DataFrame, by: tuple[str, ...] = ()) -> tuple[pd.DataFrame, int]:
    """Keep the newest run of each (optimizer, task, perturbation, seed, *by*); returns it and the dropped
    count. Older runs of the same cell are runs made before a change of the cell's key (a task option, a
    hyperparameter default), which a re-run does not delete."""
    ordered = frame.sort_values("start_time")
    kept = ordered.drop_duplicates(GROUP + ["seed", *by], keep="last")
    return kept.sort_index(), len(frame) - len(kept)


def load(uri: str, experiment: str, grid_experiments: list[str] | None = None,
         reference: str = REFERENCE) -> BatteryRuns:
    """The battery ``experiment``, its tuning sweep (``<experiment>-tuning``) and β-grid runs, with every
    run's normalised score against ``reference`` (:mod:`~gsibench.leaderboard.scoring`)."""
    from gsibench.execution.tuning import tuning_experiment

    try:
        names = experiment_names(uri)
    except Exception as error:  # MlflowException, a database that is not MLflow's, ...
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise UsageError(f"MLflow store '{uri}' cannot be read: {message.splitlines()[0]}") from None
    if experiment not in names:
        listed = ", ".join(n for n in names if n != "Default") or "(none)"
        raise UsageError(f"no experiment '{experiment}' in MLflow store '{uri}'; experiments there: {listed}")
    frame = search(uri, experiment)
    if frame.empty or "optimizer" not in frame:
        raise UsageError(f"experiment '{experiment}' in '{uri}' has no gsibench runs")
    finished = frame[frame["status"] == "FINISHED"]
    runs, superseded = latest_per_seed(finished)
    done = set(map(tuple, runs[GROUP + ["seed"]].itertuples(index=False)))
    failed = frame[(frame["status"] == "FAILED")]
    failed = failed[[tuple(r) not in done for r in failed[GROUP + ["seed"]].itertuples(index=False)]]
    tuning_name = tuning_experiment(experiment)
    tuning = search(uri, tuning_name) if tuning_name in names else pd.DataFrame()
    if not tuning.empty:
        tuning, _ = latest_per_seed(tuning[tuning["status"] == "FINISHED"],
                                    by=("opt.lr",) if "opt.lr" in tuning else ())
    grid_names = grid_experiments if grid_experiments is not None else [
        n for n in names if n == experiment or n.startswith("grid")]
    grid = pd.concat([grid_frame(search(uri, n)) for n in grid_names if n in names] or [pd.DataFrame()])
    scores = task_scores(runs)
    scales = normalisers(runs, [task for task, score in scores.items() if score is not None], reference)
    return BatteryRuns(uri, experiment, add_quality(runs, scales), failed, superseded, tuning, grid, scores,
                       reference=reference, normalisers=scales)


def grid_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """β-grid runs: clean, finished Adam runs whose (β1, β2) take more than one value on a task."""
    needed = {"optimizer_name", "perturbation", "opt.beta1", "opt.beta2", "status"}
    if frame.empty or not needed <= set(frame.columns):
        return pd.DataFrame()
    adam = frame[(frame["optimizer_name"] == "adam") & (frame["perturbation"] == "none")
                 & (frame["status"] == "FINISHED")]
    adam = adam.dropna(subset=["opt.beta1", "opt.beta2"])
    keep = [task for task, rows in adam.groupby("task")
            if rows["opt.beta1"].nunique() > 1 and rows["opt.beta2"].nunique() > 1]
    return adam[adam["task"].isin(keep)]


def metric_history(uri: str, run_id: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a logged metric history, sorted by step; NaN-free."""
    points = sqlite_history(uri, run_id, key)
    if points is None:
        history = sorted(client(uri).get_metric_history(run_id, key), key=lambda m: m.step)
        points = [(m.step, m.value) for m in history if m.value is not None]
    points = [(step, value) for step, value in points if math.isfinite(value)]
    return [p[0] for p in points], [p[1] for p in points]
