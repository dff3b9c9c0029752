"""MLflow tracking: one experiment per battery, one run per cell, the clean twin linked by tag.

Only the driver writes (workers return results), so a SQLite store never sees two writers.
A run is created, filled and terminated in one go; a run left ``RUNNING`` (the driver was killed
while logging) is marked ``KILLED`` on the next start and its cell is redone — a cell is done when
a ``FINISHED`` run carries its key, so results are neither lost nor duplicated.

Names every consumer relies on — params: ``optimizer, task, perturbation, seed, steps`` (+ ``opt.*``
hyperparameters, ``task.*`` options, ``score_name`` and ``score_higher_is_better``); metrics: the schema of
:mod:`gsibench.measure.schema`; tag ``cell_key``. Full-resolution step series and the clean
twin's final parameters are in the artifact ``trace.npz``; thinned series are MLflow metric histories.
"""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import tempfile
import time
from contextlib import closing, suppress
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import gsibench
from gsibench.battery.cells import Cell
from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.core.errors import UsageError
from gsibench.measure.result import CellResult
from gsibench.tracking.preflight import check_reachable, default_uri

SERIES_POINTS = 250
"""Points per step series in MLflow's metric history (the artifact keeps every step)."""
LOGGED_SERIES = ("loss", "update_norm", "scale")


def _git(*args: str) -> str | None:
    """The output of a git command in gsibench's source tree (``None`` outside a checkout)."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str:
    return (_git("rev-parse", "HEAD") or "").strip() or "unknown"


def git_dirty() -> str:
    """``true`` when tracked files differ from ``git_commit`` (the numbers may come from uncommitted code)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return "unknown" if status is None else str(bool(status.strip())).lower()


