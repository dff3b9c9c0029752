"""``gsibench baseline`` / ``gsibench check``: a regression test for optimizer changes.

``baseline`` runs a fixed quick battery — CPU, pinned steps and seeds, no tuning, the optimizer's own
hyperparameters — and writes per seed the summary metrics and the thinned loss and ‖R_k‖ curves,
the seed-to-seed spread, and the versions they came from. ``check`` reruns the battery the file
describes for another optimizer spec (the edited code, a plugin) and compares; exit 0 when nothing
moved beyond tolerance, 1 with a diff table, 2 on usage errors. Cells run in this process
(:func:`gsibench.execution.runner.run_cell` + :func:`gsibench.measure.twins.compare`); MLflow is not needed.

The quick battery: ``oracle``, ``quadratic`` and ``digits-mlp`` for 200 steps, seeds 0–2, clean and
three perturbations — a ×10 step, the default battery's ×100 ramp, and every gradient ×10⁻⁴ from the
start. The last one is there on purpose: an Adam-type update is invariant to a constant rescaling only
while ε ≪ √v̂, so tiny gradients expose an ε in the wrong place (inside the square root, √(v̂+ε) ≈ 10⁻⁴
dominates √v̂ ≈ 5·10⁻⁵), which a scale-down *ramp* hides behind v̂'s long memory of the large
gradients before it.

**What is compared.** Per (task, perturbation): the seed means of ω1, ω2, update sensitivity,
trajectory divergence, validation score and drop, final loss and the diverged fraction; and two
trajectories, the seed-mean loss curve (max |Δ| relative to the curve's largest |value|) and the
seed-mean ‖R_k‖ curve (max |Δ log10|, in decades).

**Tolerances.** For a summary metric ``max(k · s, 1e-6 + r · scale)`` with ``s`` the baseline's
seed-to-seed standard deviation, ``k = 1`` (``--tolerance K``) and ``scale`` the metric's largest |value|
on the task in the baseline (over its perturbations and seeds; ``val_drop`` takes ``val_score``'s); for a
trajectory ``k`` times the largest seed-to-seed standard deviation along the curve (same units), floored
at ``r``. The floors are for rounding, and carry the deterministic cells (the oracle does not depend on
the seed). They are relative to the scale, not to the value, because sensitivity, divergence and
val_drop are differences of larger quantities: their rounding error is set by those (a divergence of
2e-4 on the oracle moved by 1e-7 between two faithful Adam implementations). ``r`` is
:data:`REL_FLOOR` when the check runs on the baseline's platform (same torch, numpy, CPU model, torch
CPU capability and kernel variables: the numbers are bit-for-bit the baseline's for the same code) and
:data:`MACHINE_FLOOR` otherwise — vector width, FMA and reduction order change the rounding, and a
training run carries a rounding difference on (measured across torch's scalar/AVX2/AVX-512 kernels and
MKL's generic path: at most 2.0e-3 of a metric's scale, 4.7e-3 on a trajectory). ``--tolerance
NAME=VALUE`` sets one quantity's absolute tolerance. Two-sided by default — a bug can make a number look
better; ``--only-worse`` flags only moves in the bad direction (trajectories of ‖R_k‖ have none and are
then not checked).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsibench.core.errors import UsageError, unknown_name
from gsibench.core.progress import SILENT, Progress
from gsibench.measure.schema import CHECKED, lower_is_better

FORMAT = "gsibench-baseline/1"
QUICK = {"tasks": ["oracle", "quadratic", "digits-mlp"],
         "perturbations": ["step:at=0.5,factor=10", "ramp:start=0.3,end=0.6,factor=100", "constant:factor=0.0001"],
         "seeds": [0, 1, 2], "steps": 200}
CURVE_POINTS = 100
METRICS = CHECKED
"""The compared summary metrics (:data:`gsibench.measure.schema.CHECKED`)."""
TRAJECTORIES = ("loss", "update_norm")
SPREAD_MULTIPLIER = 1.0
ABS_FLOOR, REL_FLOOR, MACHINE_FLOOR = 1e-6, 1e-3, 1e-2
"""Rounding floors: absolute, and relative to a quantity's scale on the baseline's platform and on another."""
SCALE_OF = {"val_drop": "val_score"}
"""A difference metric's scale is that of the quantity it is the difference of."""
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")
"""Environment variables that change which CPU kernels torch and numpy run (recorded with a baseline; the
thread count is not one: cells train with one thread, :data:`gsibench.execution.runner.CELL_THREADS`)."""
PLATFORM_KEYS = ("torch", "numpy", "machine", "cpu", "cpu_capability", "kernel_env")


