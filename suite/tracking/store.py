"""MLflow tracking: one experiment per battery, one run per cell, the clean twin linked by tag.

Only the driver writes (workers return results), so a SQLite store never sees two writers.
A run is written whole (:class:`~gsibench.tracking.sqlite_store.RunRecord`: directly into a SQLite
store, several per transaction; through ``MlflowClient`` elsewhere, created, filled and terminated in
one go); a run left ``RUNNING`` (the driver was killed
while logging) is marked ``KILLED`` on the next start and its cell is redone — a cell is done when
a ``FINISHED`` run carries its key, so results are neither lost nor duplicated.

Names every consumer relies on — params: ``optimizer, task, perturbation, seed, steps`` (+ ``opt.*``
hyperparameters, ``task.*`` options, ``score_name`` and ``score_higher_is_better``); metrics: the schema of
:mod:`gsibench.measure.schema`; tag ``cell_key``. Full-resolution step series and the clean
twin's final parameters are in the artifact ``trace.npz``; thinned series are MLflow metric histories.
"""

from __future__ import annotations

import io
import math
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from contextlib import closing, suppress
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

import gsibench
from gsibench.battery.cells import Cell
from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.core.errors import UsageError
from gsibench.measure.result import CellResult
from gsibench.tracking.preflight import check_reachable, default_uri
from gsibench.tracking.sqlite_store import RunRecord, SqliteStore, sqlite_path

SERIES_POINTS = 250
"""Points per step series in MLflow's metric history (the artifact keeps every step)."""
LOGGED_SERIES = ("loss", "update_norm", "scale")
FLUSH_RUNS = 32
FLUSH_SECONDS = 2.0
"""A SQLite store gets the queued runs in one transaction when this many are queued, or this long after
the first of them (and whenever the driver flushes)."""


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


class WriteFailed(Exception):
    """The store refused runs; ``queued`` holds (result, comparison, twin run id) of every run that did
    not reach it — this one and any queued before it — for the caller to keep (the spool)."""

    def __init__(self, cause: BaseException, queued: list[tuple]):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.queued = queued


