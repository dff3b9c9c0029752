"""What the suite costs over plain training, measured side by side in one run.

    .venv/bin/python benchmarks/overhead.py            # everything (about 17 minutes on 2 cores)
    .venv/bin/python benchmarks/overhead.py --only instrumentation,logging --reps 3

Each ratio compares two things measured in this process, alternating A, B, A, B, ... so that a machine
shared with other work slows both sides alike; the run ends with a table of every row, its target and
✓/✗ (the README's Performance table):

* **instrumentation** — ``run_cell`` (probes, divergence checks, series, ω, θ travel) over a bare
  PyTorch loop of the same task, optimizer, schedule, clipping and steps, on ``digits-mlp`` and
  ``char-gpt``: target ≤ 1.10. Reported in CPU time of this process (what the work costs; immune
  to other processes' load) and in wall time.
* **logging** — a battery through the driver with MLflow (a SQLite store) on vs a tracker that
  drops everything, in-process, so that every millisecond of logging shows: target ≤ 1.05.
* **scaling** — cells per minute of a battery (MLflow on) with ``--jobs 2`` vs ``--jobs 1``: as the CLI
  sets them up (``--jobs 1`` in-process with every core's torch threads, ``--jobs 2`` two workers with
  half as many each), and at the same threads per worker (the pool's own parallel efficiency): target
  ≥ 1.7. After one warm-up of the pool's forkserver, as in any battery longer than a few cells.
* **recording** — the driver's CPU time to record one cell into a SQLite store, amortised: ≤ 15 ms.
* **muon** — Muon's bare training loop over Adam's on the same task (float32 Newton–Schulz on a CPU): ≤ 1.5×.
* **start-up** — ``gsibench --help`` < 1 s, a misspelt optimizer's error < 3 s, a re-run of an 18-cell
  battery whose cells are all finished < 5 s, each in a fresh interpreter.
* **memory** — peak resident memory of ``gsibench run`` on the default battery: the driver, the
  largest worker, and all of its processes together as PSS, which counts the pages workers share
  with the forkserver once (sampled from /proc every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gsibench.battery.cells import Cell  # noqa: E402
from gsibench.battery.schedules import lr_multiplier  # noqa: E402
from gsibench.battery.spec import Battery  # noqa: E402
from gsibench.execution.executors import LocalExecutor, PoolExecutor, available_cores  # noqa: E402
from gsibench.execution.runner import resolve_device, run_cell  # noqa: E402
from gsibench.optimizers import registry as optimizer_registry  # noqa: E402
from gsibench.tasks import registry as task_registry  # noqa: E402

# The driver, MLflow and the spool are imported where they are used: pool workers import this script
# again (as ``__mp_main__``), and they should not pay for MLflow.


# ---- instrumentation ----------------------------------------------------------------------------
def bare_loop(cell: Cell) -> None:
    """The same training as ``run_cell`` with nothing measured: build, train, evaluate once."""
    task = task_registry.get(cell.task_name)
    entry = optimizer_registry.get(cell.optimizer_name)
    device = resolve_device(cell.device, task)
    torch.manual_seed(cell.seed)
    problem = task.build(cell.seed, device, **dict(cell.task_options))
    optimizer = entry.factory(problem.params, **dict(cell.hparams))
    tensors = [p.tensor for p in problem.params]
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    for k in range(cell.steps):
        if cell.schedule != "constant":
            multiplier = lr_multiplier(cell.schedule, k, cell.steps, cell.warmup)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * multiplier
        optimizer.zero_grad(set_to_none=True)
        problem.loss(k).backward()
        if cell.clip:
            torch.nn.utils.clip_grad_norm_(tensors, cell.clip, foreach=True)
        optimizer.step()
    with torch.no_grad():
        problem.evaluate()


def alternate(runs: dict[str, callable], reps: int) -> dict[str, dict[str, float]]:
    """Median CPU and wall seconds of each callable, run in turn ``reps`` times after one warm-up."""
    for run in runs.values():
        run()
    cpu = {name: [] for name in runs}
    wall = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            c, w = time.process_time(), time.perf_counter()
            run()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {name: {"cpu": statistics.median(cpu[name]), "wall": statistics.median(wall[name]),
                   "cpu_all": cpu[name], "wall_all": wall[name]} for name in runs}


def paired_ratio(times: dict[str, dict], a: str, b: str, kind: str = "cpu") -> float:
    """Median over repetitions of a/b, each a measured right after its b: the machine's drift (other
    work, frequency, another tenant) cancels within a pair, where a ratio of medians keeps it."""
    return statistics.median(x / y for x, y in zip(times[a][f"{kind}_all"], times[b][f"{kind}_all"]))


def instrumentation(tasks: list[str], optimizers: list[str], reps: int) -> list[dict]:
    rows = []
    for task in tasks:
        for optimizer in optimizers:
            cells, _ = Battery(optimizers=[optimizer], tasks=[task], perturbations=[], seeds=[0]).plan()
            cell = cells[0]
            times = alternate({"bare": lambda c=cell: bare_loop(c), "runner": lambda c=cell: run_cell(c)}, reps)
            rows.append({"task": task, "optimizer": optimizer, "steps": cell.steps,
                         "bare_cpu_s": times["bare"]["cpu"], "runner_cpu_s": times["runner"]["cpu"],
                         "ratio_cpu": paired_ratio(times, "runner", "bare"),
                         "ratio_wall": paired_ratio(times, "runner", "bare", "wall")})
            print(f"  {task:12s} {optimizer:14s} {cell.steps:4d} steps  bare {times['bare']['cpu']:.3f} s  "
                  f"runner {times['runner']['cpu']:.3f} s  ratio {rows[-1]['ratio_cpu']:.3f} (CPU) "
                  f"{rows[-1]['ratio_wall']:.3f} (wall)", flush=True)
    return rows


# ---- logging ------------------------------------------------------------------------------------
@dataclass
class NullTracker:
    """The driver's tracker interface, writing nothing: the 'logging off' side."""

    experiment_name: str = "null"
    uri: str = "null://"

    def mark_interrupted(self) -> int:
        return 0

    def finished(self) -> dict[str, str]:
        return {}

    def log(self, result, comparison=None, twin_run_id=None) -> str:
        return result.cell.key

    def flush(self) -> None:
        pass

    def claim_ops(self) -> NullOps:
        return NullOps()


