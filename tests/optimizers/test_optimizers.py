"""The built-in optimizers against their references, step for step, and their scale invariance."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo, probe_params
from gsibench.optimizers.registry import available, get, resolve


def clone(params: list[ParamInfo]) -> list[ParamInfo]:
    """Independent copies with the same values, names and roles."""
    return [ParamInfo(p.name, nn.Parameter(p.tensor.detach().clone()), p.role) for p in params]


def random_grads(params: list[ParamInfo], steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.tensor.shape, generator=generator) for p in params] for _ in range(steps)]


def step_with(optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for tensor, grad in zip(tensors, grads):
        tensor.grad = grad.clone().reshape(tensor.shape)
    optimizer.step()


U = 2.0**-24
"""float32 unit roundoff."""
RHO = 64 * U
"""Relative rounding of one update computed two ways: an update is a dozen float32 operations on the gradient
and on moments that carry earlier steps' rounding (each contracting by β); 64 roundings bound that over the
tens of steps here."""


def ulps(*tensors: torch.Tensor) -> torch.Tensor:
    """The float32 spacing at the larger magnitude of the given tensors, per coordinate (float64)."""
    largest = torch.stack([t.detach().abs().float() for t in tensors]).amax(dim=0)
    return torch.from_numpy(np.spacing(largest.numpy())).double()


def assert_same(actual: list[torch.Tensor], expected: list[torch.Tensor], steps: int = 0, update: float = 0.0) -> None:
    """Two programs of one update rule after ``steps`` steps of size at most ``update`` per coordinate: per step
    the two exact results differ by at most RHO·update and round to floats at most an ulp of θ apart, and the
    differences add up. ``steps=0``: identical (the same operations on the same numbers)."""
    for a, e in zip(actual, expected, strict=True):
        gap = (a.detach().double() - e.detach().double()).abs()
        allowed = steps * (ulps(a, e) + RHO * update)
        assert bool((gap <= allowed).all()), f"off by {gap.max():.3g} where rounding allows {allowed.min():.3g}"


def largest_step(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    return max(float((b.detach() - a.detach()).abs().max()) for b, a in zip(before, after))


@pytest.mark.parametrize(
    ("spec", "betas"), [("adam", (0.9, 0.999)), ("adam-balanced[beta=0.9]", (0.9, 0.9))]
)
def test_adam_matches_torch_reference(spec: str, betas: tuple[float, float]) -> None:
    params = probe_params()
    reference = clone(params)
    entry, hparams = resolve(spec)
    optimizer = entry.build(params, **hparams)
    torch_adam = torch.optim.Adam([p.tensor for p in reference], lr=1e-3, betas=betas, eps=1e-8, foreach=False)
    update = 0.0
    for k, grads in enumerate(random_grads(params, 20), start=1):
        before = [p.tensor.detach().clone() for p in reference]
        step_with(optimizer, [p.tensor for p in params], grads)
        step_with(torch_adam, [p.tensor for p in reference], grads)
        update = max(update, largest_step(before, [p.tensor for p in reference]))
        assert_same([p.tensor for p in params], [p.tensor for p in reference], k, update)


MUON_HPARAMS = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "adam_lr": 1e-2, "adam_beta1": 0.8,
                "adam_beta2": 0.9, "adam_eps": 1e-6, "adam_weight_decay": 0.05}


def muon_references(params: list[ParamInfo]):
    """torch.optim.Muon per hidden tensor (conv filters as (out, in·k·k) copies) and AdamW for the rest."""
    muon_options = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True, "ns_steps": 5}
    matrices, others = {}, {}
    for p in params:
        if p.role == "hidden":
            matrix = nn.Parameter(p.tensor.detach().clone().reshape(len(p.tensor), -1))
            matrices[p.name] = (matrix, torch.optim.Muon([matrix], **muon_options))
        else:
            copy = nn.Parameter(p.tensor.detach().clone())
            others[p.name] = (copy, torch.optim.AdamW([copy], lr=1e-2, betas=(0.8, 0.9), eps=1e-6,
                                                      weight_decay=0.05, foreach=False))
    return {**matrices, **others}


@pytest.mark.parametrize("ns_dtype", ["bfloat16", "auto"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_muon_matches_torch_muon_and_adamw(channels_last: bool, ns_dtype: str, monkeypatch) -> None:
    """Against torch.optim.Muon per matrix: as it is (bfloat16), or — for the CPU default, NS5 in float32 —
    with its bfloat16 cast made a float32 copy (tests/optimizers/test_muon.py)."""
    if ns_dtype == "auto":
        monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self, *a, **k: self.to(torch.float32, copy=True))
    params = probe_params()
    if channels_last:
        conv = next(p for p in params if p.tensor.ndim == 4)
        conv.tensor.data = conv.tensor.data.to(memory_format=torch.channels_last)
    references = muon_references(params)
    optimizer = get("muon").build(params, **MUON_HPARAMS, ns_dtype=ns_dtype)
    update = 0.0
    for k, grads in enumerate(random_grads(params, 5), start=1):
        step_with(optimizer, [p.tensor for p in params], grads)
        for p, grad in zip(params, grads):
            tensor, reference = references[p.name]
            before = tensor.detach().clone()
            step_with(reference, [tensor], [grad])
            update = max(update, largest_step([before], [tensor]))
            # the same torch kernels on the same numbers, up to the (out, in·k·k) view of a conv filter
            assert_same([p.tensor.reshape(tensor.shape)], [tensor], k, update)
    conv = next(p.tensor for p in params if p.tensor.ndim == 4)
    first = next(p.tensor for p in params if p.role == "input")
    assert optimizer.state[conv]["momentum_buffer"].shape == (4, 18)
    assert set(optimizer.state[first]) == {"step", "exp_avg", "exp_avg_sq"}
    assert len(optimizer.state) == len(params)


def test_muon_param_groups_drive_the_inner_optimizers() -> None:
    params = probe_params()
    optimizer = get("muon").build(params)
    groups = optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.02, 3e-4]
    assert {id(t) for t in groups[0]["params"]} == {id(p.tensor) for p in params if p.role == "hidden"}
    before = [p.tensor.detach().clone() for p in params]
    for group in groups:
        group["lr"] = 0.0
    step_with(optimizer, [p.tensor for p in params], random_grads(params, 1)[0])
    assert_same([p.tensor for p in params], before)  # steps=0: identical
    groups[0]["lr"] = 0.02
    step_with(optimizer, [p.tensor for p in params], random_grads(params, 1)[0])
    moved = [not torch.equal(p.tensor, b) for p, b in zip(params, before)]
    assert moved == [p.role == "hidden" for p in params]
    optimizer.zero_grad(set_to_none=True)
    assert all(p.tensor.grad is None for p in params)


def test_muon_state_dict_round_trip() -> None:
    params = probe_params()
    optimizer = get("muon").build(params)
    step_with(optimizer, [p.tensor for p in params], random_grads(params, 1)[0])
    saved = copy.deepcopy(optimizer.state_dict())
    twin_params = clone(params)
    twin = get("muon").build(twin_params)
    twin.load_state_dict(saved)
    grads = random_grads(params, 1, seed=7)[0]
    step_with(optimizer, [p.tensor for p in params], grads)
    step_with(twin, [p.tensor for p in twin_params], grads)
    assert_same([p.tensor for p in twin_params], [p.tensor for p in params])  # steps=0: identical


A, B, C = 3.4445, -4.7750, 2.0315


def ns5_by_hand(g: torch.Tensor) -> torch.Tensor:
    """Five Newton–Schulz quintic steps, written out: X ← aX + bXXᵀX + cXXᵀXXᵀX on the wide side."""
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / torch.sqrt((x * x).sum())
    for _ in range(5):
        xxt = x @ x.T
        x = A * x + B * (xxt @ x) + C * (xxt @ xxt @ x)
    return x.T if g.shape[0] > g.shape[1] else x


def scion_case() -> list[ParamInfo]:
    generator = torch.Generator().manual_seed(3)

    def param(*shape: int) -> nn.Parameter:
        return nn.Parameter(torch.randn(*shape, generator=generator))

    return [
        ParamInfo("input.weight", param(4, 2), "input"),
        ParamInfo("hidden.weight", param(3, 2), "hidden"),
        ParamInfo("conv.weight", param(2, 1, 3, 3), "hidden"),
        ParamInfo("output.weight", param(2, 3), "output"),
        ParamInfo("bias", param(3), "vector"),
    ]


def scion_lmo_by_hand(name: str, d: torch.Tensor) -> torch.Tensor:
    if name == "input.weight":
        return ns5_by_hand(d) * math.sqrt(2)
    if name == "hidden.weight":
        return ns5_by_hand(d) * math.sqrt(3 / 2)
    if name == "conv.weight":
        return ns5_by_hand(d.reshape(2, 9)).reshape(2, 1, 3, 3) * math.sqrt(2 / 1) / 9
    if name == "output.weight":
        return torch.sign(d) / 3
    return d / torch.sqrt((d * d).mean())


@pytest.mark.parametrize("unconstrained", [True, False])
def test_scion_matches_hand_computed_update(unconstrained: bool) -> None:
    params = scion_case()
    scales = {"input": 1.5, "hidden": 2.0, "output": 3.0, "vector": 0.5}
    lr, alpha = 0.1, 0.25
    optimizer = get("scion").build(
        params, lr=lr, momentum=alpha, unconstrained=unconstrained,
        **{f"scale_{role}": value for role, value in scales.items()},
    )
    expected = [p.tensor.detach().clone() for p in params]
    buffers = [torch.zeros_like(t) for t in expected]
    for grads in random_grads(params, 2):
        step_with(optimizer, [p.tensor for p in params], grads)
        for i, (p, g) in enumerate(zip(params, grads)):
            buffers[i] = (1 - alpha) * buffers[i] + alpha * g
            shrink = 1.0 if unconstrained else 1 - lr
            expected[i] = shrink * expected[i] - lr * scales[p.role] * scion_lmo_by_hand(p.name, buffers[i])
        # Newton–Schulz computed by two programs (another matmul order): a quintic map iterated five times has
        # no useful worst-case bound on how it amplifies input rounding (28^5), so this is an observed margin:
        # 7.2e-7 measured under AVX-512, AVX2 and scalar kernels, 14x below the tolerance.
        for param, value in zip(params, expected):
            torch.testing.assert_close(param.tensor.detach(), value, rtol=0, atol=1e-5)
        assert all("momentum_buffer" in optimizer.state[p.tensor] for p in params)


@pytest.mark.parametrize(
    ("role", "shape", "norm"),
    [
        ("hidden", (8, 8), "spectral"),
        ("hidden", (4, 2, 3, 3), "spectral_conv"),
        ("hidden", (8,), "bias_rms"),
        ("input", (8, 4), "spectral_max"),
        ("input", (8, 3, 3, 3), "spectral_conv"),
        ("output", (3, 8), "sign"),
        ("output", (3,), "bias_rms"),
        ("vector", (8,), "bias_rms"),
    ],
)
def test_scion_norm_per_role_and_shape(role: str, shape: tuple[int, ...], norm: str) -> None:
    from gsibench.optimizers.scion import norm_for

    assert norm_for(ParamInfo("p", nn.Parameter(torch.zeros(shape)), role)) == norm


def test_scion_groups_carry_norm_and_scale() -> None:
    optimizer = get("scion").build(probe_params(), scale_output=7.0)
    groups = {(g["role"], g["norm"]): g["scale"] for g in optimizer.param_groups}
    assert groups == {("input", "spectral_max"): 1.0, ("hidden", "spectral"): 1.0,
                      ("hidden", "spectral_conv"): 1.0, ("output", "sign"): 7.0, ("vector", "bias_rms"): 1.0}


def test_newton_schulz_orthogonalises() -> None:
    from gsibench.optimizers.scion import newton_schulz5

    d = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    singular_values = torch.linalg.svdvals(newton_schulz5(d))
    assert singular_values.min() > 0.6 and singular_values.max() < 1.3  # NS5's band, not a rounding question
    # two programs of NS5 in float32: torch's default float32 tolerance (1.3e-6 relative, 1e-5 absolute) is an
    # observed margin (no useful a-priori bound, see above): 2.0e-6 measured at most, on entries of size ~1
    torch.testing.assert_close(newton_schulz5(d), ns5_by_hand(d))


def test_lion_matches_rule_by_hand() -> None:
    params = probe_params()
    lr, beta1, beta2, weight_decay = 1e-2, 0.8, 0.95, 0.1
    optimizer = get("lion").build(params, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)
    expected = [p.tensor.detach().clone() for p in params]
    momenta = [torch.zeros_like(t) for t in expected]
    for k, grads in enumerate(random_grads(params, 10), start=1):
        step_with(optimizer, [p.tensor for p in params], grads)
        for i, g in enumerate(grads):
            update = torch.sign(beta1 * momenta[i] + (1 - beta1) * g)
            expected[i] = expected[i] * (1 - lr * weight_decay) - lr * update
            momenta[i] = beta2 * momenta[i] + (1 - beta2) * g
        # ±lr and the decay: the sign is the same unless its argument is within rounding of zero, which none
        # of these gradients' is; what remains is θ's rounding, as for Adam
        assert_same([p.tensor for p in params], expected, k, lr * (1 + 4 * weight_decay))


BUILTINS = [name for name in available() if get(name).factory.__module__.startswith("gsibench.optimizers.")]
SCALE = 2.0**10
"""A power of two: scaling by it is exact in floating point, so any difference between the two runs is
the optimizer's. (torch.optim.Muon orthogonalises in bfloat16, where 1000·g rounds unlike g; our CPU
default runs it in float32.)"""


def trajectory(name: str, scale: float, steps: int = 10) -> list[torch.Tensor]:
    entry = get(name)
    tiny_eps = {key: 1e-16 for key in entry.defaults if key == "eps" or key.endswith("_eps")}
    params = probe_params()
    optimizer = entry.build(params, **tiny_eps)
    points = [torch.cat([p.tensor.detach().reshape(-1) for p in params]).double()]
    for grads in random_grads(params, steps):
        step_with(optimizer, [p.tensor for p in params], [scale * g for g in grads])
        points.append(torch.cat([p.tensor.detach().reshape(-1) for p in params]).double())
    return points


def relative_gap(name: str, scale: float) -> float:
    clean, scaled = trajectory(name, 1.0), trajectory(name, scale)
    return max(((s - c).norm() / (c - clean[0]).norm()).item() for c, s in zip(clean[1:], scaled[1:]))


def test_builtins_are_all_covered() -> None:
    assert {"adam", "adam-balanced", "adamw", "lion", "muon", "scion", "sgd", "signsgd"} <= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_scale_invariance(name: str) -> None:
    """×2^10 commutes with every float rounding (float32 and bfloat16 alike; ε = 1e-16 sits far below √v̂ of
    these unit-size gradients), so an invariant optimizer's trajectory is the same bit for bit, on any CPU."""
    gap = relative_gap(name, SCALE)
    if get(name).scale_invariant:
        assert gap == 0.0, f"{name}: gradients ×{SCALE} moved the trajectory by {gap:.2e} (relative)"
    else:
        assert gap > 1.0, f"{name} is declared scale-sensitive but the trajectory moved only {gap:.2e}"


