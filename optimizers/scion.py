"""Scion: stochastic conditional gradient with a norm-constrained LMO per layer.

Pethick et al., 2025, "Training Deep Learning Models with Norm-Constrained LMOs", arXiv 2502.07529;
this follows their reference ``Scion`` (github.com/LIONS-EPFL/scion, ``scion.py``) in float32.
For every parameter θ with momentum buffer d (started at 0)::

    d ← (1 − α) d + α g                          α = ``momentum`` (1 − the usual momentum)
    θ ← (1 − η) θ                                only in the constrained variant
    θ ← θ − η ρ lmo(d)                           ρ = the role's ``scale`` (the layer's radius)

lmo(d) = argmax_{‖s‖ ≤ 1} ⟨d, s⟩ in a norm chosen per role (the step subtracts it); each LMO is
homogeneous of degree 0 in d, so Scion is scale invariant. The LMOs, each a function below:

* ``spectral``       NS5(d)·√(d_out/d_in) — hidden matrices; ``spectral_max`` uses max(1, √(d_out/d_in)).
* ``spectral_conv``  NS5 of the (out, in·k·k) reshape, ·√(out/in)/k² (k·k = the kernel's size).
* ``sign``           sign(d)/d_in — the head.
* ``col_norm``       every column divided by its RMS (the reference's ColNorm, not normalized).
* ``row_norm``       every row divided by its L2 norm times √d_in (RowNorm, normalized).
* ``col_norm_transposed``, ``row_norm_transposed``   the same on dᵀ (embeddings, below).
* ``bias_rms``       d / RMS(d) — biases and gains.

NS5 is the Muon quintic X ← aX + (bXXᵀ + c(XXᵀ)²)X, (a, b, c) = (3.4445, −4.7750, 2.0315), five
steps from X = d/‖d‖_F, which maps d = U S Vᵀ to about U Vᵀ. The reference runs it in bfloat16 under
``torch.compile``; we run it in float32 so that CPU runs are deterministic and exactly comparable.
RMS and Frobenius norms are clamped below at ε instead of having ε added, so the update is exactly
invariant to a positive gradient scale.

Roles follow the README's MLP configuration: ``hidden`` — Spectral (SpectralConv for 3-/4-D
filters, as ``Auto`` does); ``input`` — Spectral with ``max`` (a first conv gets SpectralConv, as in
the CNN configuration); ``output`` — Sign, normalized; ``vector`` (and any tensor with fewer than two
dimensions) — BiasRMS. ``input_norm`` and ``output_norm`` pick other LMOs for the first layer and the
head (``col_norm`` / ``row_norm``: the reference's ColNorm / RowNorm, e.g. for embeddings).

**Embeddings.** A linear layer's weight is (d_out, d_in) and ColNorm divides each column (one input
feature) by its RMS over the outputs. An embedding (``ParamInfo.embedding``, set by ``char-gpt`` and
``wikitext-gpt`` for their token and position tables) is stored the other way round, (vocab, dim): the
reference GPT configuration (``examples/shallow-nanogpt/model.py``, ``scion_first_layer='ColNorm'``)
applies ColNorm with ``transpose=True`` to it, so that each *token's* vector is divided by its RMS over
the embedding dimension. With ``embedding_transpose`` (default true) ``col_norm`` and ``row_norm`` act
on the transpose of an embedding in the same way (``col_norm_transposed``, ``row_norm_transposed``);
``scion[embedding_transpose=false]`` gives the untransposed form, which normalizes each embedding
dimension across the vocabulary. ``scion[input_norm='col_norm']`` is the reference GPT configuration's
choice for the token embedding; the default ``input_norm`` stays ``spectral_max``.

Choices that differ from the reference defaults, named here as the design requires:

* ``momentum`` = 0.1, the README's recommended value; the reference code defaults to 1.0 (no averaging).
* ``unconstrained`` = True (the reference defaults to False). The constrained step shrinks θ by
  (1 − η) every step, i.e. a weight decay of exactly 1, and pairs with the reference's ``init()``
  that puts the weights on the norm ball of radius ``scale``. Our tasks keep their own
  initialization and every other built-in defaults to no weight decay, so the unconstrained step
  makes R_k = (θ_k − θ_{k+1})/η the LMO step alone, comparable with theirs.
  ``scion[unconstrained=false]`` runs the reference's constrained variant.
* ``scale_output`` = 10. The README's MLP uses 2^10 for wide layers; with the sign LMO an entry of
  the head moves by η·scale/d_in per step, and for our heads (d_in ≈ 64–128) 10 gives steps the size of
  the hidden layers' ones. Tune it per task like µP's output multiplier. The other scales are 1 and
  the lr 2^-6, the README's MLP configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gsibench.core.params import ParamInfo
from gsibench.optimizers.orthogonalize import newton_schulz5 as orthogonalize
from gsibench.optimizers.registry import OptimizerEntry, add
from gsibench.optimizers.validation import require_positive

EPS = 1e-7
"""Lower clamp of the RMS and Frobenius norms of the LMOs."""


def newton_schulz5(g: Tensor, steps: int = 5) -> Tensor:
    """≈ U Vᵀ for the matrix g = U S Vᵀ: NS5 in float32 (:mod:`gsibench.optimizers.orthogonalize`)."""
    return orthogonalize(g, steps).to(g.dtype)


def _as_matrix(d: Tensor) -> Tensor:
    return d.reshape(len(d), -1)


def spectral(d: Tensor, ns_steps: int) -> Tensor:
    """Spectral-norm LMO of a matrix: NS5(d)·√(d_out/d_in)."""
    d_out, d_in = d.shape
    return newton_schulz5(d, ns_steps) * math.sqrt(d_out / d_in)


def spectral_max(d: Tensor, ns_steps: int) -> Tensor:
    """Spectral LMO with the scale clamped below at 1: NS5(d)·max(1, √(d_out/d_in)) (input layers)."""
    d_out, d_in = d.shape
    return newton_schulz5(d, ns_steps) * max(1.0, math.sqrt(d_out / d_in))


def spectral_conv(d: Tensor, ns_steps: int) -> Tensor:
    """Spectral LMO of a filter (out, in, *kernel): NS5 of the (out, in·k·k) reshape, ·√(out/in)/k·k."""
    out_channels, in_channels, *kernel = d.shape
    factor = math.sqrt(out_channels / in_channels) / math.prod(kernel)
    return newton_schulz5(_as_matrix(d), ns_steps).reshape(d.shape) * factor


def sign(d: Tensor, ns_steps: int) -> Tensor:
    """ℓ∞ LMO, normalized: sign(d)/d_in."""
    return torch.sign(d) / d[0].numel()


def col_norm(d: Tensor, ns_steps: int) -> Tensor:
    """Every column divided by its RMS over the rows."""
    m = _as_matrix(d)
    return (m / m.square().mean(dim=0, keepdim=True).sqrt().clamp_min(EPS)).reshape(d.shape)


def row_norm(d: Tensor, ns_steps: int) -> Tensor:
    """Every row divided by its L2 norm times √d_in."""
    m = _as_matrix(d)
    return (m / (m.norm(dim=1, keepdim=True) * math.sqrt(m.size(1))).clamp_min(EPS)).reshape(d.shape)


def col_norm_transposed(d: Tensor, ns_steps: int) -> Tensor:
    """ColNorm of dᵀ, transposed back: every row of an embedding (one token's vector) divided by its RMS."""
    return col_norm(d.T, ns_steps).T


def row_norm_transposed(d: Tensor, ns_steps: int) -> Tensor:
    """RowNorm of dᵀ, transposed back: every column divided by its L2 norm times √(rows)."""
    return row_norm(d.T, ns_steps).T


def bias_rms(d: Tensor, ns_steps: int) -> Tensor:
    """d divided by its RMS."""
    return d / d.square().mean().sqrt().clamp_min(EPS)


def auto(d: Tensor, ns_steps: int) -> Tensor:
    """By shape, as the reference's ``Auto``: spectral_conv (3-D+), spectral (2-D), bias_rms (0-/1-D)."""
    lmo = spectral_conv if d.ndim > 2 else spectral if d.ndim == 2 else bias_rms
    return lmo(d, ns_steps)


LMOS: dict[str, Callable[[Tensor, int], Tensor]] = {
    f.__name__: f for f in (spectral, spectral_max, spectral_conv, sign, col_norm, row_norm, col_norm_transposed,
                            row_norm_transposed, bias_rms, auto)
}
EDGE_NORMS = ("spectral_max", "spectral", "col_norm", "row_norm", "sign")
"""LMOs that ``input_norm`` and ``output_norm`` may name."""


class Scion(torch.optim.Optimizer):
    """Scion (Pethick et al. 2025): d ← (1 − α)d + αg; [θ ← (1 − η)θ]; θ ← θ − η·scale·lmo(d).

    Each parameter group carries ``norm`` (a key of :data:`LMOS`), ``scale``, ``momentum`` (α),
    ``unconstrained`` and ``ns_steps``; the state is ``momentum_buffer`` (d) per parameter.
    """

    def __init__(
        self,
        params,
        lr: float = 2**-6,
        momentum: float = 0.1,
        norm: str = "auto",
        scale: float = 1.0,
        unconstrained: bool = True,
        ns_steps: int = 5,
    ):
        defaults = {"lr": lr, "momentum": momentum, "norm": norm, "scale": scale,
                    "unconstrained": unconstrained, "ns_steps": ns_steps}
        super().__init__(params, defaults)
        for group in self.param_groups:
            if not group["lr"] > 0:
                raise ValueError(f"lr must be > 0, got {group['lr']!r}")
            if not 0 < group["momentum"] <= 1:
                raise ValueError(f"momentum must be in (0, 1], got {group['momentum']!r}")
            if group["norm"] not in LMOS:
                raise ValueError(f"norm must be one of {', '.join(LMOS)}, got {group['norm']!r}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lmo, lr = LMOS[group["norm"]], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                d = state["momentum_buffer"]
                d.lerp_(p.grad, group["momentum"])
                update = lmo(d, group["ns_steps"])
                if not group["unconstrained"]:
                    p.mul_(1 - lr)
                p.add_(update, alpha=-lr * group["scale"])
        return loss


def norm_for(info: ParamInfo, input_norm: str = "spectral_max", output_norm: str = "sign",
             embedding_transpose: bool = True) -> str:
    """The LMO a parameter gets from its role, shape and layout (see the module docstring)."""
    if info.role == "vector" or info.tensor.ndim < 2:
        return "bias_rms"
    norm = {"hidden": "spectral", "input": input_norm, "output": output_norm}[info.role]
    if info.embedding and embedding_transpose and norm in ("col_norm", "row_norm") and info.tensor.ndim == 2:
        return f"{norm}_transposed"
    return "spectral_conv" if info.tensor.ndim > 2 and norm.startswith("spectral") else norm


def _check(hparams: dict) -> None:
    require_positive(hparams, "scale_hidden", "scale_input", "scale_output", "scale_vector")
    momentum = hparams["momentum"]
    if not isinstance(momentum, (int, float)) or not 0 < momentum <= 1:
        raise ValueError(f"momentum must be in (0, 1] (it is 1 − the usual momentum), got {momentum!r}")
    steps = hparams["ns_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps < 100:
        raise ValueError(f"ns_steps must be an integer in [1, 100), got {steps!r}")
    for key in ("unconstrained", "embedding_transpose"):
        if not isinstance(hparams[key], bool):
            raise TypeError(f"{key} must be true or false, got {hparams[key]!r}")
    for key in ("input_norm", "output_norm"):
        if hparams[key] not in EDGE_NORMS:
            raise ValueError(f"{key} must be one of {', '.join(EDGE_NORMS)}, got {hparams[key]!r}")


def scion(
    params: list[ParamInfo],
    lr: float,
    momentum: float,
    unconstrained: bool,
    ns_steps: int,
    scale_hidden: float,
    scale_input: float,
    scale_output: float,
    scale_vector: float,
    input_norm: str,
    output_norm: str,
    embedding_transpose: bool,
) -> Scion:
    scales = {"hidden": scale_hidden, "input": scale_input, "output": scale_output, "vector": scale_vector}
    groups: dict[tuple[str, str], dict] = {}
    for info in params:
        norm = norm_for(info, input_norm, output_norm, embedding_transpose)
        group = {"params": [], "role": info.role, "norm": norm, "scale": scales[info.role]}
        groups.setdefault((info.role, norm), group)["params"].append(info.tensor)
    return Scion(list(groups.values()), lr=lr, momentum=momentum, unconstrained=unconstrained, ns_steps=ns_steps)


add(OptimizerEntry(
    "scion", "Scion (Pethick et al. 2025): conditional gradient with a spectral/sign/RMS LMO per role", scion,
    {"lr": 2**-6, "momentum": 0.1, "unconstrained": True, "ns_steps": 5, "scale_hidden": 1.0,
     "scale_input": 1.0, "scale_output": 10.0, "scale_vector": 1.0, "input_norm": "spectral_max",
     "output_norm": "sign", "embedding_transpose": True},
    _check,
))
