"""The runner end to end on small cells: determinism, divergence, failures, and the expected
scale behaviour of the built-ins (issue 2, "Expected result")."""

import math

import numpy as np
import pytest

from gsibench.battery.spec import Battery
from gsibench.execution.runner import run_cell
from gsibench.measure.twins import compare
from gsibench.optimizers import registry

# torch.optim.Muon runs Newton–Schulz in bfloat16: g and 1000·g round differently, so its update is
# scale invariant only to bf16 precision (~1e-3); a power-of-two factor commutes with rounding and is exact.
RTOL = {"muon": 5e-3}
TINY_EPS = {"adam": "eps=1e-16", "adam-balanced": "eps=1e-16", "adamw": "eps=1e-16", "muon": "adam_eps=1e-16"}


def cells(optimizer, task, perturbations=("none",), steps=30, seeds=(0,)):
    battery = Battery(optimizers=[optimizer], tasks=[task], perturbations=list(perturbations),
                      seeds=list(seeds), steps=steps)
    return battery.plan()[0]


def run_pair(optimizer, task, perturbation, steps=30):
    clean, perturbed = cells(optimizer, task, [perturbation], steps)
    return run_cell(clean), run_cell(perturbed)


def test_same_cell_twice_gives_identical_numbers():
    cell = cells("adam", "digits-mlp", ["noise:sigma=0.5"], steps=40)[1]
    a, b = run_cell(cell), run_cell(cell)
    assert a.status == "finished"
    for name in a.series:
        assert np.array_equal(a.series[name], b.series[name]), name
    assert np.array_equal(a.final_params, b.final_params)
    assert (a.omega1, a.val_score) == (b.omega1, b.val_score)


def test_different_seeds_differ():
    first, second = (run_cell(c) for c in cells("adam", "digits-mlp", steps=20, seeds=(0, 1)))
    assert not np.array_equal(first.series["loss"], second.series["loss"])


BUILTINS = ["adam", "adam-balanced", "adamw", "lion", "muon", "scion", "sgd", "signsgd"]


@pytest.mark.parametrize("name", BUILTINS)
def test_constant_rescale_from_step_zero(name):
    """Every built-in but sgd gives the same run (ε aside) when all gradients are ×1000."""
    spec = f"{name}[{TINY_EPS[name]}]" if name in TINY_EPS else name
    clean, perturbed = run_pair(spec, "digits-mlp", "constant:factor=1000", steps=25)
    ratio = perturbed.update_norm / clean.update_norm
    if registry.get(name).scale_invariant:
        assert np.allclose(ratio, 1.0, rtol=RTOL.get(name, 1e-4)), (ratio.min(), ratio.max())
        if name not in RTOL:  # bf16 rounding differences compound along the trajectory
            assert compare(perturbed, clean)["divergence"] < 1e-4
    else:
        assert np.allclose(ratio[:1], 1000.0, rtol=1e-6)


def test_muon_is_exactly_invariant_to_a_power_of_two_scale():
    clean, perturbed = run_pair("muon[adam_eps=1e-16]", "digits-mlp", "constant:factor=1024", steps=10)
    assert np.allclose(perturbed.update_norm / clean.update_norm, 1.0, rtol=1e-5)


def test_oracle_ramp_balanced_adam_is_far_less_sensitive_than_adam():
    ramp = "ramp:start=0.3,end=0.6,factor=100"
    adam = compare(*reversed(run_pair("adam", "oracle", ramp, steps=601)))
    balanced_clean, balanced = run_pair("adam-balanced", "oracle", ramp, steps=601)
    balanced_metrics = compare(balanced, balanced_clean)
    assert balanced_metrics["sensitivity"] < adam["sensitivity"] / 10
    adam_clean, adam_pert = run_pair("adam", "oracle", ramp, steps=601)
    assert balanced.omega1 < adam_pert.omega1 / 10


@pytest.mark.parametrize("name", ["lion", "signsgd"])
def test_sign_optimizers_ignore_the_scale(name):
    clean, perturbed = run_pair(name, "oracle", "ramp:start=0.3,end=0.6,factor=100", steps=200)
    assert np.array_equal(clean.update_norm, perturbed.update_norm)


def test_sgd_follows_the_scale_exactly():
    clean, perturbed = run_pair("sgd", "oracle", "ramp:start=0.3,end=0.6,factor=100", steps=200)
    # float32 parameters: deltas carry ~1e-5 relative rounding once θ has moved
    assert np.allclose(perturbed.update_norm / clean.update_norm, perturbed.series["scale"], rtol=1e-4)


def test_role_restricted_perturbation_touches_only_that_role():
    clean, perturbed = run_pair("sgd", "digits-mlp", "constant:factor=10,role=output", steps=5)
    assert np.allclose(perturbed.series["update_norm.output"][:1] / clean.series["update_norm.output"][:1], 10)
    assert perturbed.series["update_norm.hidden"][0] == pytest.approx(clean.series["update_norm.hidden"][0])


def test_divergence_is_recorded_with_metrics_up_to_that_step():
    (cell,) = cells("sgd[lr=1.0]", "quadratic", steps=100)
    result = run_cell(cell)
    assert result.status == "finished" and result.diverged
    assert 0 < result.diverged_step < 100
    assert len(result.series["loss"]) == result.diverged_step + 1
    assert np.all(np.isfinite(result.series["loss"][:-1]))
    assert math.isnan(result.val_score)


def test_an_exception_in_a_user_optimizer_fails_only_that_cell():
    (cell,) = cells("tests.plugins.broken_opt:ExplodingOptimizer[fail_at=3]", "quadratic", steps=10)
    result = run_cell(cell)
    assert result.status == "failed"
    assert "boom: user optimizer bug" in result.error and "Traceback" in result.error


def test_update_norm_is_the_normalized_parameter_delta():
    """For plain SGD R_k = g_k, so on the oracle (unit-norm gradients) ‖R_k‖ = 1 at every step."""
    (cell,) = cells("sgd[lr=0.5]", "oracle", steps=50)
    result = run_cell(cell)
    assert np.allclose(result.update_norm, 1.0, rtol=1e-6)
    assert np.allclose(result.series["update_norm.vector"], 1.0, rtol=1e-6)
    assert np.all(result.series["update_norm.hidden"] == 0)


def test_numbers_do_not_depend_on_the_callers_thread_count():
    """A pool worker and the in-process executor set different thread counts; the cell must not care."""
    import torch

    cell = cells("adam", "digits-mlp", steps=30)[0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = run_cell(cell)
        torch.set_num_threads(1)
        one = run_cell(cell)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one.series["update_norm"], two.series["update_norm"])
    assert np.array_equal(one.final_params, two.final_params)