NEWTON_SCHULZ = ("muon", "scion")


@pytest.mark.parametrize("name", BUILTINS)
def test_scale_invariance_at_a_non_power_of_two(name: str) -> None:
    """×1000 rounds: per step and coordinate the two runs' updates differ by RHO of the update and their θ
    round at most an ulp apart, and those differences add up over the steps (as :func:`assert_same`)."""
    clean, scaled = trajectory(name, 1.0), trajectory(name, 1000.0)
    gap = max(((s - c).norm() / (c - clean[0]).norm()).item() for c, s in zip(clean[1:], scaled[1:]))
    if not get(name).scale_invariant:
        assert gap > 1.0
    elif name in NEWTON_SCHULZ:
        # Newton–Schulz amplifies rounding without a useful worst-case bound: the check is only that the
        # trajectory stays far (10^4x) below a scale-sensitive optimizer's move of ~999x its travel
        assert gap < 0.1, f"{name}: gradients ×1000 moved the trajectory by {gap:.2e} (relative)"
    else:
        update = max((b - a).abs().max().item() for a, b in zip(clean, clean[1:]))
        for k, (c, s) in enumerate(zip(clean[1:], scaled[1:]), start=1):
            allowed = k * (ulps(c, s) + RHO * update)
            assert bool(((s - c).abs() <= allowed).all()), f"{name}: step {k} off by {(s - c).abs().max():.3g}"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("adam-balanced[beta=1.0]", "beta must be in [0.0, 1.0), got 1.0"),
        ("adam[lr=-1]", "lr must be a positive number, got -1"),
        ("lion[beta1=2]", "beta1 must be in [0.0, 1.0), got 2"),
        ("muon[momentum=1.5]", "momentum must be in [0.0, 1.0), got 1.5"),
        ("muon[adjust_lr_fn='spectral']", "adjust_lr_fn must be one of"),
        ("scion[momentum=0]", "momentum must be in (0, 1]"),
        ("scion[scale_output=-3]", "scale_output must be > 0, got -3"),
        ("scion[input_norm='frobenius']", "input_norm must be one of"),
    ],
)
def test_bad_hyperparameter_is_named(spec: str, named: str) -> None:
    with pytest.raises(UsageError, match="optimizer") as error:
        resolve(spec)
    assert named in str(error.value)


