"""Muon on hidden matrices, AdamW on everything else.

Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural networks",
kellerjordan.github.io/posts/muon), as ``torch.optim.Muon`` computes it for a matrix W ∈ R^{A×B}::

    B_k = μ B_{k-1} + (1 − μ) G_k                      momentum (an EMA)
    U_k = (1 − μ) G_k + μ B_k   (Nesterov)   or  B_k
    O_k = NS5(U_k)                                       ≈ the orthogonal factor U Vᵀ of U_k = U S Vᵀ
    W  ← W (1 − η λ) − η s(A, B) O_k

NS5 is five steps of the Newton–Schulz quintic on X_0 = U_k / ‖U_k‖_F (transposed so that A ≤ B)::

    X ← a X + (b X Xᵀ + c (X Xᵀ)²) X,     (a, b, c) = (3.4445, −4.7750, 2.0315),

which maps U_k = U S Vᵀ to about U S' Vᵀ with S' roughly in [0.5, 1.5] — close enough to U Vᵀ.
torch runs it in bfloat16, which is native on CUDA; on a CPU bfloat16 matmuls are emulated (a 64×64
NS5 took 5.0 ms against 0.5 ms in float32 here) and round 1000·G unlike G. ``ns_dtype`` chooses:
``auto`` (the default) keeps ``torch.optim.Muon`` on CUDA and runs :class:`Float32Muon` — the same
step with NS5 in float32 (:mod:`gsibench.optimizers.orthogonalize`) — elsewhere.

The scale s(A, B) is ``adjust_lr_fn``: ``None`` / ``'original'`` —
Keller Jordan's max(1, A/B)^½; ``'match_rms_adamw'`` — 0.2·√max(A, B), which matches AdamW's update
RMS (Liu et al., 2025, "Muon is Scalable for LLM Training", arXiv 2502.16982). torch decays the
weights with the unadjusted η. O_k does not change when G is multiplied by c > 0, so Muon is scale
invariant — to float32 rounding with the float32 NS5, to bfloat16 rounding (exact only for powers of two)
with torch's.

Roles decide what Muon sees: ``hidden`` weights of two or more dimensions. A conv filter
(out, in, kh, kw) is orthogonalised as the matrix (out, in·kh·kw), so s uses that shape — 1 for
nearly every conv, as in Keller Jordan's current code. As in his reference the first layer
(``input``), the head (``output``) and every ``vector`` go to AdamW (Loshchilov & Hutter, 2019)
with their own lr and betas (0.9, 0.95).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gsibench.core.params import ParamInfo
from gsibench.optimizers.orthogonalize import newton_schulz5
from gsibench.optimizers.registry import OptimizerEntry, add
from gsibench.optimizers.validation import require_nonnegative, require_positive, require_range

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
NS_DTYPES = ("auto", "float32", "bfloat16")


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """η·s(A, B) for a matrix of ``shape`` (A, B): torch.optim.Muon's lr adjustment."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1.0, rows / cols))