class Tracker:
    """The battery's view of MLflow: what is done, and how a result is written.

    A SQLite store at the schema :mod:`~gsibench.tracking.sqlite_store` knows is written directly, whole
    runs at a time, :data:`FLUSH_RUNS` runs or :data:`FLUSH_SECONDS` per transaction (and at
    :meth:`flush`); anything else (a tracking server, another schema) through ``MlflowClient``, run by
    run. Either way a run appears in the store FINISHED with its artifact, or not at all.
    """

    def __init__(self, uri: str | None = None, experiment: str = "gsibench"):
        self.uri = uri or default_uri()
        self.experiment_name = experiment
        # MLflow prints two "View run" lines per run to stdout for a server, after one more request
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        check_reachable(self.uri)
        use_wal(self.uri)
        self._client = None
        self.fast = SqliteStore.open(self.uri, experiment)
        if self.fast is None:
            self.experiment_id = self._open_with_mlflow(experiment)
            self.fast = SqliteStore.open(self.uri, experiment)
        else:
            self.experiment_id = self.fast.experiment_id
        self._queued: list[tuple] = []
        self._oldest = 0.0
        self.versions = {"gsibench_version": gsibench.__version__, "torch_version": package_version("torch"),
                         "git_commit": git_commit(), "git_dirty": git_dirty()}

    @property
    def client(self):
        """An ``MlflowClient`` on the store (created on first use: MLflow takes seconds to import)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _open_with_mlflow(self, experiment: str) -> str:
        """The experiment's id, creating the store (MLflow runs its migrations) and the experiment if needed."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                try:
                    return self.client.create_experiment(experiment, artifact_location=self._artifacts())
                except MlflowException as error:  # another driver created it in the meantime
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    return self.client.get_experiment_by_name(experiment).experiment_id
            return found.experiment_id
        except MlflowException as error:
            raise UsageError(f"MLflow tracking store '{self.uri}' is not usable: {error.message}") from None
        except Exception as error:  # connection refused, DNS, ...
            raise UsageError(f"MLflow tracking store '{self.uri}' is unreachable: {error}") from None

    def _artifacts(self) -> str | None:
        """Artifacts of a SQLite store go beside the database file; a server decides its own."""
        path = sqlite_path(self.uri)
        return None if path is None else (path.parent / "mlruns").resolve().as_uri()

    def claim_ops(self):
        """The store operations a driver's claims use (:mod:`gsibench.tracking.claim_store`)."""
        from gsibench.tracking.claim_store import ops_for

        return ops_for(self)

    # ---- reading ------------------------------------------------------------------------------
    def runs(self, filter_string: str = "") -> list:
        """Every run of the experiment matching ``filter_string`` (MLflow ``Run`` objects, all pages)."""
        self.flush()
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def rows(self, run_ids: set[str] | None = None) -> list[dict]:
        """One flat dict per run (``run_id``, ``status``, ``start_time``, then every tag, param and
        summary metric by its name), optionally only the runs in ``run_ids``."""
        self.flush()
        if self.fast is not None:
            return self.fast.rows(run_ids)
        out = []
        for run in self.runs():
            if run_ids is None or run.info.run_id in run_ids:
                out.append({"run_id": run.info.run_id, "status": run.info.status, "start_time": run.info.start_time,
                            **run.data.tags, **run.data.params, **run.data.metrics})
        return out

    def finished(self) -> dict[str, str]:
        """cell key -> run id of its FINISHED run."""
        self.flush()
        if self.fast is not None:
            return self.fast.finished()
        return {run.data.tags["cell_key"]: run.info.run_id
                for run in self.runs("attributes.status = 'FINISHED'") if "cell_key" in run.data.tags}

    def load_trace(self, run_id: str, cell: Cell) -> CellResult:
        """The stored result of a finished run, enough to serve as a clean twin."""
        self.flush()
        if self.fast is not None and self.fast.artifact(run_id, "trace.npz").is_file():
            arrays = read_trace(self.fast.artifact(run_id, "trace.npz"))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                arrays = read_trace(Path(self.client.download_artifacts(run_id, "trace.npz", tmp)))
        scalars = arrays.pop("scalars")
        final = arrays.pop("final_params", None)
        travel, val_score, diverged = (float(x) for x in scalars)
        return CellResult(cell, "finished", diverged=bool(diverged), series=arrays, final_params=final,
                          travel=travel, val_score=val_score)

    # ---- writing ------------------------------------------------------------------------------
    def log(self, result: CellResult, comparison: dict[str, float] | None = None,
            twin_run_id: str | None = None, run_id: str | None = None) -> str:
        """Write one cell's run (now, or with the next batch) — into ``run_id``, the cell's claim
        (:mod:`gsibench.tracking.claims`), when given; returns its run id. Raises :class:`WriteFailed` when
        the store refuses it, with every run that did not get in."""
        record = self.record(result, comparison, twin_run_id, run_id)
        self._queued.append((result, comparison, twin_run_id))
        if self.fast is None:
            try:
                self._log_with_mlflow(record)
            except BaseException as error:
                queued, self._queued = self._queued, []
                if isinstance(error, Exception):
                    raise WriteFailed(error, queued) from error
                raise
            self._queued = []
            return record.run_id
        if not self.fast.pending:
            self._oldest = time.monotonic()
        self.fast.add(record)
        if len(self.fast.pending) >= FLUSH_RUNS or time.monotonic() - self._oldest >= FLUSH_SECONDS:
            self.flush()
        return record.run_id

    def flush(self) -> None:
        """Write the queued runs now (the driver calls this when a battery ends or stops)."""
        if self.fast is None or not self.fast.pending:
            return
        try:
            self.fast.flush()
        except Exception as error:
            queued, self._queued, self.fast.pending = self._queued, [], []
            raise WriteFailed(error, queued) from error
        self._queued = []

    def record(self, result: CellResult, comparison: dict[str, float] | None, twin_run_id: str | None,
               run_id: str | None = None) -> RunRecord:
        """The whole run of a result: tags, params, summary metrics, thinned series and the artifact."""
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
        metrics = [(k, float(v), now, 0) for k, v in result.metrics(comparison).items()]
        stride = max(1, math.ceil(len(result.update_norm) / SERIES_POINTS))
        for name in LOGGED_SERIES:
            values = result.series.get(name)
            if values is not None:
                metrics += [(f"series.{name}", float(values[k]), now, k) for k in range(0, len(values), stride)]
        if result.status == "failed":
            artifacts = {"traceback.txt": (result.error or "").encode()}
        else:
            artifacts = {"trace.npz": trace_bytes(result)}
        return RunRecord(run_id or uuid.uuid4().hex, cell.label(), now - int(result.wall_seconds * 1000), now,
                         "FAILED" if result.status == "failed" else "FINISHED", tags,
                         {k: str(v) for k, v in self._params(result).items()}, metrics, artifacts,
                         claimed=run_id is not None)

    def _log_with_mlflow(self, record: RunRecord) -> None:
        """The same run through ``MlflowClient`` (a server, or a store of another schema)."""
        from mlflow.entities import Metric, Param, RunTag

        if record.claimed:  # the run exists (a claim): its tags become the result's
            self.client.log_batch(record.run_id, tags=[RunTag(k, v) for k, v in record.tags.items()])
        else:
            run = self.client.create_run(self.experiment_id, start_time=record.start_time, tags=record.tags,
                                         run_name=record.name)
            record.run_id = run.info.run_id
        try:
            self.client.log_batch(record.run_id, metrics=[Metric(*m) for m in record.metrics],
                                  params=[Param(k, v) for k, v in record.params.items()])
            with tempfile.TemporaryDirectory() as tmp:
                for name, content in record.artifacts.items():
                    (Path(tmp) / name).write_bytes(content)
                    self.client.log_artifact(record.run_id, str(Path(tmp) / name))
        except KeyboardInterrupt:  # Ctrl-C while writing: mark the run now rather than at the next start
            with suppress(Exception):
                self.client.set_terminated(record.run_id, "KILLED")
            raise
        self.client.set_terminated(record.run_id, record.status, end_time=record.end_time)

    def _params(self, result: CellResult) -> dict[str, object]:
        cell = result.cell
        params = {"optimizer": cell.optimizer, "optimizer_name": cell.optimizer_name, "task": cell.task,
                  "task_name": cell.task_name, "perturbation": cell.perturbation, "seed": cell.seed,
                  "steps": cell.steps, "schedule": cell.schedule, "warmup": cell.warmup, "clip": cell.clip,
                  "device": cell.device, "imports": ",".join(cell.imports), **self.versions}
        params.update({f"opt.{k}": v for k, v in cell.hparams})
        params.update({f"task.{k}": v for k, v in cell.task_options})
        params.update({f"info.{k}": v for k, v in result.info.items()})
        if result.omega is not None:
            params.update(omega_window=result.omega.window, omega_warmup=result.omega.warmup)
        if result.score is not None:
            params.update(score_name=result.score.name, score_higher_is_better=result.score.higher_is_better)
        return params


def trace_bytes(result: CellResult) -> bytes:
    """``trace.npz``: every step's series, (travel, val_score, diverged), and a clean run's final θ."""
    arrays = dict(result.series)
    arrays["scalars"] = np.array([result.travel, result.val_score, float(result.diverged)])
    if result.cell.is_clean and result.final_params is not None:
        arrays["final_params"] = result.final_params
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: float32 parameters hardly compress, and zlib cost ~10 ms a run
    return buffer.getvalue()


def read_trace(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