def use_wal(uri: str) -> None:
    """Put a SQLite store in write-ahead-log mode (persistent, crash-safe, one fsync per commit
    instead of several, readers never block the writer): it halves the cost of logging a run.
    Best effort: a store that cannot be switched now (locked, read-only) stays as it is."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.parent.is_dir():
        return
    try:
        with closing(sqlite3.connect(path, timeout=5)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass


class Tracker:
    """The battery's view of MLflow: what is done, and how a result is written."""

    def __init__(self, uri: str | None = None, experiment: str = "gsibench"):
        self.uri = uri or default_uri()
        # MLflow prints two "View run" lines per run to stdout for a server, after one more request
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        check_reachable(self.uri)
        use_wal(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_name = experiment
        try:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                try:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=self._artifacts())
                except MlflowException as error:  # another driver created it in the meantime
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self.experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
            else:
                self.experiment_id = found.experiment_id
        except MlflowException as error:
            raise UsageError(f"MLflow tracking store '{self.uri}' is not usable: {error.message}") from None
        except Exception as error:  # connection refused, DNS, ...
            raise UsageError(f"MLflow tracking store '{self.uri}' is unreachable: {error}") from None
        self.versions = {"gsibench_version": gsibench.__version__, "torch_version": torch.__version__,
                         "git_commit": git_commit(), "git_dirty": git_dirty()}

    def _artifacts(self) -> str | None:
        """Artifacts of a SQLite store go beside the database file; a server decides its own."""
        if self.uri.startswith("sqlite:///"):
            return (Path(self.uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
        return None

    # ---- reading ------------------------------------------------------------------------------
    def runs(self, filter_string: str = "") -> list:
        """Every run of the experiment matching ``filter_string`` (all pages)."""
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def finished(self) -> dict[str, str]:
        """cell key -> run id of its FINISHED run."""
        return {run.data.tags["cell_key"]: run.info.run_id
                for run in self.runs("attributes.status = 'FINISHED'") if "cell_key" in run.data.tags}

    def load_trace(self, run_id: str, cell: Cell) -> CellResult:
        """The stored result of a finished run, enough to serve as a clean twin."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, "trace.npz", tmp)
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        scalars = arrays.pop("scalars")
        final = arrays.pop("final_params", None)
        travel, val_score, diverged = (float(x) for x in scalars)
        return CellResult(cell, "finished", diverged=bool(diverged), series=arrays, final_params=final,
                          travel=travel, val_score=val_score)

    # ---- writing ------------------------------------------------------------------------------
    def log(self, result: CellResult, comparison: dict[str, float] | None = None,
            twin_run_id: str | None = None, run_id: str | None = None) -> str:
        """Write one cell's run — into ``run_id``, the cell's claim (:mod:`gsibench.tracking.claims`), when
        given; returns its run id."""
        cell = result.cell
        now = int(time.time() * 1000)
        tags = {"cell_key": cell.key, "kind": "clean" if cell.is_clean else "perturbed",
                "perturbation_kind": parse_perturbation(cell.perturbation).kind,
                "gsibench.status": "failed" if result.status == "failed" else
                ("diverged" if result.diverged else "finished")}
        if not cell.is_clean:
            tags["twin_key"] = cell.twin.key
            if twin_run_id:
                tags["twin_run_id"] = twin_run_id
        if run_id is None:
            run_id = self.client.create_run(self.experiment_id, start_time=now - int(result.wall_seconds * 1000),
                                            tags=tags, run_name=cell.label()).info.run_id
        else:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        try:
            self._fill(run_id, result, comparison, now)
        except KeyboardInterrupt:  # Ctrl-C while writing: mark the run now rather than at the next start
            with suppress(Exception):
                self.client.set_terminated(run_id, "KILLED")
            raise
        self.client.set_terminated(run_id, "FAILED" if result.status == "failed" else "FINISHED", end_time=now)
        return run_id

    def _fill(self, run_id: str, result: CellResult, comparison: dict[str, float] | None, now: int) -> None:
        """Params, summary metrics and thinned series in one ``log_batch``; then the artifact."""
        params = [Param(k, str(v)) for k, v in self._params(result).items()]
        metrics = [Metric(k, v, now, 0) for k, v in result.metrics(comparison).items()]
        stride = max(1, math.ceil(len(result.update_norm) / SERIES_POINTS))
        for name in LOGGED_SERIES:
            values = result.series.get(name)
            if values is not None:
                metrics += [Metric(f"series.{name}", float(values[k]), now, k)
                            for k in range(0, len(values), stride)]
        self.client.log_batch(run_id, metrics=metrics, params=params)
        with tempfile.TemporaryDirectory() as tmp:
            if result.status == "failed":
                (Path(tmp) / "traceback.txt").write_text(result.error or "")
                self.client.log_artifact(run_id, str(Path(tmp) / "traceback.txt"))
            else:
                self._write_trace(result, Path(tmp) / "trace.npz")
                self.client.log_artifact(run_id, str(Path(tmp) / "trace.npz"))

    def _params(self, result: CellResult) -> dict[str, object]:
        cell = result.cell
        params = {"optimizer": cell.optimizer, "optimizer_name": cell.optimizer_name, "task": cell.task,
                  "task_name": cell.task_name, "perturbation": cell.perturbation, "seed": cell.seed,
                  "steps": cell.steps, "schedule": cell.schedule, "warmup": cell.warmup, "clip": cell.clip,
                  "device": cell.device, **self.versions}
        params.update({f"opt.{k}": v for k, v in cell.hparams})
        params.update({f"task.{k}": v for k, v in cell.task_options})
        params.update({f"info.{k}": v for k, v in result.info.items()})
        if result.omega is not None:
            params.update(omega_window=result.omega.window, omega_warmup=result.omega.warmup)
        if result.score is not None:
            params.update(score_name=result.score.name, score_higher_is_better=result.score.higher_is_better)
        return params

    @staticmethod
    def _write_trace(result: CellResult, path: Path) -> None:
        arrays = dict(result.series)
        arrays["scalars"] = np.array([result.travel, result.val_score, float(result.diverged)])
        if result.cell.is_clean and result.final_params is not None:
            arrays["final_params"] = result.final_params
        np.savez_compressed(path, **arrays)
