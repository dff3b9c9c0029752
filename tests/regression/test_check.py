"""`gsibench check` catches three plausible Adam bugs and passes an unchanged or faithfully rewritten Adam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.optimizers.registry import register
from gsibench.regression.check import (
    MACHINE_FLOOR,
    QUICK,
    compare_records,
    parse_tolerances,
    record_baseline,
    run_check,
    scales,
)

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]

SMALL = {"tasks": ["oracle", "quadratic"], "seeds": [0, 1], "steps": 100}
"""The quick battery's perturbations on the two fast tasks: about a second per check."""


class ReferenceAdam(torch.optim.Optimizer):
    """Adam written out per tensor: θ ← θ − η · m̂/(√v̂ + ε), m̂ = m/(1−β1^k), v̂ = v/(1−β2^k).

    Each bug below overrides one of the three small methods."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def betas(self, group: dict) -> tuple[float, float]:
        return group["betas"]

    def correction(self, beta: float, step: int) -> float:
        return 1 - beta**step

    def denominator(self, v_hat: torch.Tensor, eps: float) -> torch.Tensor:
        return v_hat.sqrt().add_(eps)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = self.betas(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = state["m"] / self.correction(beta1, state["step"])
                v_hat = state["v"] / self.correction(beta2, state["step"])
                p.addcdiv_(m_hat, self.denominator(v_hat, group["eps"]), value=-group["lr"])


@register("test-adam-reference")
class FaithfulAdam(ReferenceAdam):
    """The reference, unchanged."""


@register("test-adam-no-bias-correction")
class NoBiasCorrection(ReferenceAdam):
    def correction(self, beta: float, step: int) -> float:
        return 1.0


@register("test-adam-swapped-betas")
class SwappedBetas(ReferenceAdam):
    def betas(self, group: dict) -> tuple[float, float]:
        beta1, beta2 = group["betas"]
        return beta2, beta1


@register("test-adam-eps-in-sqrt")
class EpsInsideSqrt(ReferenceAdam):
    def denominator(self, v_hat: torch.Tensor, eps: float) -> torch.Tensor:
        return (v_hat + eps).sqrt()


@pytest.fixture(scope="module")
def adam_baseline() -> dict:
    return record_baseline("adam", SMALL)


@pytest.mark.parametrize("spec", ["adam", "test-adam-reference"])
def test_unchanged_adam_passes(adam_baseline, spec):
    report = run_check(spec, adam_baseline)
    assert report.passed, report.text()
    assert len(report.rows) > 40  # 2 tasks × 4 perturbations × (metrics + 2 trajectories)
    worst = max(row.deviation / row.tolerance for row in report.rows if row.tolerance > 0)
    assert worst < 0.1  # not a near miss: a rewrite agrees to float rounding


@pytest.mark.parametrize(("spec", "telltale"), [
    # No bias correction: early updates ~3× too large (0.1/√0.001), visible in every ‖R_k‖ curve.
    ("test-adam-no-bias-correction", ("oracle", "none", "traj.update_norm")),
    # β1/β2 swapped: a 1000-step momentum; a x10 step now moves the update norm far more.
    ("test-adam-swapped-betas", ("oracle", "step:at=0.5,factor=10.0", "sensitivity")),
    # ε inside the square root: √(v̂+ε) ≈ 1e-4 swamps √v̂ once gradients are ×1e-4; scale invariance lost.
    ("test-adam-eps-in-sqrt", ("oracle", "constant:factor=0.0001", "sensitivity")),
])
def test_adam_bugs_are_caught(adam_baseline, spec, telltale):
    report = run_check(spec, adam_baseline)
    assert not report.passed
    flagged = {(row.task, row.perturbation, row.quantity) for row in report.flagged}
    assert telltale in flagged, report.text()
    assert "MOVED" in report.text()


@pytest.fixture(scope="module")
def foreign_baseline(adam_baseline) -> dict:
    """The same baseline as if recorded on another CPU (and an old file without the kernel fields)."""
    document = json.loads(json.dumps(adam_baseline))
    document["versions"]["cpu"] = "Another CPU @ 2.0GHz"
    del document["versions"]["kernel_env"]
    return document


def test_a_baseline_from_another_platform_gets_the_rounding_floor_of_that(foreign_baseline):
    report = run_check("test-adam-reference", foreign_baseline)
    assert report.passed, report.text()
    assert f"rounding floor {MACHINE_FLOOR:g}: another platform than the baseline's" in report.rule
    assert "cpu: Another CPU @ 2.0GHz -> " in report.notes[0] and "kernel_env: not recorded -> " in report.notes[0]


@pytest.mark.parametrize(("spec", "telltale"), [
    ("test-adam-no-bias-correction", ("oracle", "none", "traj.update_norm")),
    ("test-adam-swapped-betas", ("oracle", "step:at=0.5,factor=10.0", "sensitivity")),
    ("test-adam-eps-in-sqrt", ("oracle", "constant:factor=0.0001", "sensitivity")),
])
def test_bugs_are_caught_across_platforms_too(foreign_baseline, spec, telltale):
    report = run_check(spec, foreign_baseline)
    assert telltale in {(row.task, row.perturbation, row.quantity) for row in report.flagged}, report.text()


def test_a_baseline_passes_under_other_cpu_kernels(adam_baseline, tmp_path):
    """Recorded here, checked in a process whose torch runs other vector kernels and MKL its generic path
    (what another CPU does): it passes, on the other platform's rounding floor."""
    path = tmp_path / "adam.json"
    path.write_text(json.dumps(adam_baseline))
    other = "avx2" if os.environ.get("ATEN_CPU_CAPABILITY") == "default" else "default"  # whatever runs here
    env = {**os.environ, "ATEN_CPU_CAPABILITY": other, "MKL_CBWR": "COMPATIBLE", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "gsibench", "check", "--optimizer", "adam", "--baseline", str(path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "another platform than the baseline's" in done.stdout and f"ATEN_CPU_CAPABILITY={other}" in done.stdout


def test_eps_bug_is_caught_one_sided(adam_baseline):
    """--only-worse still flags the ε bug: it makes sensitivity worse, not better."""
    report = run_check("test-adam-eps-in-sqrt", adam_baseline, only_worse=True)
    assert not report.passed
    assert all(row.note == "worse" or row.quantity == "traj.loss" for row in report.flagged)
    assert not any(row.quantity == "traj.update_norm" for row in report.rows)


def test_better_moves_pass_one_sided(adam_baseline):
    """A change that only improves numbers is flagged two-sided and passes with only_worse."""
    improved = json.loads(json.dumps(adam_baseline))
    for cell in improved["cells"]:
        if cell["perturbation"].startswith("step"):
            cell["metrics"]["sensitivity"] = 10.0
    records = adam_baseline["cells"]
    two_sided = compare_records(improved, records)
    one_sided = compare_records(improved, records, only_worse=True)
    assert any(r.flagged and r.quantity == "sensitivity" for r in two_sided)
    assert not any(r.flagged and r.quantity == "sensitivity" for r in one_sided)


def test_tolerances_from_spread_and_floor(adam_baseline):
    rows = compare_records(adam_baseline, adam_baseline["cells"])
    by_key = {(r.task, r.perturbation, r.quantity): r for r in rows}
    scale = scales(adam_baseline["cells"])
    oracle = by_key[("oracle", "none", "omega1")]
    assert oracle.tolerance == 1e-6 + 1e-3 * scale[("oracle", "omega1")]  # seeds do not change the oracle
    assert scale[("oracle", "omega1")] == max(c["metrics"]["omega1"] for c in adam_baseline["cells"]
                                              if c["task"] == "oracle")
    constant = by_key[("oracle", "constant:factor=0.0001", "divergence")]  # a difference: the task's scale
    assert constant.tolerance == 1e-6 + 1e-3 * scale[("oracle", "divergence")] > 10 * (1e-6 + 1e-3 * constant.baseline)
    assert scale[("quadratic", "val_drop")] == scale[("quadratic", "val_score")]
    quadratic = by_key[("quadratic", "none", "val_score")]
    spread = adam_baseline["spread"]["quadratic | none"]["val_score"]
    assert spread > 0 and quadratic.tolerance == max(spread, 1e-6 + 1e-3 * scale[("quadratic", "val_score")])
    assert not any(r.flagged for r in rows)
    tight = compare_records(adam_baseline, adam_baseline["cells"], multiplier=0.5, overrides={"val_score": 0.0})
    assert {(r.task, r.perturbation, r.quantity): r for r in tight}[("quadratic", "none", "val_score")].tolerance == 0


def test_parse_tolerances():
    assert parse_tolerances(None) == (1.0, {})
    assert parse_tolerances(["0.5", "val_score=0.01", "traj.loss=0.1"]) == (0.5, {"val_score": 0.01, "traj.loss": 0.1})
    with pytest.raises(UsageError, match="omega1"):
        parse_tolerances(["omega=1"])
    with pytest.raises(UsageError):
        parse_tolerances(["lots"])


def test_quick_battery_is_pinned():
    assert QUICK["seeds"] == [0, 1, 2] and QUICK["steps"] == 200
    assert QUICK["tasks"] == ["oracle", "quadratic", "digits-mlp"]
    assert any(p.startswith("constant") for p in QUICK["perturbations"])


def test_cli_baseline_and_check_exit_codes(tmp_path, capsys):
    baseline = tmp_path / "adam.json"
    args = ["--tasks", "oracle", "--seeds", "2", "--steps", "60"]
    assert main(["baseline", "--optimizer", "adam", "--out", str(baseline), *args]) == 0
    document = json.loads(baseline.read_text())
    assert document["versions"]["torch"] == torch.__version__ and document["battery"]["steps"] == 60
    assert len(document["cells"]) == 2 * 4 and len(document["cells"][0]["series"]["update_norm"]) == 60
    assert main(["check", "--optimizer", "adam", "--baseline", str(baseline)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", "--optimizer", "test-adam-no-bias-correction", "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "MOVED" in out and "tolerance: metric: max(1 × seed-to-seed SD" in out
    assert main(["check", "--optimizer", "adam", "--baseline", str(tmp_path / "missing.json")]) == 2
    assert main(["check", "--optimizer", "nosuch", "--baseline", str(baseline)]) == 2
    assert main(["check", "--optimizer", "adam", "--baseline", str(baseline), "--tolerance", "x=1"]) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert main(["check", "--optimizer", "adam", "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "not a gsibench baseline" in capsys.readouterr().err


def test_pytest_entry_point_is_registered():
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("gsibench") == "gsibench.pytest_plugin"


def test_pytest_fixture(pytester, adam_baseline):
    """A user's test file: a faithful Adam passes, a buggy one fails with the diff table."""
    (pytester.path / "adam.json").write_text(json.dumps(adam_baseline))
    pytester.syspathinsert()
    pytester.makepyfile(myopt=_PLUGIN_OPTS)
    pytester.makepyfile(test_user="""
        def test_good(gsibench_check):
            report = gsibench_check("myopt:FaithfulAdam", baseline="adam.json")
            assert report.passed

        def test_bad(gsibench_check):
            gsibench_check("myopt:SwappedBetas", baseline="adam.json", tolerance={"traj.loss": 0.5})
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "test_user.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAIL: * quantities moved beyond tolerance*"])


_PLUGIN_OPTS = '''
import torch


class FaithfulAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def order(self, betas):
        return betas

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = self.order(group["betas"])
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = state["m"] / (1 - beta1 ** state["step"])
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])


class SwappedBetas(FaithfulAdam):
    def order(self, betas):
        return betas[::-1]
'''
