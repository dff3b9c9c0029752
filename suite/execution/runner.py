"""The runner: one cell, start to finish, in the current process.

Per step the order is fixed and the same for every optimizer (papers.md, "Pitfalls")::

    zero_grad → loss(k) → backward → g ← c_k·g (perturbation) → clip → probe.before → step

(``order=post-clip`` perturbations swap the rescaling and the clip; the fraction of steps on which the
clip was active is ``clip_frac``)
    → problem.after_step (projection, if any) → probe.after

A non-finite loss or update, or a loss above the task's bound, ends the run as *diverged* at
that step with everything up to it kept. Any exception (a broken plugin, say) makes the cell
*failed* with its traceback; neither stops the battery.
"""

from __future__ import annotations

import math
import time
import traceback

import numpy as np
import torch

from gsibench.battery.cells import Cell
from gsibench.battery.perturbations import Perturbation
from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.battery.schedules import lr_multiplier
from gsibench.core.blas import one_blas_thread
from gsibench.core.params import ParamInfo
from gsibench.core.registry import import_plugins
from gsibench.measure.metrics import OscillationWindow, oscillation
from gsibench.measure.packing import pack_parameters
from gsibench.measure.probes import SERIES_NAMES, UpdateNormProbe, flat_params
from gsibench.measure.result import CellResult
from gsibench.optimizers import registry as optimizer_registry
from gsibench.tasks import registry as task_registry
from gsibench.tasks.base import Task

CELL_THREADS = 1
"""Intra-op threads while a cell trains. CPU kernels split reductions by thread count, so the same cell
run with 1 and 2 threads differs in the last bits (seen: 1e-5 in ‖R_k‖ on digits-mlp). One thread per
cell makes a cell's numbers independent of the executor and ``--jobs``; parallelism comes from running
cells side by side."""

CHECK_EVERY = 16
"""Steps between divergence checks (the only host synchronisation of the loop)."""


def resolve_device(device: str, task: Task) -> torch.device:
    if device == "auto":
        wants_gpu = task.prefers_gpu or task.needs_gpu
        return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
    return torch.device(device)


def oscillation_window(cell: Cell, kept: int) -> OscillationWindow:
    """The ω settings of a run of ``kept`` steps: the cell's own where it sets them, else scaled with the
    run length (:meth:`~gsibench.measure.metrics.OscillationWindow.for_steps`)."""
    scaled = OscillationWindow.for_steps(kept)
    return OscillationWindow(scaled.warmup if cell.omega_warmup is None else cell.omega_warmup,
                             scaled.window if cell.omega_window is None else cell.omega_window)


def _first_bad(loss: torch.Tensor, update: torch.Tensor, loss_bound: float) -> int | None:
    """Index of the first step whose loss or update norm is non-finite or whose loss is too large."""
    bad = ~torch.isfinite(loss) | ~torch.isfinite(update) | (loss > loss_bound)
    index = torch.nonzero(bad)
    return int(index[0]) if len(index) else None


def run_cell(cell: Cell) -> CellResult:
    """Train one cell; never raises for a training problem (see module docstring)."""
    start = time.perf_counter()
    one_blas_thread()
    threads = torch.get_num_threads()
    torch.set_num_threads(CELL_THREADS)
    try:
        import_plugins(cell.imports)
        result = _train(cell)
    except Exception:
        result = CellResult(cell, "failed", error=traceback.format_exc())
    finally:
        torch.set_num_threads(threads)
    result.wall_seconds = time.perf_counter() - start
    return result


def _score(problem) -> float:
    with torch.no_grad():
        score = problem.evaluate()
    return math.nan if score is None else float(score)


