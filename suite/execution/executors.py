"""Executors run cells and hand results back to the driver, which alone writes to MLflow.

An executor is anything with ``run(cells) -> Iterator[CellResult]`` yielding results as cells
complete (in any order); cells are started in the order given, so clean twins (first in a
battery's plan) start before the perturbed runs that need them. ``cells`` may be a lazy iterable: the
local executor and the pool take the next cell only when they can start it (the driver claims cells
that way, :mod:`gsibench.tracking.claims`).

**Time limits.** The pool and Ray fail a cell that runs past its limit (``--cell-timeout``;
:mod:`gsibench.battery.limits`) with reason ``timeout``, kill its worker and carry on with a fresh
one. The local executor runs cells in this process and cannot stop one: a timeout needs a worker process,
so :func:`make_executor` gives a one-worker pool for one job when a limit is set explicitly.

* ``local``: this machine. One job runs cells one after another in this process (the most
  debuggable); ``jobs > 1`` is the process pool.
* ``pool``: a process pool of ``jobs`` workers (default: every core), even for one job. Each worker
  sets ``torch.set_num_threads(cores // jobs)`` so that workers do not oversubscribe the cores
  (OpenMP spin-waits under oversubscription cost more than the work).
* ``ray``: each cell a Ray task (``--executor ray --address auto``), for more than one machine.

**Why not concurrent.futures.** A ``ProcessPoolExecutor`` whose worker dies (a plugin calling
``os._exit``, a segfault, the OOM killer) raises ``BrokenProcessPool`` for every pending cell. Here
each worker is a ``multiprocessing`` process with its own pipe; the driver waits on the pipes and
the process sentinels together (``multiprocessing.connection.wait``), so it always knows which cell
a dead worker was running: that cell is reported failed, a fresh worker takes its place, and the
battery goes on. Workers come from a ``forkserver`` that has imported torch and the registries once
(starting a worker costs milliseconds, and no worker is forked from a process whose OpenMP or CUDA
state is live); ``spawn`` where there is no forkserver. A worker ignores SIGINT (Ctrl-C stops the
driver, which stops the workers) and exits on its own when the driver dies, even by SIGKILL.

Plugins reach workers by name: an import path (``mypkg.opt:MyAdam``) or a module in the battery's
``imports`` (for ``@register`` decorators); a workers' ``sys.path`` and working directory are the
driver's.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from gsibench.battery.cells import Cell
from gsibench.battery.limits import OFF, cell_limit, describe
from gsibench.core.errors import UsageError, unknown_name
from gsibench.execution.runner import run_cell
from gsibench.measure.result import CellResult

PRELOAD = ("gsibench.execution.runner", "gsibench.optimizers.builtins", "gsibench.tasks.builtins", "torch._dynamo",
           "sklearn.datasets", "sklearn.model_selection")
"""Modules the forkserver imports once, so that workers start warm (``torch.optim.Optimizer`` imports
``torch._dynamo`` on first use, 3 s; the digits tasks load their data with scikit-learn). As with any
``multiprocessing`` start method but fork, a worker also imports the driver's main script (as
``__mp_main__``): a script driving a pool keeps heavy imports (MLflow) out of its top level."""


class Executor(Protocol):
    def run(self, cells: Iterable[Cell]) -> Iterator[CellResult]: ...


def available_cores() -> int:
    """Cores this process may use (its CPU affinity), which is what ``--jobs`` defaults to."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """In-process, sequential: the simplest and the most debuggable; no time limit (it needs a worker)."""

    timeout = OFF

    def run(self, cells: Iterable[Cell]) -> Iterator[CellResult]:
        for cell in cells:
            yield run_cell(cell)


# ---- the process pool ---------------------------------------------------------------------------
def _exit_with_parent() -> None:
    """Block until the driver process is gone, then end this worker at once."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