class Float32Muon(torch.optim.Muon):
    """``torch.optim.Muon`` with Newton–Schulz in float32: the same state (``momentum_buffer``), momentum,
    Nesterov, lr adjustment and decoupled weight decay, step for step."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
                buffer = state["momentum_buffer"]
                buffer.lerp_(grad, 1 - momentum)
                update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
                update = newton_schulz5(update, group["ns_steps"], group["eps"], group["ns_coefficients"])
                param.mul_(1 - lr * group["weight_decay"])
                param.add_(update, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], param.shape))
        return loss


class _Matrix:
    """A hidden weight as the 2-D matrix Muon needs: itself, or (out, in·k·k) for a conv filter.

    For a contiguous filter the matrix is a view of the same storage, so Muon's in-place update
    lands in the filter. Otherwise (a channels-last filter, a replaced ``.data``) the values are
    copied in before the step and back after it.
    """

    def __init__(self, weight: Tensor):
        self.weight = weight
        self.matrix = weight if weight.ndim == 2 else nn.Parameter(weight.detach().reshape(len(weight), -1))

    def _shares_storage(self) -> bool:
        return self.weight.is_contiguous() and self.matrix.data_ptr() == self.weight.data_ptr()

    def load_grad(self) -> None:
        if self.matrix is self.weight:
            return
        if self.weight.grad is None:
            self.matrix.grad = None
            return
        if not self._shares_storage():
            self.matrix.copy_(self.weight.reshape(self.matrix.shape))
        self.matrix.grad = self.weight.grad.reshape(self.matrix.shape)

    def store(self) -> None:
        if self.matrix is self.weight:
            return
        if not self._shares_storage():
            self.weight.copy_(self.matrix.view(self.weight.shape))
        self.matrix.grad = None


class _InnerState(Mapping):
    """``state[p]``: the inner optimizer's state of ``p`` (for a conv filter, of its matrix)."""

    def __init__(self, sources: dict[Tensor, tuple[Mapping, Tensor]]):
        self._sources = sources

    def __getitem__(self, param: Tensor) -> dict:
        state, key = self._sources[param]
        if key not in state:
            raise KeyError(param)
        return state[key]

    def __iter__(self) -> Iterator[Tensor]:
        return (param for param, (state, key) in self._sources.items() if key in state)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class MuonWithAuxAdamW(torch.optim.Optimizer):
    """``torch.optim.Muon`` over ``matrices`` and ``torch.optim.AdamW`` over ``others``, as one optimizer.

    ``param_groups`` are the wrapper's own, holding the model's tensors as they are (conv filters
    unflattened): first the Muon group, then the AdamW group (a group is left out when it has no
    tensors). Before each step every hyperparameter of a group is copied into the inner
    optimizer's group, so a schedule that writes ``group['lr']`` works as with any optimizer.
    ``state[p]`` reads the inner optimizer's state (``momentum_buffer``; ``exp_avg``, ``exp_avg_sq``, ``step``).
    """

    def __init__(
        self,
        matrices: Sequence[Tensor],
        others: Sequence[Tensor],
        muon_options: dict[str, Any],
        adamw_options: dict[str, Any],
        ns_dtype: str = "auto",
    ):
        self._matrices = [_Matrix(w) for w in matrices]
        self._inner: list[torch.optim.Optimizer] = []
        groups, sources = [], {}
        if self._matrices:
            on_cuda = self._matrices[0].matrix.device.type == "cuda"
            bfloat16 = ns_dtype == "bfloat16" or (ns_dtype == "auto" and on_cuda)
            muon = (torch.optim.Muon if bfloat16 else Float32Muon)([m.matrix for m in self._matrices], **muon_options)
            self._inner.append(muon)
            groups.append({**muon.param_groups[0], "params": list(matrices)})
            sources.update({m.weight: (muon.state, m.matrix) for m in self._matrices})
        if others:
            adamw = torch.optim.AdamW(list(others), foreach=True, **adamw_options)
            self._inner.append(adamw)
            groups.append({**adamw.param_groups[0], "params": list(others)})
            sources.update({p: (adamw.state, p) for p in others})
        super().__init__(groups, {})
        self.state = _InnerState(sources)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, inner in zip(self.param_groups, self._inner):
            inner_group = inner.param_groups[0]
            inner_group.update({key: group[key] for key in inner_group if key != "params"})
        for matrix in self._matrices:
            matrix.load_grad()
        for inner in self._inner:
            inner.step()
        for matrix in self._matrices:
            matrix.store()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "inner": [inner.state_dict() for inner in self._inner],
            "param_groups": [{k: v for k, v in group.items() if k != "params"} for group in self.param_groups],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for inner, saved in zip(self._inner, state_dict["inner"], strict=True):
            inner.load_state_dict(saved)
        for group, saved in zip(self.param_groups, state_dict["param_groups"], strict=True):
            group.update(saved)


def _check(hparams: dict) -> None:
    require_range(hparams, "momentum", 0.0, 1.0)
    require_range(hparams, "adam_beta1", 0.0, 1.0)
    require_range(hparams, "adam_beta2", 0.0, 1.0)
    require_positive(hparams, "adam_lr")
    require_nonnegative(hparams, "weight_decay", "adam_eps", "adam_weight_decay")
    if not isinstance(hparams["nesterov"], bool):
        raise TypeError(f"nesterov must be true or false, got {hparams['nesterov']!r}")
    steps = hparams["ns_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps < 100:
        raise ValueError(f"ns_steps must be an integer in [1, 100), got {steps!r}")
    if hparams["ns_dtype"] not in NS_DTYPES:
        raise ValueError(f"ns_dtype must be one of {NS_DTYPES}, got {hparams['ns_dtype']!r}")
    if hparams["adjust_lr_fn"] not in ADJUST_LR_FNS:
        raise ValueError(f"adjust_lr_fn must be one of {ADJUST_LR_FNS}, got {hparams['adjust_lr_fn']!r}")


def muon(
    params: list[ParamInfo],
    lr: float,
    momentum: float,
    nesterov: bool,
    ns_steps: int,
    weight_decay: float,
    adjust_lr_fn: str | None,
    adam_lr: float,
    adam_beta1: float,
    adam_beta2: float,
    adam_eps: float,
    adam_weight_decay: float,
    ns_dtype: str,
) -> MuonWithAuxAdamW:
    on_muon = [p.role == "hidden" and p.tensor.ndim >= 2 for p in params]
    return MuonWithAuxAdamW(
        [p.tensor for p, m in zip(params, on_muon) if m],
        [p.tensor for p, m in zip(params, on_muon) if not m],
        {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
         "weight_decay": weight_decay, "adjust_lr_fn": adjust_lr_fn},
        {"lr": adam_lr, "betas": (adam_beta1, adam_beta2), "eps": adam_eps, "weight_decay": adam_weight_decay},
        ns_dtype,
    )


add(OptimizerEntry(
    "muon", "Muon (Jordan et al. 2024) on hidden matrices and flattened convs, AdamW on the rest", muon,
    {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5, "weight_decay": 0.0, "adjust_lr_fn": None,
     "adam_lr": 3e-4, "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_eps": 1e-8, "adam_weight_decay": 0.0,
     "ns_dtype": "auto"},
    _check,
))