def _rescaler(perturbation: Perturbation, params: list[ParamInfo], steps: int, seed: int):
    """(c_k as logged, ``rescale(k)`` multiplying the gradients of step k in place). For a per-tensor kind
    the logged c_k is the geometric mean of the tensors' scales."""
    rescaled = [p.tensor for p in params if perturbation.role is None or p.role == perturbation.role]
    if perturbation.per_tensor:
        per_tensor = perturbation.tensor_scales(steps, seed, len(rescaled))

        def rescale(k: int) -> None:
            pairs = [(t.grad, float(c)) for t, c in zip(rescaled, per_tensor[k]) if t.grad is not None]
            if pairs:
                torch._foreach_mul_([grad for grad, _ in pairs], [c for _, c in pairs])

        return np.exp(np.log(per_tensor).mean(axis=1)), rescale
    scales = perturbation.schedule(steps, seed)

    def rescale(k: int) -> None:
        if scales[k] != 1.0:
            torch._foreach_mul_([t.grad for t in rescaled if t.grad is not None], float(scales[k]))

    return scales, rescale


def _train(cell: Cell) -> CellResult:
    task = task_registry.get(cell.task_name)
    entry = optimizer_registry.get(cell.optimizer_name)
    device = resolve_device(cell.device, task)
    torch.manual_seed(cell.seed)
    problem = task.build(cell.seed, device, **dict(cell.task_options))
    params = problem.params
    tensors = [p.tensor for p in params]
    pack_parameters(tensors)  # before the optimizer sees them: one copy per probe snapshot
    optimizer = entry.factory(params, **dict(cell.hparams))

    perturbation = parse_perturbation(cell.perturbation)
    scales, rescale = _rescaler(perturbation, params, cell.steps, cell.seed)
    post_clip = perturbation.order == "post-clip"
    clip_norms: list[torch.Tensor] = []
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    after_step = problem.after_step if problem.has_after_step else None
    probe = UpdateNormProbe(params, optimizer, cell.steps)

    init_score = _score(problem) if task.score is not None else math.nan  # the trivial baseline: θ_0's score
    losses = torch.full((cell.steps,), math.nan, dtype=torch.float64, device=device)
    new_losses: list[torch.Tensor] = []  # since the last check: written into ``losses`` with one kernel
    theta0 = flat_params(params)
    diverged_step, checked = None, 0
    for k in range(cell.steps):
        if cell.schedule != "constant":
            multiplier = lr_multiplier(cell.schedule, k, cell.steps, cell.warmup)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * multiplier
        optimizer.zero_grad(set_to_none=True)
        loss = problem.loss(k)
        loss.backward()
        if not post_clip:
            rescale(k)
        if cell.clip:
            clip_norms.append(torch.nn.utils.clip_grad_norm_(tensors, cell.clip, foreach=True))
        if post_clip:
            rescale(k)
        probe.before()
        optimizer.step()
        if after_step is not None:
            after_step()
        new_losses.append(loss.detach())
        probe.after(k)
        if k + 1 - checked >= CHECK_EVERY or k == cell.steps - 1:
            losses[checked : k + 1] = torch.stack(new_losses).reshape(-1)
            new_losses.clear()
            bad = _first_bad(losses[checked : k + 1], probe.norms(checked, k + 1)[:, 0], task.loss_bound)
            if bad is not None:
                diverged_step = checked + bad
                break
            checked = k + 1

    kept = cell.steps if diverged_step is None else diverged_step + 1
    rows = probe.norms(0, kept).cpu().numpy()
    series = {"loss": losses[:kept].cpu().numpy(), "scale": scales[:kept].copy()}
    series.update({name: rows[:, i] for i, name in enumerate(SERIES_NAMES)})
    window = oscillation_window(cell, kept)
    clean_norms = series["update_norm"][: kept - 1] if diverged_step is not None else series["update_norm"]
    omega1, omega2 = oscillation(clean_norms, window.warmup, window.window)
    final = flat_params(params)
    clip_frac = float((torch.stack(clip_norms[:kept]) > cell.clip).double().mean()) if clip_norms else math.nan
    val_score = _score(problem) if diverged_step is None and task.score is not None else math.nan
    info = {str(k): str(v) for k, v in problem.info.items()}
    info["device"] = str(device)
    return CellResult(
        cell, "finished", diverged=diverged_step is not None, diverged_step=diverged_step, series=series,
        final_params=final.numpy().astype(np.float32), travel=float(torch.linalg.vector_norm(final - theta0)),
        val_score=val_score, omega1=omega1, omega2=omega2, omega=window, info=info, score=task.score,
        clip_frac=clip_frac, init_score=init_score,
    )
