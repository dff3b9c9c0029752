"""The few store operations claims need: straight SQL on a SQLite store, MLflow's client on any other.

:mod:`gsibench.tracking.claims` creates a run per cell, reads the live and the recently ended runs back,
refreshes heartbeats and withdraws claims. Through ``MlflowClient`` on a SQLite file that costs ~85 ms of
the driver's time per cell (ORM objects for every run it reads back), more than a small cell takes to
train; :class:`SqliteOps` does the same with a few statements (the rows ``create_run``, ``set_tag``,
``set_terminated`` and ``delete_run`` write, see :mod:`~gsibench.tracking.sqlite_store`). Both give runs
as :class:`RunView`, so claims read them one way. ``tests/tracking/test_claims.py`` runs the claim rules
on both.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from gsibench.tracking.store import Tracker


@dataclass(frozen=True)
class RunView:
    """What claims read of a run."""

    run_id: str
    status: str
    start_time: int
    end_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


def _now() -> int:
    return int(time.time() * 1000)


class MlflowOps:
    """Through ``MlflowClient``: a tracking server, or a store of a schema the SQL does not know."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def _views(self, filter_string: str) -> list[RunView]:
        return [RunView(run.info.run_id, run.info.status, run.info.start_time, run.info.end_time, run.data.tags)
                for run in self.tracker.runs(filter_string)]

    def running(self) -> list[RunView]:
        return self._views("attributes.status = 'RUNNING'")

    def ended_since(self, ms: int) -> list[RunView]:
        return self._views(f"attributes.end_time >= {ms}")

    def finished_of(self, key: str) -> str | None:
        runs = self.tracker.runs(f"tags.cell_key = '{key}' and attributes.status = 'FINISHED'")
        return runs[0].info.run_id if runs else None

    def create(self, name: str, start_time: int, tags: dict[str, str]) -> str:
        return self.tracker.client.create_run(self.tracker.experiment_id, start_time=start_time, tags=tags,
                                              run_name=name).info.run_id

    def terminate(self, run_id: str, status: str) -> None:
        self.tracker.client.set_terminated(run_id, status)

    def delete(self, run_id: str) -> None:
        self.tracker.client.delete_run(run_id)

    def tagger(self):
        """``set_tag(run_id, key, value)`` for another thread (the heartbeat): its own client."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracker.uri).set_tag


class SqliteOps:
    """Straight SQL on the tracker's SQLite store (each call opens its own connection: thread-safe)."""

    def __init__(self, tracker: Tracker):
        self.tracker, self.store = tracker, tracker.fast

    def _views(self, where: str, arguments: tuple = ()) -> list[RunView]:
        # Results this driver still queues (flushed within seconds) are of cells it holds: claims look only
        # at other drivers' runs, so reading does not flush (which would defeat the batching).
        return [RunView(*row) for row in self.store.runs_where(where, arguments)]

    def running(self) -> list[RunView]:
        return self._views("status = 'RUNNING'")

    def ended_since(self, ms: int) -> list[RunView]:
        return self._views("end_time >= ?", (ms,))

    def finished_of(self, key: str) -> str | None:
        runs = self._views("status = 'FINISHED' AND run_uuid IN (SELECT run_uuid FROM tags WHERE key = 'cell_key' "
                           "AND value = ?)", (key,))
        return runs[0].run_id if runs else None

    def create(self, name: str, start_time: int, tags: dict[str, str]) -> str:
        run_id = uuid.uuid4().hex
        self.store.create_run(run_id, name, start_time, tags)
        return run_id

    def terminate(self, run_id: str, status: str) -> None:
        self.store.terminate(run_id, status, _now())

    def delete(self, run_id: str) -> None:
        self.store.delete_run(run_id, _now())

    def tagger(self):
        return self.store.set_tag


def ops_for(tracker: Tracker) -> MlflowOps | SqliteOps:
    return SqliteOps(tracker) if tracker.fast is not None else MlflowOps(tracker)