# ---- running the quick battery -------------------------------------------------------------------
def quick_battery(optimizer: str, settings: dict[str, Any], imports: list[str] | tuple[str, ...] = ()):
    from gsibench.battery.spec import Battery

    return Battery(optimizers=[optimizer], tasks=list(settings["tasks"]), perturbations=list(settings["perturbations"]),
                   seeds=list(settings["seeds"]), steps=int(settings["steps"]), device="cpu", imports=list(imports),
                   experiment="check")


def _finite(value: float) -> float | None:
    return float(f"{value:.7g}") if value is not None and math.isfinite(value) else None


def run_battery_in_process(battery, progress: Progress = SILENT) -> list[dict[str, Any]]:
    """Run every cell here; one record per cell: task, perturbation, seed, metrics, thinned curves."""
    from gsibench.battery.perturbations import parse
    from gsibench.execution.executors import make_executor
    from gsibench.measure.twins import compare
    from gsibench.optimizers import registry as optimizer_registry

    cells, skipped = battery.plan()
    optimizer_registry.check_builds([(cell.optimizer_name, dict(cell.hparams)) for cell in cells])
    if skipped:
        raise UsageError("the check battery cannot run here: " + "; ".join(f"{t}: {r}" for t, r in skipped))
    results = {}
    progress.begin("check cells", len(cells))
    try:
        for result in make_executor("local").run(cells):
            results[result.cell.key] = result
            progress.advance(result.cell.label())
    finally:
        progress.end()
    records = []
    for cell in cells:
        result = results[cell.key]
        record = {"task": cell.task, "perturbation": parse(cell.perturbation).spec, "seed": cell.seed,
                  "status": result.status, "error": (result.error or "").strip().splitlines()[-1:] or None}
        if result.status == "finished":
            twin = results.get(cell.twin.key)
            twinned = not cell.is_clean and twin is not None and twin.status == "finished"
            metrics = result.metrics(compare(result, twin) if twinned else None)
            record["metrics"] = {k: _finite(metrics.get(k, math.nan)) for k in METRICS}
            index = np.unique(np.linspace(0, cell.steps - 1, CURVE_POINTS).round().astype(int))
            record["steps"] = [int(i) for i in index]
            record["series"] = {name: [_finite(float(result.series[name][i])) if i < len(result.series[name])
                                       else None for i in index] for name in TRAJECTORIES}
        records.append(record)
    return records


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """What the numbers depend on besides the code: versions, CPU, torch's vector ISA, kernel variables."""
    import torch

    import gsibench

    kernel_env = ",".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ)
    return {"gsibench": gsibench.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "kernel_env": kernel_env or "none"}


def platform_differences(baseline_versions: dict[str, str], now: dict[str, str]) -> list[str]:
    """``'cpu: X -> Y'`` for every platform fact that differs (or the baseline did not record)."""
    return [f"{key}: {baseline_versions.get(key, 'not recorded')} -> {now[key]}" for key in PLATFORM_KEYS
            if baseline_versions.get(key) != now[key]]


