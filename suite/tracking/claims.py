"""Claims: a cell's MLflow run is its claim, so that drivers sharing one store run each cell once.

Two ``gsibench run`` of one battery against one store (a person and a CI job, a double launch) must not
both train every cell. MLflow has no compare-and-set, so a claim is settled by a rule every driver
applies to the same data:

1. **Claim.** Before a cell starts, its driver creates the cell's run, ``RUNNING``, tagged with the cell
   key and the driver (id, host, pid) — the run the result is later written into.
2. **Settle.** After :data:`SETTLE` seconds (longer than a create takes to become visible), the driver
   reads back every claim on its cells: the live ones (``RUNNING``, not stale) and the runs that ended
   since it started.
3. **Decide.** The earliest claim wins, by ``(start_time, run_id)``; every driver computes the same
   winner. A loser withdraws (its run is marked ``KILLED`` and deleted) and later picks up the winner's
   result instead of computing its own.

A driver's claims carry a heartbeat (tag ``gsibench.heartbeat``, refreshed every :data:`HEARTBEAT`
seconds by a thread). A claim is *stale* — its driver died — when the heartbeat is older than
:data:`STALE` seconds, when it has none, or when its process is gone from this host; stale claims are
marked ``KILLED`` (:meth:`Claims.reap`) and their cells taken over. Claims are created a batch ahead, so
the settling overlaps the cells already running. Claims are claimed lazily, as the executor takes cells,
so that a driver started later shares the work that is left.

What settling cannot rule out (a create delayed beyond :data:`SETTLE`) the driver catches when it writes:
a cell that already has a ``FINISHED`` run is not written twice (:meth:`Claims.finished_by_other`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from gsibench.battery.cells import Cell
from gsibench.tracking.claim_store import RunView
from gsibench.tracking.store import Tracker

SETTLE = {"local": 0.3, "server": 1.5}
"""Seconds between creating a batch of claims and reading them back: a SQLite file on this machine
commits within a write (milliseconds, up to a concurrent write's length); a server adds a round trip."""
HEARTBEAT = 10.0
"""Seconds between heartbeats of a driver's live claims."""
STALE = 90.0
"""A claim whose heartbeat is older than this belongs to a driver that died."""
POLL = 2.0
"""Seconds between looks at the cells another driver is running."""
TAG_DRIVER, TAG_HOST, TAG_PID, TAG_BEAT = "gsibench.driver", "gsibench.host", "gsibench.pid", "gsibench.heartbeat"


@dataclass(frozen=True)
class Claim:
    cell: Cell
    run_id: str
    start_time: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Claims:
    """One driver's claims on the cells of one experiment (see the module docstring)."""

    def __init__(self, tracker: Tracker, batch: int = 8):
        self.tracker, self.ops = tracker, tracker.claim_ops()
        self.batch = max(1, batch)
        self.driver, self.host, self.pid = uuid.uuid4().hex[:12], socket.gethostname(), os.getpid()
        self.settle = SETTLE["server" if tracker.uri.startswith(("http://", "https://")) else "local"]
        self.since = int(time.time() * 1000) - 60_000  # a minute of margin for clocks that disagree
        """Runs that ended after this (ms) may be other drivers' claims on this battery's cells."""
        self._mine: dict[str, str] = {}  # cell key -> run id of this driver's live claim
        self._lock = threading.Lock()

    # ---- staleness --------------------------------------------------------------------------------
    def stale(self, run: RunView) -> bool:
        """Whether a RUNNING run is a dead driver's (or has no heartbeat at all: not a live claim)."""
        tags = run.tags
        if tags.get(TAG_DRIVER) == self.driver:
            return False
        try:
            beat = float(tags[TAG_BEAT])
        except (KeyError, ValueError):
            return True
        if tags.get(TAG_HOST) == self.host and tags.get(TAG_PID, "").isdigit() and not _alive(int(tags[TAG_PID])):
            return True
        return time.time() - beat > STALE

    def reap(self) -> int:
        """Mark the runs of dead drivers ``KILLED`` (their cells are redone); returns how many."""
        stale = [run for run in self.ops.running() if self.stale(run)]
        for run in stale:
            self.ops.terminate(run.run_id, "KILLED")
        return len(stale)

    # ---- claiming ---------------------------------------------------------------------------------
    def _create(self, cells: list[Cell]) -> tuple[list[Claim], float]:
        claims = []
        for cell in cells:
            now = int(time.time() * 1000)
            tags = {"cell_key": cell.key, TAG_DRIVER: self.driver, TAG_HOST: self.host, TAG_PID: str(self.pid),
                    TAG_BEAT: f"{time.time():.3f}"}
            run_id = self.ops.create(cell.label(), now, tags)
            claims.append(Claim(cell, run_id, now))
            with self._lock:
                self._mine[cell.key] = run_id
        return claims, time.monotonic()

    def _claims_on(self, keys: set[str]) -> dict[str, list[RunView]]:
        """cell key -> the runs that claim it now: live claims and runs that ended since this driver began."""
        found: dict[str, list[RunView]] = {}
        live = [run for run in self.ops.running() if not self.stale(run)]
        ended = self.ops.ended_since(self.since)
        for run in live + [run for run in ended if run.status in ("FINISHED", "FAILED")]:
            key = run.tags.get("cell_key")
            if key in keys:
                found.setdefault(key, []).append(run)
        return found

    def _settle(self, claims: list[Claim], created: float, lost: dict[str, str]) -> list[Cell]:
        """The cells whose claim won; the others' winners go into ``lost`` and their claims are withdrawn."""
        time.sleep(max(0.0, created + self.settle - time.monotonic()))
        found = self._claims_on({claim.cell.key for claim in claims})
        won = []
        for claim in claims:
            rivals = [(run.start_time, run.run_id) for run in found.get(claim.cell.key, [])]
            winner = min(rivals + [(claim.start_time, claim.run_id)])[1]
            if winner == claim.run_id:
                won.append(claim.cell)
            else:
                lost[claim.cell.key] = winner
                self.withdraw(claim.cell.key)
        return won

    def lazily(self, cells: Iterable[Cell], lost: dict[str, str]) -> Iterator[Cell]:
        """The cells this driver won, claimed a batch ahead of the executor taking them; the winning run of
        every other cell goes into ``lost`` (cell key -> run id). If the store fails, the cells not yet
        claimed are given out unclaimed: nobody can coordinate through a store that is gone, and their
        results go to the spool (:mod:`gsibench.execution.spool`)."""
        cells = list(cells)
        chunks = [cells[i:i + self.batch] for i in range(0, len(cells), self.batch)]
        done, won = 0, []
        try:
            pending = self._create(chunks[0] if chunks else [])
            while pending[0]:
                won = self._settle(*pending, lost)
                done += 1
                pending = self._create(chunks[done] if done < len(chunks) else [])  # settles while `won` run
                yield from won
                won = []
        except Exception:  # the store went away (the driver notices when it writes the next result)
            yield from won + [cell for chunk in chunks[done:] for cell in chunk if cell.key not in lost]

    def take(self, key: str) -> str | None:
        """The run to write ``key``'s result into (this driver's claim), which stops being a live claim."""
        with self._lock:
            return self._mine.pop(key, None)

    def withdraw(self, key: str) -> None:
        """Give up this driver's claim on ``key`` (lost a race, or the result will not be written)."""
        run_id = self.take(key)
        if run_id is not None:
            with suppress(Exception):
                self.ops.terminate(run_id, "KILLED")
                self.ops.delete(run_id)

    def withdraw_all(self) -> None:
        """Claims still held when the driver stops (Ctrl-C, an error): ``KILLED``, their cells redone later."""
        with self._lock:
            held, self._mine = list(self._mine.values()), {}
        for run_id in held:
            with suppress(Exception):
                self.ops.terminate(run_id, "KILLED")

    def finished_by_other(self, key: str) -> str | None:
        """The run id of a FINISHED run of ``key`` another driver wrote (a race settling could not see)."""
        return self.ops.finished_of(key)

    # ---- waiting for the others --------------------------------------------------------------------
    def wait(self, lost: dict[str, str]) -> tuple[dict[str, RunView], list[str]]:
        """Block until a cell in ``lost`` is done elsewhere or free again. Returns (cell key -> the other
        driver's ended run, for FINISHED and FAILED runs) and the keys whose claim died or was withdrawn
        (to be claimed again); both are removed from ``lost``."""
        while True:
            live = {run.run_id: run for run in self.ops.running()}
            ended = {run.run_id: run for run in self.ops.ended_since(self.since)}
            done, free = {}, []
            for key, run_id in list(lost.items()):
                if run_id in ended and ended[run_id].status in ("FINISHED", "FAILED"):
                    done[key] = ended[run_id]
                elif run_id not in live or self.stale(live[run_id]):
                    free.append(key)  # withdrawn, killed, deleted or its driver is gone
                else:
                    continue
                del lost[key]
            if done or free:
                return done, free
            time.sleep(POLL)

    # ---- the heartbeat ------------------------------------------------------------------------------
    @contextmanager
    def heartbeat(self):
        """Refresh this driver's live claims every :data:`HEARTBEAT` seconds while the block runs; on the
        way out (normally or not) withdraw the claims still held."""
        stop = threading.Event()
        set_tag = self.ops.tagger()  # its own client or connections: it runs beside the driver

        def beat() -> None:
            while not stop.wait(HEARTBEAT):
                with self._lock:
                    held = list(self._mine.values())
                for run_id in held:
                    with suppress(Exception):  # a failing store: the claims go stale, as they should
                        set_tag(run_id, TAG_BEAT, f"{time.time():.3f}")

        thread = threading.Thread(target=beat, name="gsibench-heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            self.withdraw_all()
