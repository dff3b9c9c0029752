"""How the runner applies a perturbation: before or after the clip, and per tensor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gsibench.battery.spec import Battery
from gsibench.execution.runner import run_cell
from gsibench.measure.twins import compare


def twins(optimizer: str, perturbation: str, task: str = "quadratic", steps: int = 100, **settings):
    battery = Battery(optimizers=[optimizer], tasks=[task], perturbations=[perturbation], seeds=[0], steps=steps,
                      **settings)
    clean, perturbed = (run_cell(cell) for cell in battery.plan()[0])
    assert clean.status == perturbed.status == "finished", perturbed.error
    return clean, perturbed


# SGD's ‖R_k‖ is the clipped gradient's norm, exactly `clip` on every step where the clip is active, so
# the ratio of two runs is known in exact arithmetic; float32 resolves Δθ only to ulp(|θ|) per coordinate:
# relative error ≤ √n·ulp(max|θ|)/(lr·clip) = 16·1.2e-7/(0.01·0.1) ≈ 2e-3 on the 256-parameter quadratic
# (|θ| < 1).
ROUNDING = 2e-3


def test_pre_clip_lets_an_active_clip_absorb_the_rescaling():
    clean, perturbed = twins("sgd[lr=0.01]", "step:at=0.5,factor=10", clip=0.1)
    assert clean.clip_frac == perturbed.clip_frac == 1.0
    assert compare(perturbed, clean)["sensitivity"] < ROUNDING


def test_post_clip_shows_what_the_optimizer_does():
    clean, perturbed = twins("sgd[lr=0.01]", "step:at=0.5,factor=10,order=post-clip", clip=0.1)
    assert abs(compare(perturbed, clean)["sensitivity"] - math.log(10)) < ROUNDING


def test_clip_frac_counts_active_steps_and_is_absent_without_a_clip():
    never, _ = twins("sgd[lr=0.01]", "step:at=0.5,factor=10", clip=1e6)
    assert never.clip_frac == 0.0 and never.metrics()["clip_frac"] == 0.0
    unclipped, _ = twins("sgd[lr=0.01]", "step:at=0.5,factor=10")
    assert math.isnan(unclipped.clip_frac) and "clip_frac" not in unclipped.metrics()


def test_layerwise_rescales_each_tensor_by_its_own_walk():
    """SGD's per-tensor update is lr·c_{k,i}·g: on the first perturbed step (same θ, same data as the
    clean twin) each role's ‖R‖ moves by its own tensor's factor."""
    clean, perturbed = twins("sgd[lr=0.01]", "layerwise:sigma=0.5,start=0.5", task="digits-mlp", steps=20)
    ratios = {role: perturbed.series[f"update_norm.{role}"][10] / clean.series[f"update_norm.{role}"][10]
              for role in ("input", "hidden", "output")}
    assert len({round(r, 4) for r in ratios.values()}) == 3
    assert all(r != pytest.approx(1.0, abs=1e-3) for r in ratios.values())
    assert np.all(perturbed.series["scale"][:10] == 1.0) and perturbed.series["scale"][10] != 1.0