def scales(cells: list[dict]) -> dict[tuple[str, str], float]:
    """(task, metric) -> the metric's largest |value| on the task (:data:`SCALE_OF` for differences)."""
    largest: dict[tuple[str, str], float] = defaultdict(float)
    for cell in cells:
        for metric, value in (cell.get("metrics") or {}).items():
            if value is not None and math.isfinite(value):
                largest[(cell["task"], metric)] = max(largest[(cell["task"], metric)], abs(value))
    return {(task, metric): max(largest[(task, metric)], largest[(task, SCALE_OF.get(metric, metric))])
            for task, metric in list(largest)}


def _groups(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["task"], record["perturbation"])].append(record)
    return groups


def spread(records: list[dict]) -> dict[str, dict[str, float | None]]:
    """Seed-to-seed standard deviation of every metric per 'task | perturbation' (the tolerance scale)."""
    out = {}
    for (task, perturbation), group in _groups(records).items():
        values = {m: [r["metrics"][m] for r in group if r.get("metrics") and r["metrics"][m] is not None]
                  for m in METRICS}
        out[f"{task} | {perturbation}"] = {m: (float(np.std(v, ddof=1)) if len(v) > 1 else None)
                                           for m, v in values.items()}
    return out


def record_baseline(optimizer: str, settings: dict[str, Any] | None = None, imports: list[str] | tuple = (),
                    progress: Progress = SILENT) -> dict[str, Any]:
    """Run the quick battery for ``optimizer`` and return the baseline document."""
    from gsibench.optimizers import registry
    from gsibench.tasks import registry as task_registry

    settings = {**QUICK, **(settings or {})}
    battery = quick_battery(optimizer, settings, imports)
    start = time.perf_counter()
    records = run_battery_in_process(battery, progress)
    _, hparams = registry.resolve(optimizer)
    scores = {}
    for task in settings["tasks"]:
        score = task_registry.resolve(task)[0].score
        scores[task] = None if score is None else {"name": score.name, "higher_is_better": score.higher_is_better}
    return {"format": FORMAT, "optimizer": optimizer, "hparams": {k: repr(v) for k, v in hparams.items()},
            "battery": {**settings, "device": "cpu", "imports": list(imports)}, "scores": scores,
            "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - start, 1), "spread": spread(records), "cells": records}


def load_baseline(path: str | Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline file '{path}' does not exist; record one with "
                         "`gsibench baseline --optimizer SPEC --out FILE`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"baseline file '{path}' is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a gsibench baseline (expected \"format\": \"{FORMAT}\")")
    return document


# ---- comparing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    task: str
    perturbation: str
    quantity: str
    baseline: float | None
    candidate: float | None
    deviation: float
    tolerance: float
    flagged: bool
    note: str = ""


@dataclass
class Report:
    optimizer: str
    baseline_optimizer: str
    rows: list[Row]
    rule: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def flagged(self) -> list[Row]:
        return [row for row in self.rows if row.flagged]

    @property
    def passed(self) -> bool:
        return not self.flagged

    def text(self, show_all: bool = False) -> str:
        """The diff table as plain text (for CI logs and pytest failures)."""
        rows = self.rows if show_all else self.flagged
        header = ("task", "perturbation", "quantity", "baseline", "candidate", "deviation", "tolerance", "")
        lines = [header] + [(r.task, r.perturbation, r.quantity, _num(r.baseline), _num(r.candidate),
                             _num(r.deviation), _num(r.tolerance), ("MOVED " if r.flagged else "ok ") + r.note)
                            for r in rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        body = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
        verdict = (f"PASS: {len(self.rows)} quantities within tolerance" if self.passed else
                   f"FAIL: {len(self.flagged)} of {len(self.rows)} quantities moved beyond tolerance")
        head = [f"gsibench check: {self.optimizer} against the baseline of {self.baseline_optimizer}",
                f"tolerance: {self.rule}", *self.notes, verdict]
        return "\n".join(head + ([""] + body if rows else []))


def _num(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _curve_matrix(records: list[dict], name: str, seeds: list[int]) -> np.ndarray:
    by_seed = {r["seed"]: r for r in records if r.get("series")}
    rows = []
    for seed in seeds:
        values = by_seed[seed]["series"][name] if seed in by_seed else []
        row = [np.nan if v is None else v for v in values]
        if name == "update_norm":
            row = [np.log10(max(v, 1e-30)) if np.isfinite(v) else np.nan for v in row]
        rows.append(row)
    length = max((len(r) for r in rows), default=0)
    return np.array([r + [np.nan] * (length - len(r)) for r in rows], dtype=float)


def _trajectory(base: list[dict], new: list[dict], name: str) -> tuple[float, float, float]:
    """(signed max deviation of the seed-mean curves, unsigned, seed-spread scale) in comparable units."""
    seeds = sorted({r["seed"] for r in base} & {r["seed"] for r in new})
    b, n = _curve_matrix(base, name, seeds), _curve_matrix(new, name, seeds)
    length = min(b.shape[1] if b.ndim == 2 else 0, n.shape[1] if n.ndim == 2 else 0)
    if length == 0:
        return math.nan, math.nan, math.nan
    b, n = b[:, :length], n[:, :length]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (steps after a divergence)
        bm, nm = np.nanmean(b, axis=0), np.nanmean(n, axis=0)
        sd = np.nanstd(b, axis=0, ddof=1) if len(seeds) > 1 else np.zeros(length)
    scale = 1.0 if name == "update_norm" else max(float(np.nanmax(np.abs(bm))) if np.isfinite(bm).any() else 1.0,
                                                  1e-12)
    diff = (nm - bm) / scale
    missing = np.isfinite(bm) != np.isfinite(nm)
    if missing.any():
        return math.inf, math.inf, float(np.nanmax(sd) / scale) if np.isfinite(sd).any() else 0.0
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return 0.0, 0.0, 0.0
    worst = diff[np.argmax(np.abs(diff))]
    spread_scale = float(np.nanmax(sd) / scale) if np.isfinite(sd).any() else 0.0
    return float(worst), float(abs(worst)), spread_scale


def compare_records(baseline: dict[str, Any], records: list[dict], multiplier: float = SPREAD_MULTIPLIER,
                    overrides: dict[str, float] | None = None, only_worse: bool = False,
                    rounding: float = REL_FLOOR) -> list[Row]:
    """Every compared quantity of ``records`` (the candidate's run) against ``baseline``; ``rounding`` is the
    relative rounding floor (:data:`REL_FLOOR` on the baseline's platform, :data:`MACHINE_FLOOR` elsewhere)."""
    overrides = overrides or {}
    scores = baseline.get("scores", {})
    scale = scales(baseline["cells"])
    candidate = _groups(records)
    rows = []
    for (task, perturbation), base in _groups(baseline["cells"]).items():
        new = candidate.get((task, perturbation), [])
        failed = [r for r in new if r["status"] != "finished"]
        if failed or not new:
            note = f"run failed: {failed[0]['error'][0] if failed and failed[0].get('error') else 'missing'}"
            rows.append(Row(task, perturbation, "status", None, None, math.inf, 0.0, True, note))
            continue
        sds = baseline.get("spread", {}).get(f"{task} | {perturbation}", {})
        score = scores.get(task)
        for metric in METRICS:
            b = _mean([r["metrics"][metric] for r in base if r.get("metrics")])
            n = _mean([r["metrics"][metric] for r in new if r.get("metrics")])
            sd = sds.get(metric) or 0.0
            floor = ABS_FLOOR + rounding * max(scale.get((task, metric), 0.0), abs(b or 0.0))
            tolerance = overrides.get(metric, max(multiplier * sd, floor))
            if b is None and n is None:
                continue
            if b is None or n is None:
                rows.append(Row(task, perturbation, metric, b, n, math.inf, tolerance, True,
                                "became undefined" if n is None else "became defined"))
                continue
            delta = n - b
            lower = lower_is_better(metric, None if score is None else score["higher_is_better"])
            worse = delta > 0 if lower else delta < 0
            flagged = abs(delta) > tolerance and (not only_worse or (lower is not None and worse))
            rows.append(Row(task, perturbation, metric, b, n, abs(delta), tolerance, flagged,
                            ("worse" if worse else "better") if flagged and lower is not None else ""))
        for name in TRAJECTORIES:
            key = f"traj.{name}"
            if only_worse and name == "update_norm":
                continue
            signed, deviation, sd = _trajectory(base, new, name)
            if math.isnan(deviation):
                continue
            tolerance = overrides.get(key, max(multiplier * sd, rounding))
            worse = signed > 0
            flagged = deviation > tolerance and (not only_worse or worse)
            unit = "decades" if name == "update_norm" else "relative"
            rows.append(Row(task, perturbation, key, None, None, deviation, tolerance, flagged, unit))
    return rows


def parse_tolerances(items: list[str] | None) -> tuple[float, dict[str, float]]:
    """``['0.5', 'val_score=0.01']`` -> (spread multiplier, per-quantity absolute tolerances)."""
    multiplier, overrides = SPREAD_MULTIPLIER, {}
    valid = list(METRICS) + [f"traj.{t}" for t in TRAJECTORIES]
    for item in items or []:
        name, eq, value = item.partition("=")
        try:
            number = float(value if eq else name)
        except ValueError:
            raise UsageError(f"--tolerance takes K (a multiple of the seed spread) or NAME=VALUE, "
                             f"got '{item}'") from None
        if not number >= 0:
            raise UsageError(f"--tolerance must be >= 0, got '{item}'")
        if not eq:
            multiplier = number
        elif name.strip() not in valid:
            raise unknown_name("quantity", name.strip(), valid, plural="quantities", where="--tolerance")
        else:
            overrides[name.strip()] = number
    return multiplier, overrides


def rule_text(multiplier: float, overrides: dict[str, float], rounding: float = REL_FLOOR) -> str:
    where = "same platform as the baseline" if rounding == REL_FLOOR else "another platform than the baseline's"
    text = (f"metric: max({multiplier:g} × seed-to-seed SD, {ABS_FLOOR:g} + {rounding:g}·scale), scale = the "
            f"metric's largest |value| on the task; trajectory: max({multiplier:g} × largest seed SD along the "
            f"curve, {rounding:g}); rounding floor {rounding:g}: {where}")
    if overrides:
        text += "; set: " + ", ".join(f"{k}={v:g}" for k, v in overrides.items())
    return text


def run_check(optimizer: str, baseline: dict[str, Any] | str | Path, tolerance: list[str] | None = None,
              only_worse: bool = False, imports: list[str] | tuple = (), progress: Progress = SILENT) -> Report:
    """Rerun the baseline's battery for ``optimizer`` and compare (the API behind the CLI and pytest)."""
    document = load_baseline(baseline) if isinstance(baseline, (str, Path)) else baseline
    multiplier, overrides = parse_tolerances(tolerance)
    settings = {k: document["battery"][k] for k in QUICK}
    all_imports = list(dict.fromkeys(list(document["battery"].get("imports", [])) + list(imports)))
    start = time.perf_counter()
    records = run_battery_in_process(quick_battery(optimizer, settings, all_imports), progress)
    differences = platform_differences(document.get("versions", {}), versions())
    rounding = MACHINE_FLOOR if differences else REL_FLOOR
    rows = compare_records(document, records, multiplier, overrides, only_worse, rounding)
    notes = []
    if differences:
        notes.append("note: not the baseline's platform (" + "; ".join(differences) + "): float rounding differs, "
                     f"so the rounding floor is {MACHINE_FLOOR:g} of each quantity's scale instead of {REL_FLOOR:g}")
    if only_worse:
        notes.append("one-sided (--only-worse): only moves in the bad direction are flagged; ‖R_k‖ curves skipped")
    return Report(optimizer, document.get("optimizer", "?"), rows, rule_text(multiplier, overrides, rounding), notes,
                  time.perf_counter() - start)
