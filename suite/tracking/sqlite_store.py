"""Whole runs straight into an MLflow SQLite store, and the few reads a battery needs, without MLflow's ORM.

Logging a run through ``MlflowClient`` costs 100–400 ms of the driver's CPU here (one ORM object per
metric row: a cell writes ~800 — three thinned step series and the summary), about as much as a small
cell takes to train. A battery writes whole, finished runs, so this module writes exactly the rows
MLflow's own ``SqlAlchemyStore`` writes for ``create_run`` + ``log_batch`` + ``log_artifact`` +
``set_terminated`` — ``runs``, ``tags`` (with ``mlflow.runName``), ``params``, ``metrics`` (NaN as
``is_nan``, ±inf as ±max float, as MLflow sanitises them) and ``latest_metrics`` — with ``executemany``,
several runs per transaction, and puts the artifact files in the run's artifact folder directly.

It is used only when the store's schema is the one it was written against (:data:`SCHEMA`, MLflow's
alembic revision; checked on open) and the experiment keeps its artifacts on local disk; otherwise the
tracker logs through ``MlflowClient``. ``tests/tracking/test_sqlite_store.py`` logs the same result both
ways and reads both back with ``MlflowClient`` to show the runs are the same. Readers (the leaderboard,
``mlflow ui``) see nothing different.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEMA = "dc11669786a5"
"""The alembic revision of MLflow 3.17's tracking schema, the one these statements match."""
BUSY_TIMEOUT = 30.0
MAX_FLOAT = 1.7976931348623157e308
INSERT_RUN = ("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
              "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
              "VALUES (?, ?, 'UNKNOWN', '', '', 'unknown', ?, ?, ?, '', 'active', ?, ?)")
"""A run's row as ``create_run`` writes it: (run id, name, status, start, end, artifact uri, experiment)."""