class NullOps:
    """Claims that nobody else sees: every claim wins at once."""

    def running(self) -> list:
        return []

    def ended_since(self, ms: int) -> list:
        return []

    def finished_of(self, key: str) -> None:
        return None

    def create(self, name: str, start_time: int, tags: dict[str, str]) -> str:
        return tags["cell_key"]

    def terminate(self, run_id: str, status: str) -> None:
        pass

    def delete(self, run_id: str) -> None:
        pass

    def tagger(self):
        return lambda run_id, key, value: None


def logging_overhead(battery: Battery, reps: int, folder: Path, executor=None, label: str = "in-process") -> dict:
    """Battery wall time with MLflow on / off. In-process, training waits for every write; with a
    worker process (``executor``) the driver writes while the worker trains. The ratio is the median of the
    ``reps`` paired rounds (off, on)."""
    from gsibench.execution.driver import run_battery
    from gsibench.execution.spool import Spool
    from gsibench.tracking.store import Tracker

    executor = executor or LocalExecutor()
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}", "warm-up")  # the database exists, as for a user
    counter = iter(range(10**6))

    def on() -> None:
        experiment = f"logging-{label}-{'-'.join(battery.tasks)}-{next(counter)}"
        run_battery(battery, Tracker(tracker.uri, experiment), executor, spool=Spool(folder / "spool"))

    def off() -> None:
        run_battery(battery, NullTracker(), executor, spool=Spool(folder / "spool"))

    times = alternate({"off": off, "on": on}, reps)
    cells = len(battery.plan()[0])
    per_run = statistics.median(b - a for a, b in zip(times["off"]["wall_all"], times["on"]["wall_all"])) / cells
    row = {"cells": cells, "tasks": battery.tasks, "executor": label, "off_s": times["off"]["wall"],
           "on_s": times["on"]["wall"], "ratio_wall": paired_ratio(times, "on", "off", "wall"),
           "ms_per_run": 1000 * per_run, "reps": reps}
    print(f"  {cells} cells ({', '.join(battery.tasks)}, {label}): off {row['off_s']:.2f} s, on {row['on_s']:.2f} s, "
          f"ratio {row['ratio_wall']:.3f}; {row['ms_per_run']:.0f} ms of wall time per run", flush=True)
    return row