def test_unknown_hyperparameter_lists_valid_ones() -> None:
    with pytest.raises(UsageError) as error:
        resolve("lion[betta1=0.9]")
    assert "'betta1'" in str(error.value)
    assert "valid: beta1, beta2, lr, weight_decay" in str(error.value)


def test_unknown_optimizer_suggests_closest() -> None:
    with pytest.raises(UsageError, match="Did you mean 'adam'"):
        get("adm")


def test_every_builtin_builds_on_the_probe() -> None:
    for name in BUILTINS:
        entry, hparams = resolve(name)
        assert isinstance(entry.build(probe_params(), **hparams), torch.optim.Optimizer)


def embedding_case() -> list[ParamInfo]:
    """A (vocab 6, dim 4) embedding as char-gpt marks it, and the same shape as a plain input layer."""
    generator = torch.Generator().manual_seed(5)
    table = nn.Parameter(torch.randn(6, 4, generator=generator))
    return [ParamInfo("wte.weight", table, "input", embedding=True)]


@pytest.mark.parametrize(("transpose", "axis"), [(True, 1), (False, 0)])
def test_scion_col_norm_of_an_embedding_normalizes_each_token_vector(transpose: bool, axis: int) -> None:
    """The reference GPT configuration's ColNorm(transpose=True) on a (vocab, dim) embedding: every
    token's row has RMS 1 over the embedding dimension (axis 1); untransposed, every embedding
    dimension has RMS 1 over the vocabulary (axis 0). One step from θ = 0 with momentum 1 and lr 1 makes
    −θ the LMO of the gradient itself."""
    params = embedding_case()
    with torch.no_grad():
        params[0].tensor.zero_()
    optimizer = get("scion").build(params, lr=1.0, momentum=1.0, input_norm="col_norm",
                                   embedding_transpose=transpose)
    assert optimizer.param_groups[0]["norm"] == ("col_norm_transposed" if transpose else "col_norm")
    step_with(optimizer, [params[0].tensor], [torch.randn(6, 4, generator=torch.Generator().manual_seed(6))])
    update = -params[0].tensor.detach()
    rms = update.square().mean(dim=axis).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-6)  # float32: RMS of four/six O(1) numbers
    other = update.square().mean(dim=1 - axis).sqrt()
    assert not torch.allclose(other, torch.ones_like(other), atol=1e-2)  # the other axis is not normalized


def test_char_gpt_marks_its_embeddings_and_nothing_else() -> None:
    from gsibench.tasks.char_gpt import GPT, GPTConfig, gpt_roles

    infos = gpt_roles(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8)))
    assert {p.name for p in infos if p.embedding} == {"wte.weight", "wpe.weight"}
    assert {p.role for p in infos if p.embedding} == {"input"}
    from gsibench.optimizers.scion import norm_for

    assert [norm_for(p, input_norm="col_norm") for p in infos if p.embedding] == ["col_norm_transposed"] * 2
    assert norm_for(ParamInfo("fc.weight", nn.Parameter(torch.zeros(4, 3)), "input"), "col_norm") == "col_norm"