def _worker(conn: Connection, threads: int) -> None:
    """A pool worker: receive a cell, send back its result, until told to stop (``None``)."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    while True:
        try:
            cell = conn.recv()
        except (EOFError, OSError):
            return
        if cell is None:
            return
        result = run_cell(cell)
        try:
            conn.send(result)
        except (EOFError, OSError):
            return
        except Exception as error:  # a result that does not pickle (say, a plugin's object in info)
            conn.send(CellResult(cell, "failed", wall_seconds=result.wall_seconds,
                                 error=f"the cell's result could not be sent to the driver: {error!r}"))


@dataclass
class _Slot:
    """One worker process, its end of the pipe, and the cell it is running (if any)."""

    process: Any
    conn: Connection
    cell: Cell | None = None
    started: float = 0.0
    limit: float | None = None
    """Seconds the running cell may take (``None``: no limit)."""

    @property
    def deadline(self) -> float:
        return math.inf if self.cell is None or self.limit is None else self.started + self.limit


def timed_out(cell: Cell, seconds: float, limit: float, setting: float | str | None) -> CellResult:
    """The failed result of a cell stopped at its time limit."""
    return CellResult(cell, "failed", wall_seconds=seconds, info={"failure": "timeout", "cell_timeout": f"{limit:g}"},
                      error=f"timeout: the cell ran past its limit of {limit:g} s (--cell-timeout; here "
                            f"{describe(setting)}); its worker was killed and replaced, the other cells were "
                            "not affected")


class PoolExecutor:
    """Cells in ``jobs`` worker processes; a worker that dies fails only its own cell."""

    def __init__(self, jobs: int | None = None, start_method: str | None = None, threads: int | None = None,
                 timeout: float | str | None = None):
        self.jobs = jobs or available_cores()
        self.timeout = timeout
        """The cell time limit setting (:func:`gsibench.battery.limits.cell_limit`)."""
        if self.jobs < 1:
            raise UsageError(f"jobs must be at least 1, got {self.jobs}")
        methods = multiprocessing.get_all_start_methods()
        self.start_method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        if self.start_method not in ("forkserver", "spawn"):
            raise UsageError(f"start method must be forkserver or spawn (fork after torch is unsafe), "
                             f"got {self.start_method!r}")
        self.threads = threads or max(1, available_cores() // self.jobs)

    def _start(self, context) -> _Slot:
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, self.threads), daemon=True,
                                  name="gsibench-worker")
        process.start()
        theirs.close()
        return _Slot(process, ours)

    def run(self, cells: Iterable[Cell]) -> Iterator[CellResult]:
        queue = _Queue(cells)
        if queue.peek() is None:
            return
        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(list(PRELOAD))
        slots: list[_Slot] = []
        try:
            while len(slots) < self.jobs and queue.peek() is not None:  # a worker per cell, up to jobs
                slots.append(self._start(context))
                self._feed(slots, len(slots) - 1, queue, context)
            while any(slot.cell is not None for slot in slots):
                busy = [slot for slot in slots if slot.cell is not None]
                deadline = min(slot.deadline for slot in busy)
                left = None if deadline == math.inf else max(0.0, deadline - time.perf_counter())
                ready = set(wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=left))
                now = time.perf_counter()
                for index, slot in enumerate(slots):
                    if slot.cell is None:
                        continue
                    if {slot.conn, slot.process.sentinel} & ready:
                        result = self._receive(slot)
                        if result is None:  # the worker died while running the cell
                            result = self._death(slot)
                    elif now >= slot.deadline:
                        slot.process.kill()  # the worker is replaced before it takes the next cell
                        slot.process.join()
                        result = timed_out(slot.cell, now - slot.started, slot.limit, self.timeout)
                    else:
                        continue
                    slot.cell = None
                    self._feed(slots, index, queue, context)
                    yield result
        finally:
            self._stop(slots)

    def _feed(self, slots: list[_Slot], index: int, queue: _Queue, context) -> None:
        """Send the next queued cell to slot ``index``, first replacing its worker if that one is gone."""
        for _ in range(3):
            cell = queue.peek()
            if cell is None:
                return
            slot = slots[index]
            if slot.process.exitcode is not None:
                slot.conn.close()
                slot = slots[index] = self._start(context)
            try:
                slot.conn.send(cell)
            except OSError:  # died between two cells: replace it and try again
                slot.process.kill()
                slot.process.join()
                continue
            slot.cell, slot.started = queue.pop(), time.perf_counter()
            slot.limit = cell_limit(cell.task_name, cell.steps, self.timeout)
            return
        raise RuntimeError("gsibench worker processes die as soon as they start; see the messages above")

    @staticmethod
    def _receive(slot: _Slot) -> CellResult | None:
        try:
            if slot.conn.poll():
                return slot.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    @staticmethod
    def _death(slot: _Slot) -> CellResult:
        slot.process.join(timeout=5)
        code = slot.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        error = (f"the worker process running this cell {how} (the optimizer, the task or a plugin ended "
                 f"the process, or it ran out of memory); the other cells were not affected")
        return CellResult(slot.cell, "failed", wall_seconds=time.perf_counter() - slot.started, error=error,
                          info={"failure": "worker died", "worker_exitcode": str(code)})

    @staticmethod
    def _stop(slots: list[_Slot]) -> None:
        """Idle workers are asked to stop; busy ones (Ctrl-C, an error in the driver) are terminated."""
        for slot in slots:
            if slot.cell is None and not slot.conn.closed:
                try:
                    slot.conn.send(None)
                except OSError:
                    slot.process.kill()
            else:
                slot.process.terminate()
        for slot in slots:
            slot.process.join(timeout=5)
            if slot.process.exitcode is None:
                slot.process.kill()
                slot.process.join()
            slot.conn.close()


class _Queue:
    """Cells taken one at a time from an iterable (a list, or the driver's lazy claims)."""

    def __init__(self, cells: Iterable[Cell]):
        self._cells, self._next = iter(cells), None

    def peek(self) -> Cell | None:
        if self._next is None:
            self._next = next(self._cells, None)
        return self._next

    def pop(self) -> Cell:
        cell, self._next = self.peek(), None
        return cell


# ---- Ray ----------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'gsibench[ray]'") from None
    return ray


def _wants_gpu(cell: Cell) -> bool:
    """Whether a Ray task for ``cell`` must ask for a GPU (Ray hides GPUs from gsibench.tasks that do not)."""
    from gsibench.tasks import registry as task_registry

    if cell.device.startswith("cuda"):
        return True
    task = task_registry.get(cell.task_name)
    return cell.device == "auto" and (task.prefers_gpu or task.needs_gpu)


def _ray_cell(cell: Cell, threads: int) -> CellResult:
    """A Ray task: one cell, with torch limited to the task's CPUs."""
    import torch

    torch.set_num_threads(threads)
    return run_cell(cell)


class RayExecutor:
    """Each cell a Ray task (1 CPU); results return to the driver, which alone logs to MLflow.

    ``address``: ``auto`` (the cluster this machine belongs to, ``ray start --head``), ``ray://host:port``
    or ``host:port``; ``None`` starts a local Ray with ``jobs`` CPUs (or joins the one already
    initialised in this process). A worker that dies fails its cell (no retry: re-running the
    battery redoes failed cells). A cell on ``cuda`` (or ``auto`` for a GPU task) asks for one GPU when
    the cluster has any. Every node needs gsibench and the plugins the battery names installed.

    A local Ray started here runs its workers at niceness 0 (Ray's default is 15); a cluster started
    with ``ray start`` keeps its own setting (``RAY_worker_niceness=0 ray start --head`` gives the same).

    With a time limit (the default), at most as many cells as the cluster has CPUs are submitted at
    once, so that a cell's clock starts when it can start; one past its limit is cancelled (its worker
    killed) and failed with reason ``timeout``.
    """

    def __init__(self, address: str | None = None, jobs: int | None = None, timeout: float | str | None = None):
        self.ray = _import_ray()
        self.started = False
        self.timeout = timeout
        if not self.ray.is_initialized():
            options: dict[str, Any] = {"address": address, "log_to_driver": False, "include_dashboard": False,
                                       "logging_level": logging.WARNING}
            if address is None:
                options["num_cpus"] = jobs or available_cores()
                # Ray starts its workers at niceness 15: beside any other busy process (a second battery,
                # a build) they get almost no CPU, and every cell ran past its limit (measured: 2 busy
                # processes on 2 cores, 8 tiny cells never finished; at niceness 0 they took 9 s).
                options["_system_config"] = {"worker_niceness": 0}
            try:
                self.ray.init(**options)
            except ConnectionError as error:
                raise UsageError(f"no Ray cluster at --address {address}: {str(error).rstrip('.')}. Start one with "
                                 "`ray start --head`, or leave out --address for a local Ray") from None
            self.started = True

    def run(self, cells: Iterable[Cell]) -> Iterator[CellResult]:
        ray = self.ray
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        resources = ray.cluster_resources()
        has_gpus = resources.get("GPU", 0) > 0
        capacity = max(1, int(resources.get("CPU", 1))) if self.timeout != OFF else math.inf
        queue = _Queue(cells)
        pending: dict[Any, tuple[Cell, float, float | None]] = {}  # ref -> (cell, submitted, limit)
        try:
            while pending or queue.peek() is not None:
                while len(pending) < capacity and queue.peek() is not None:
                    cell = queue.pop()
                    ref = task.options(num_gpus=1 if has_gpus and _wants_gpu(cell) else 0).remote(cell, 1)
                    pending[ref] = (cell, time.perf_counter(), cell_limit(cell.task_name, cell.steps, self.timeout))
                deadline = min((t + limit for _, t, limit in pending.values() if limit is not None), default=math.inf)
                left = None if deadline == math.inf else max(0.0, deadline - time.perf_counter())
                done, _ = ray.wait(list(pending), num_returns=1, timeout=left)
                for ref in done:
                    cell, _, _ = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        result = CellResult(cell, "failed", error=f"the Ray task running this cell failed: {error}")
                    yield result
                now = time.perf_counter()
                for ref, (cell, submitted, limit) in list(pending.items()):
                    if limit is not None and now >= submitted + limit:
                        del pending[ref]
                        ray.cancel(ref, force=True)
                        yield timed_out(cell, now - submitted, limit, self.timeout)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if self.started:
                ray.shutdown()
                self.started = False


# ---- choosing one -------------------------------------------------------------------------------
def _local(jobs: int | None = None, timeout: float | str | None = None) -> Executor:
    """In-process for one job, else the pool; a time limit given explicitly needs a worker process, so one
    job then runs in a one-worker pool (the default limit is not applied in-process)."""
    if (jobs is not None and jobs > 1) or isinstance(timeout, float):
        return PoolExecutor(jobs or 1, timeout=timeout)
    return LocalExecutor()


EXECUTORS = {"local": _local, "pool": PoolExecutor, "ray": RayExecutor}


def make_executor(name: str, **options: Any) -> Executor:
    """``local`` (in-process, or the pool when ``jobs > 1``), ``pool`` or ``ray`` (takes ``address``)."""
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    options = {k: v for k, v in options.items() if v is not None}
    if "address" in options and name != "ray":
        raise UsageError("--address is for --executor ray")
    if "jobs" in options and not (isinstance(options["jobs"], int) and options["jobs"] >= 1):
        raise UsageError(f"--jobs must be a positive integer, got {options['jobs']!r}")
    return EXECUTORS[name](**options)
