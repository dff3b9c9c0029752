"""Muon on the CPU: Newton–Schulz in float32, step for step what torch.optim.Muon computes."""

from __future__ import annotations

import pytest
import torch

from gsibench.core.params import ParamInfo
from gsibench.optimizers.muon import Float32Muon, MuonWithAuxAdamW
from gsibench.optimizers.orthogonalize import newton_schulz5
from gsibench.optimizers.registry import get, resolve

SHAPES = [(8, 8), (16, 6), (5, 12)]  # square, tall (A > B: transposed and lr × √(A/B)), wide


def matrices(seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=generator) * 0.1) for shape in SHAPES]


def trajectory(optimizer_class, steps: int = 8, scale: float = 1.0, **options) -> list[torch.Tensor]:
    params = matrices()
    optimizer = optimizer_class(params, **options)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = scale * torch.randn(p.shape, generator=generator)
        optimizer.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("options", [
    {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.0},
    {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.1, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.01, "momentum": 0.5, "ns_steps": 3, "adjust_lr_fn": "original"},
])
def test_float32_muon_is_torch_muon_computed_in_float32(monkeypatch, options):
    """torch.optim.Muon with its bfloat16 cast turned into a float32 one runs the same operations in the
    same order as Float32Muon, so on one machine the two agree bit for bit."""
    ours = trajectory(Float32Muon, **options)
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self, *args, **kwargs: self.to(torch.float32, copy=True))
    theirs = trajectory(torch.optim.Muon, **options)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_torch_muon_in_bfloat16_differs_from_float32():
    """The check above is not vacuous: unpatched, torch's bfloat16 NS5 gives other numbers."""
    ours, theirs = trajectory(Float32Muon, lr=0.02), trajectory(torch.optim.Muon, lr=0.02)
    assert not all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_float32_newton_schulz_is_invariant_to_a_scale_to_rounding():
    """NS5(1000·G) against NS5(G): the normalisation G/‖G‖_F rounds differently (≤ 2 ulp relative),
    and five steps of three float32 matmuls of inner size ≤ 16 add at most ~3·5·16 = 240 unit roundoffs
    (2^-24) of growth each — a bound of 240·2^-24 ≈ 1.4e-5 relative to the entries' size (≈ 1)."""
    g = torch.randn(16, 6, generator=torch.Generator().manual_seed(3))
    gap = (newton_schulz5(1000.0 * g) - newton_schulz5(g)).abs().max().item()
    assert gap <= 240 * 2.0**-24


def test_a_muon_cell_uses_float32_on_cpu_and_bfloat16_on_request():
    params = [ParamInfo("w", torch.nn.Parameter(torch.zeros(4, 4)), "hidden"),
              ParamInfo("b", torch.nn.Parameter(torch.zeros(4)), "vector")]
    entry, hparams = resolve("muon")
    assert hparams["ns_dtype"] == "auto"
    built = entry.build(params, **hparams)
    assert isinstance(built, MuonWithAuxAdamW) and type(built._inner[0]) is Float32Muon
    forced = get("muon").build(params, ns_dtype="bfloat16")
    assert type(forced._inner[0]) is torch.optim.Muon


def test_unknown_ns_dtype_is_named():
    from gsibench.core.errors import UsageError

    with pytest.raises(UsageError, match="ns_dtype must be one of"):
        resolve("muon[ns_dtype='float16']")
