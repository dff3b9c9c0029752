"""The plugin contract, run over every registered task and optimizer (built-ins and any plugin
installed through an entry point): what the runner relies on, checked one by one.

Tasks: they build on the CPU; every parameter has a valid role and a unique name; the same seed gives
the same initialization and the same losses; the score's direction is declared and ``evaluate()``
agrees with it. Optimizers: they build on the probe parameters; a step moves them; and the scale
invariance an entry declares holds on the gradient oracle (and its absence shows).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gsibench.core.params import ROLES
from gsibench.optimizers import registry as optimizers
from gsibench.tasks import registry as tasks
from gsibench.tasks.base import Problem, Score
from tests.helpers import sgd_losses

CPU = torch.device("cpu")


def build(name: str, seed: int, tiny_options: dict) -> Problem:
    task = tasks.get(name)
    options = task.resolve_options(tiny_options.get(name, {}))
    reason = task.unavailable(options)
    if reason:
        pytest.skip(reason)
    torch.manual_seed(seed)
    return task.build(seed, CPU, **options)


@pytest.mark.parametrize("name", tasks.available())
def test_task_roles_names_and_declarations(name, tiny_options):
    task = tasks.get(name)
    problem = build(name, 0, tiny_options)
    assert problem.params, "a task trains at least one tensor"
    assert all(p.role in ROLES for p in problem.params)
    assert len({p.name for p in problem.params}) == len(problem.params), "parameter names must be unique"
    assert all(p.tensor.is_leaf and p.tensor.requires_grad for p in problem.params)
    assert task.loss_bound > 0 and task.default_steps >= 2
    assert task.score is None or (isinstance(task.score, Score) and isinstance(task.score.higher_is_better, bool))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in problem.info.items())
    sgd_losses(problem)
    with torch.no_grad():
        score = problem.evaluate()
    if task.score is None:
        assert score is None, "a task without a declared score must not return one"
    else:
        assert score is not None and math.isfinite(score), f"{task.score.name} must be a finite number"


@pytest.mark.parametrize("name", tasks.available())
def test_task_same_seed_same_init_and_losses(name, tiny_options):
    first, again = build(name, 0, tiny_options), build(name, 0, tiny_options)
    for a, b in zip(first.params, again.params):
        assert torch.equal(a.tensor, b.tensor), f"{a.name}: same seed, different initialization"
    losses = sgd_losses(first)
    assert all(math.isfinite(x) for x in losses)
    assert losses == sgd_losses(again), "same seed, different data or losses"


# ---- optimizers -----------------------------------------------------------------------------------

def random_grads(params, steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.tensor.shape, generator=generator) for p in params] for _ in range(steps)]


@pytest.mark.parametrize("name", optimizers.available())
def test_optimizer_builds_on_the_probe_and_a_step_moves_it(name):
    from gsibench.core.params import probe_params

    entry, hparams = optimizers.resolve(name)
    params = probe_params()
    optimizer = entry.build(params, **hparams)
    before = [p.tensor.detach().clone() for p in params]
    for p, g in zip(params, random_grads(params, 1)[0]):
        p.tensor.grad = g
    optimizer.step()
    moved = [not torch.equal(b, p.tensor) for b, p in zip(before, params)]
    assert any(moved), "one step with non-zero gradients changed no parameter"


SCALE = 2.0**10
"""A power of two: multiplying by it is exact in floating point (no overflow here), so two runs whose
gradients differ by it compute bit-for-bit scaled moments; whatever differs is the optimizer's."""
STEPS = 200


def oracle_updates(name: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(Δθ_k, max(|θ_k|, |θ_{k+1}|)) per step and coordinate on the gradient oracle, gradients × ``scale``."""
    entry, hparams = optimizers.resolve(name)
    problem = tasks.get("oracle").build(0, CPU)
    optimizer = entry.build(problem.params, **hparams)
    theta = problem.params[0].tensor
    deltas, sizes = [], []
    for k in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        problem.loss(k).backward()
        theta.grad.mul_(scale)
        before = theta.detach().clone()
        optimizer.step()
        deltas.append((before - theta.detach()).double().numpy())
        sizes.append(torch.maximum(before.abs(), theta.detach().abs()).numpy())
    return np.array(deltas), np.array(sizes)


@pytest.mark.parametrize("name", optimizers.available())
def test_declared_scale_invariance_holds_on_the_oracle(name):
    """Per step and coordinate the two runs' Δθ may differ by the rounding of storing θ in float32 — half
    an ulp of θ_{k+1} in each run, one ulp in all (the differences θ_k − θ_{k+1} themselves are exact, by
    Sterbenz's lemma, or round below that) — plus ε-type terms of the update: ε/√v̂ with ε ≤ 1e-8 and
    |g_i| ≈ 0.5 is 2e-8 relative; 1e-6 leaves room for a few such terms. A declared scale-sensitive
    optimizer must move by more than its own update."""
    clean, sizes = oracle_updates(name, 1.0)
    scaled, scaled_sizes = oracle_updates(name, SCALE)
    gap = np.abs(scaled - clean)
    ulp = np.spacing(np.maximum(sizes, scaled_sizes).astype(np.float32)).astype(np.float64)
    allowed = ulp + 1e-6 * np.abs(clean)
    if optimizers.get(name).scale_invariant:
        worst = np.argmax(gap - allowed)
        assert np.all(gap <= allowed), (f"{name} is declared scale invariant, but gradients ×{SCALE:g} changed Δθ by "
                                        f"{gap.flat[worst]:.3g} where rounding allows {allowed.flat[worst]:.3g}")
    else:
        assert np.max(gap / np.maximum(np.abs(clean), 1e-30)) > 1.0, \
            f"{name} is declared scale-sensitive, but gradients ×{SCALE:g} hardly changed its updates"