@dataclass
class RunRecord:
    """Everything one finished run consists of."""

    run_id: str
    name: str
    start_time: int
    end_time: int
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[tuple[str, float, int, int]]
    """(key, value, timestamp ms, step)."""
    artifacts: dict[str, bytes] = field(default_factory=dict)
    """file name -> content, written into the run's artifact folder."""
    claimed: bool = False
    """The run exists already (a driver's claim, created RUNNING): it is completed, not inserted."""


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def local_path(artifact_uri: str) -> Path | None:
    """The folder of a ``file:`` (or plain path) artifact location, ``None`` for anything remote."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(artifact_uri) if parsed.scheme == "" else None


def _sanitise(value: float) -> tuple[float, int]:
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (MAX_FLOAT if value > 0 else -MAX_FLOAT), 0
    return float(value), 0


def _known(path: Path | None) -> bool:
    """Whether ``path`` is a SQLite store at :data:`SCHEMA`."""
    if path is None or not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as connection:
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return False
    return bool(version) and version[0] == SCHEMA


def experiment_names(uri: str) -> list[str] | None:
    """The active experiments of a store this module reads (``None``: read it through MLflow)."""
    path = sqlite_path(uri)
    if not _known(path):
        return None
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as connection:
        return [row[0] for row in connection.execute(
            "SELECT name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY experiment_id")]


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]] | None:
    """(step, value) of a metric history, by step, NaN left out (``None``: read it through MLflow)."""
    path = sqlite_path(uri)
    if not _known(path):
        return None
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as connection:
        return connection.execute(
            "SELECT step, value FROM metrics WHERE run_uuid = ? AND key = ? AND NOT is_nan ORDER BY step, timestamp",
            (run_id, key)).fetchall()


class SqliteStore:
    """An MLflow SQLite store at the schema this module knows, for one experiment."""

    def __init__(self, path: Path, experiment_id: str, artifact_location: Path):
        self.path = path
        self.experiment_id = experiment_id
        self.artifact_location = artifact_location
        self.pending: list[RunRecord] = []

    @classmethod
    def open(cls, uri: str, experiment_name: str) -> SqliteStore | None:
        """The store, if ``uri`` is a SQLite file at :data:`SCHEMA` holding ``experiment_name`` with local
        artifacts; else ``None`` (the caller goes through MLflow)."""
        path = sqlite_path(uri)
        if not _known(path):
            return None
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as connection:
            found = connection.execute(
                "SELECT experiment_id, artifact_location FROM experiments WHERE name = ? AND lifecycle_stage = "
                "'active'", (experiment_name,)).fetchone()
        if not found:
            return None
        artifacts = local_path(found[1] or "")
        return None if artifacts is None else cls(path, str(found[0]), artifacts)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        return connection

    # ---- reading ------------------------------------------------------------------------------
    def finished(self) -> dict[str, str]:
        """cell key -> run id of its FINISHED run."""
        with closing(self._connect()) as connection:
            rows = connection.execute(
                "SELECT t.value, r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'cell_key' "
                "WHERE r.experiment_id = ? AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active' "
                "ORDER BY r.start_time", (int(self.experiment_id),)).fetchall()
        return dict(rows)

    def rows(self, run_ids: Iterable[str] | None = None) -> list[dict]:
        """One flat dict per run: ``run_id``, ``status``, ``start_time``, and every tag, param and latest
        metric by its key (as ``search_runs`` gives them, without prefixes)."""
        with closing(self._connect()) as connection:
            runs = connection.execute(
                "SELECT run_uuid, status, start_time FROM runs WHERE experiment_id = ? AND lifecycle_stage = 'active'",
                (int(self.experiment_id),)).fetchall()
            wanted = None if run_ids is None else set(run_ids)
            out = {run: {"run_id": run, "status": status, "start_time": start} for run, status, start in runs
                   if wanted is None or run in wanted}
            for table, value in (("tags", "value"), ("params", "value"),
                                 ("latest_metrics", "CASE WHEN is_nan THEN 'nan' ELSE value END")):
                query = (f"SELECT x.run_uuid, x.key, {value} FROM {table} x JOIN runs r ON r.run_uuid = x.run_uuid "
                         "WHERE r.experiment_id = ?")
                for run, key, content in connection.execute(query, (int(self.experiment_id),)):
                    if run in out:
                        out[run][key] = float(content) if table == "latest_metrics" else content
        return list(out.values())

    def artifact(self, run_id: str, name: str) -> Path:
        return self.artifact_location / run_id / "artifacts" / name

    def runs_where(self, where: str, arguments: tuple = ()) -> list[tuple[str, str, int, int | None, dict]]:
        """(run id, status, start ms, end ms, tags) of the experiment's active runs matching the SQL
        condition ``where`` on the ``runs`` table."""
        with closing(self._connect()) as connection:
            found = connection.execute(
                "SELECT run_uuid, status, start_time, end_time FROM runs WHERE experiment_id = ? AND "
                f"lifecycle_stage = 'active' AND ({where})", (int(self.experiment_id), *arguments)).fetchall()
            tags: dict[str, dict[str, str]] = {run[0]: {} for run in found}
            for start in range(0, len(found), 500):  # SQLite's limit on bound variables
                chunk = [run[0] for run in found[start:start + 500]]
                for run, key, value in connection.execute(
                        f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({','.join('?' * len(chunk))})",
                        chunk):
                    tags[run][key] = value
        return [(run, status, begun, ended, tags[run]) for run, status, begun, ended in found]

    # ---- writing ------------------------------------------------------------------------------
    def create_run(self, run_id: str, name: str, start_time: int, tags: dict[str, str]) -> None:
        """A ``RUNNING`` run with ``tags``, at once (not queued): what ``MlflowClient.create_run`` writes."""
        artifact_uri = (self.artifact_location / run_id / "artifacts").as_uri()
        with closing(self._connect()) as connection, connection:
            connection.execute(INSERT_RUN, (run_id, name, "RUNNING", start_time, None, artifact_uri,
                                            int(self.experiment_id)))
            connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                                   [(k, v, run_id) for k, v in {**tags, "mlflow.runName": name}.items()])

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                               (key, value, run_id))

    def terminate(self, run_id: str, status: str, end_time: int) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                               (status, end_time, run_id))

    def delete_run(self, run_id: str, when: int) -> None:
        """What ``MlflowClient.delete_run`` does: the run stays, marked deleted (``mlflow gc`` removes it)."""
        with closing(self._connect()) as connection, connection:
            connection.execute("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_uuid = ?",
                               (when, run_id))

    def add(self, record: RunRecord) -> None:
        """Queue a run; it is in the store after the next :meth:`flush`."""
        self.pending.append(record)

    def flush(self) -> int:
        """Write every queued run: artifact files first, then all rows in one transaction (a run is in
        the store, FINISHED, only with its artifacts). Returns how many runs were written; on an error
        nothing of the batch is committed and the queue is kept."""
        if not self.pending:
            return 0
        for record in self.pending:
            folder = self.artifact_location / record.run_id / "artifacts"
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in record.artifacts.items():
                (folder / name).write_bytes(content)
        runs, tags, params, metrics, latest = [], [], [], [], []
        for r in self.pending:
            artifact_uri = (self.artifact_location / r.run_id / "artifacts").as_uri()
            runs.append((r.run_id, r.name, r.status, r.start_time, r.end_time, artifact_uri,
                         int(self.experiment_id)))
            tags += [(key, value, r.run_id) for key, value in {**r.tags, "mlflow.runName": r.name}.items()]
            params += [(key, value, r.run_id) for key, value in r.params.items()]
            newest: dict[str, tuple] = {}
            for key, value, timestamp, step in dict.fromkeys(r.metrics):
                stored, is_nan = _sanitise(value)
                metrics.append((key, stored, timestamp, r.run_id, step, is_nan))
                if key not in newest or (step, timestamp, stored) > newest[key][:3]:
                    newest[key] = (step, timestamp, stored, is_nan)
            latest += [(key, stored, timestamp, step, is_nan, r.run_id)
                       for key, (step, timestamp, stored, is_nan) in newest.items()]
        claimed = [(r.status, r.end_time, r.run_id) for r in self.pending if r.claimed]
        with closing(self._connect()) as connection, connection:
            connection.executemany(INSERT_RUN, [row for row, r in zip(runs, self.pending) if not r.claimed])
            connection.executemany("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", claimed)
            connection.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
            connection.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
            connection.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                                   "VALUES (?, ?, ?, ?, ?, ?)", metrics)
            connection.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                                   "VALUES (?, ?, ?, ?, ?, ?)", latest)
        written = len(self.pending)
        self.pending = []
        return written