# ---- scaling ------------------------------------------------------------------------------------
def _burn(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


def machine_parallelism(work: int = 10_000_000) -> float:
    """How many cores this machine gives us right now: the speedup of two processes burning CPU in
    pure Python over one (2.0 on two idle cores; less when other work shares them)."""
    import multiprocessing

    one = min(_burn(work) for _ in range(3))
    two = math.inf
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for _ in range(4):  # the first rounds may still wait for a worker to start (it imports this script)
            start = time.perf_counter()
            pool.map(_burn, [work, work], chunksize=1)
            two = min(two, time.perf_counter() - start)
    return 2 * one / two


def scaling(battery: Battery, reps: int, folder: Path) -> dict:
    """Cells per minute through the driver (MLflow on), as ``gsibench run`` makes the executors:
    ``--jobs 2`` is two workers with ``cores // 2`` torch threads each; ``--jobs 1`` runs in-process
    with every core's thread (``--executor pool --jobs 1``: one worker with them, the driver apart). Ratios are
    medians over ``reps`` rounds of the three runs side by side."""
    from gsibench.execution.driver import run_battery
    from gsibench.execution.spool import Spool
    from gsibench.tracking.store import Tracker

    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}", "warm-up")
    counter = iter(range(10**6))
    cells = len(battery.plan()[0])
    list(PoolExecutor(jobs=2).run(battery.plan()[0][:2]))  # start the forkserver once, as a long battery would

    def run(executor, threads: int | None = None) -> callable:
        def go() -> None:
            before = torch.get_num_threads()
            torch.set_num_threads(threads or before)
            try:
                run_battery(battery, Tracker(tracker.uri, f"scaling-{'-'.join(battery.tasks)}-{next(counter)}"),
                            executor, spool=Spool(folder / "spool"))
            finally:
                torch.set_num_threads(before)
        return go

    cores = available_cores()
    single = max(1, cores // 2)
    times = alternate({f"--jobs 1 (in-process, {cores} threads)": run(LocalExecutor(), threads=cores),
                       f"1 worker, {single} thread(s)": run(PoolExecutor(jobs=1, threads=single)),
                       f"--jobs 2 (2 workers, {single} thread(s) each)": run(PoolExecutor(jobs=2))}, reps)
    per_minute = {name: 60 * cells / t["wall"] for name, t in times.items()}
    names = list(times)
    row = {"cells": cells, "tasks": battery.tasks, "cells_per_minute": per_minute, "reps": reps,
           "ratio_cli": paired_ratio(times, names[0], names[2], "wall"),
           "ratio_same_threads": paired_ratio(times, names[1], names[2], "wall")}
    for name, value in per_minute.items():
        print(f"  {', '.join(battery.tasks)}: {name:36s} {value:6.1f} cells/min", flush=True)
    print(f"  --jobs 2 / --jobs 1 (median of {reps} paired runs): {row['ratio_cli']:.2f}× as the CLI sets "
          f"threads; {row['ratio_same_threads']:.2f}× at the same threads per worker")
    return row


# ---- recording cost, Muon vs Adam, start-up -------------------------------------------------------
def recording(reps: int, folder: Path) -> dict:
    """The driver's CPU time to record one cell into a SQLite store (its claim, then run, params, summary
    metrics, the three thinned series, ``trace.npz``), amortised over a battery's worth of runs, clean
    and perturbed."""
    from dataclasses import replace

    from gsibench.measure.twins import compare
    from gsibench.tracking.claims import Claims
    from gsibench.tracking.store import Tracker

    clean_cell, perturbed_cell = Battery(optimizers=["adam"], tasks=["digits-mlp"],
                                         perturbations=["step:at=0.5,factor=10"], seeds=[0]).plan()[0]
    clean, perturbed = run_cell(clean_cell), run_cell(perturbed_cell)
    comparison = compare(perturbed, clean)
    tracker = Tracker(f"sqlite:///{folder / 'recording.db'}", "recording")
    counter = iter(range(10**7))
    per_run = []
    for _ in range(reps):
        seeds = [next(counter) for _ in range(48)]
        results = {result.cell.key: result for seed in seeds
                   for result in (replace(clean, cell=replace(clean.cell, seed=seed)),
                                  replace(perturbed, cell=replace(perturbed.cell, seed=seed)))}
        claims = Claims(tracker, batch=8)  # as the driver claims cells (its settling sleeps are not CPU time)
        start = time.process_time()
        for cell in claims.lazily([result.cell for result in results.values()], {}):
            result = results[cell.key]
            tracker.log(result, None if cell.is_clean else comparison, run_id=claims.take(cell.key))
        tracker.flush()
        per_run.append((time.process_time() - start) / 96)
    row = {"ms_per_run": 1000 * statistics.median(per_run), "runs": 96 * reps}
    print(f"  {row['ms_per_run']:.1f} ms of driver CPU per recorded run (median of {reps} × 96 runs)", flush=True)
    return row


def muon_vs_adam(tasks: list[str], reps: int) -> list[dict]:
    rows = []
    for task in tasks:
        cells = {name: Battery(optimizers=[name], tasks=[task], perturbations=[], seeds=[0]).plan()[0][0]
                 for name in ("adam", "muon")}
        times = alternate({name: lambda c=cell: bare_loop(c) for name, cell in cells.items()}, reps)
        ratio = paired_ratio(times, "muon", "adam")
        rows.append({"task": task, "adam_s": times["adam"]["cpu"], "muon_s": times["muon"]["cpu"], "ratio": ratio})
        print(f"  {task}: bare loop adam {times['adam']['cpu']:.3f} s, muon {times['muon']['cpu']:.3f} s: "
              f"{ratio:.2f}×", flush=True)
    return rows


def startup(folder: Path, reps: int) -> dict:
    """Wall time of three commands in a fresh interpreter each: ``--help``, a misspelt optimizer, and a
    re-run of an 18-cell battery whose cells are all finished (SQLite store)."""
    gsibench = [sys.executable, "-m", "gsibench"]
    battery = ["run", "--optimizers", "adam,sgd,signsgd", "--tasks", "quadratic", "--perturbations",
               "step:at=0.5,factor=10", "--seeds", "3", "--steps", "30", "--jobs", "1",
               "--tracking-uri", f"sqlite:///{folder / 'startup.db'}"]
    environment = {**os.environ, "GSIBENCH_PROGRESS": "off"}
    subprocess.run(gsibench + battery, cwd=folder, capture_output=True, env=environment, check=True)
    commands = {"--help": gsibench + ["--help"],
                "usage error (misspelt optimizer)": gsibench + ["run", "--optimizers", "adma", "--tasks", "oracle"],
                "no-op re-run, 18 finished cells": gsibench + battery}
    out = {}
    for name, command in commands.items():
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            subprocess.run(command, cwd=folder, capture_output=True, env=environment)
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
        print(f"  {name}: {out[name]:.2f} s (median of {reps})", flush=True)
    return out


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "?"
    return f"{available_cores()} cores ({model}), torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"


def summary(report: dict) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for every row the issue's table names."""
    rows = []
    for row in report.get("instrumentation", []):
        rows.append((f"instrumentation, {row['task']}, {row['optimizer']} (runner / bare loop, CPU)",
                     f"{row['ratio_cpu']:.2f}×", "≤ 1.10", row["ratio_cpu"] <= 1.10))
    for row in report.get("logging", []):
        rows.append((f"logging on / off, {row['cells']} {', '.join(row['tasks'])} cells, {row['executor']}",
                     f"{row['ratio_wall']:.3f}× ({row['ms_per_run']:.0f} ms per run)", "≤ 1.05",
                     row["ratio_wall"] <= 1.05))
    if "recording" in report:
        value = report["recording"]["ms_per_run"]
        rows.append(("recording one cell into SQLite (driver CPU, amortised)", f"{value:.1f} ms", "≤ 15 ms",
                     value <= 15))
    for row in report.get("muon", []):
        rows.append((f"muon / adam bare loop, {row['task']}", f"{row['ratio']:.2f}×", "≤ 1.5×", row["ratio"] <= 1.5))
    targets = {"--help": 1.0, "usage error (misspelt optimizer)": 3.0, "no-op re-run, 18 finished cells": 5.0}
    for name, seconds in report.get("startup", {}).items():
        rows.append((f"start-up: {name}", f"{seconds:.2f} s", f"< {targets[name]:g} s", seconds < targets[name]))
    for row in report.get("scaling", []):
        rows.append((f"cells per minute, --jobs 2 / --jobs 1, {', '.join(row['tasks'])}",
                     f"{row['ratio_cli']:.2f}× ({row['ratio_same_threads']:.2f}× at equal threads)", "≥ 1.7",
                     row["ratio_cli"] >= 1.7))
    return rows


# ---- memory -------------------------------------------------------------------------------------
def _tree(root: int) -> list[int]:
    """``root`` and every process descended from it (the forkserver's children included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(peak RSS, PSS) of ``pid`` in KiB (0 if it is gone). RSS counts pages shared with the forkserver
    (torch, imported once) in every worker; PSS splits them, so PSS adds up across processes."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        rollup = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        return int(fields["VmHWM"].split()[0]), int(rollup["Pss"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def memory(args: list[str], folder: Path) -> dict:
    command = [sys.executable, "-m", "gsibench", "run", *args,
               "--tracking-uri", f"sqlite:///{folder / 'rss.db'}"]
    start = time.perf_counter()
    driver = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    peak_total, peak_driver, peak_worker = 0, 0, 0
    while driver.poll() is None:
        sizes = {pid: _memory_kib(pid) for pid in _tree(driver.pid)}
        peak_total = max(peak_total, sum(pss for _, pss in sizes.values()))
        peak_driver = max(peak_driver, sizes.get(driver.pid, (0, 0))[0])
        peak_worker = max([peak_worker] + [hwm for pid, (hwm, _) in sizes.items() if pid != driver.pid])
        time.sleep(0.2)
    err = driver.stderr.read().decode()
    summary = [line for line in err.splitlines() if "cells:" in line]
    row = {"command": " ".join(["gsibench run", *args]), "seconds": time.perf_counter() - start,
           "returncode": driver.returncode, "summary": summary[-1] if summary else err[-500:],
           "peak_rss_driver_mib": peak_driver / 1024, "peak_rss_worker_mib": peak_worker / 1024,
           "peak_pss_total_mib": peak_total / 1024}
    print(f"  {row['command']}: {row['seconds']:.0f} s, exit {row['returncode']}; peak RSS: driver "
          f"{row['peak_rss_driver_mib']:.0f} MiB, largest worker (or forkserver) {row['peak_rss_worker_mib']:.0f} MiB; "
          f"all processes together (PSS) {row['peak_pss_total_mib']:.0f} MiB", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="instrumentation,logging,recording,muon,startup,scaling,memory")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    parser.add_argument("--optimizers", default="adam,muon")
    parser.add_argument("--memory-args", default="--no-tune", help="extra `gsibench run` flags for the memory run")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sections = args.only.split(",")
    report: dict = {"cores": available_cores(), "torch_threads": args.threads, "torch": torch.__version__,
                    "load_average": os.getloadavg()}
    print(f"{report['cores']} cores, load average {report['load_average'][0]:.1f}, torch {torch.__version__}")
    tasks = [t for t in ("digits-mlp", "char-gpt") if t in task_registry.available()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "instrumentation" in sections:
            print("instrumentation: runner with every probe / bare PyTorch loop (target ≤ 1.10)")
            report["instrumentation"] = instrumentation(tasks, args.optimizers.split(","), args.reps)
        if "logging" in sections:
            print("logging: MLflow (SQLite) on / off, in-process (target ≤ 1.05)")
            digits = Battery(optimizers=["adam", "lion"], tasks=["digits-mlp"],
                             perturbations=["step:at=0.5,factor=10"], seeds=[0, 1])
            gpt = Battery(optimizers=["adam", "lion"], tasks=["char-gpt"], perturbations=["step:at=0.5,factor=10"],
                          seeds=[0])
            list(PoolExecutor(jobs=1).run(digits.plan()[0][:1]))  # start the forkserver once, as a battery would
            report["logging"] = [
                logging_overhead(digits, args.reps, folder),
                logging_overhead(digits, args.reps, folder, PoolExecutor(jobs=1, threads=args.threads),
                                 "1 worker process"),
                logging_overhead(gpt, max(3, args.reps // 2), folder),
            ]
        if "recording" in sections:
            print("recording: driver CPU per run into a SQLite store (target ≤ 15 ms)")
            report["recording"] = recording(args.reps, folder)
        if "muon" in sections:
            print("muon / adam, bare training loops (target ≤ 1.5×)")
            report["muon"] = muon_vs_adam(tasks, args.reps)
        if "startup" in sections:
            print("start-up: --help (< 1 s), a usage error (< 3 s), a no-op re-run (< 5 s)")
            report["startup"] = startup(folder, max(3, args.reps))
        if "scaling" in sections:
            print("scaling: cells per minute, --jobs 2 / --jobs 1 (target ≥ 1.7)")
            report["parallelism_before"] = machine_parallelism()
            print(f"  two processes of pure-Python work run {report['parallelism_before']:.2f}× one right now "
                  "(2.00 on two idle cores)")
            report["scaling"] = [
                scaling(Battery(optimizers=["adam", "adam-balanced", "lion", "sgd"], tasks=["digits-mlp"],
                                perturbations=["step:at=0.5,factor=10"], seeds=[0, 1, 2]), args.reps, folder),
                scaling(Battery(optimizers=["adam", "adam-balanced", "lion", "sgd"], tasks=["char-gpt[n_layer=1]"],
                                perturbations=["step:at=0.5,factor=10"], seeds=[0], steps=150), max(3, args.reps // 2),
                        folder),
            ]
            report["parallelism_after"] = machine_parallelism()
            print(f"  ... and {report['parallelism_after']:.2f}× after the scaling runs")
        if "memory" in sections:
            print("memory: peak RSS of the default battery")
            report["memory"] = memory(args.memory_args.split(), folder)
    rows = summary(report)
    report["summary"] = [{"what": w, "measured": m, "target": g, "met": ok} for w, m, g, ok in rows]
    print(f"\nSummary — {machine()}, load average {report['load_average'][0]:.1f} at the start\n")
    print("| what | measured | target | |\n|---|---|---|---|")
    for what, measured, target, met in rows:
        print(f"| {what} | {measured} | {target} | {'✓' if met else '✗'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
