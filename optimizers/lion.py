"""Lion: evolved sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms",
arXiv 2302.06675), as implemented by ``lion_pytorch.Lion`` (PyPI lion-pytorch)::

    u_k     = sign(β1 m_{k-1} + (1 − β1) g_k)
    θ_{k+1} = θ_k (1 − η λ) − η u_k
    m_k     = β2 m_{k-1} + (1 − β2) g_k

The update is a sign, so multiplying every gradient by c > 0 multiplies the interpolation by c and
leaves u_k unchanged: Lion is exactly scale invariant, with no ε to break it. The authors advise an
lr 3–10× smaller than AdamW's and a weight decay 3–10× larger. The weight decay is the library's
default, coupled to the learning rate (θ ← θ(1 − ηλ)). The Triton kernel is never used, so runs
are the same on every machine; the state is ``exp_avg`` (m) per parameter.
"""

from __future__ import annotations

from lion_pytorch import Lion

from gsibench.core.params import ParamInfo, tensors
from gsibench.optimizers.registry import OptimizerEntry, add
from gsibench.optimizers.validation import require_nonnegative, require_range


def _check(hparams: dict) -> None:
    require_range(hparams, "beta1", 0.0, 1.0)
    require_range(hparams, "beta2", 0.0, 1.0)
    require_nonnegative(hparams, "weight_decay")


def lion(params: list[ParamInfo], lr: float, beta1: float, beta2: float, weight_decay: float) -> Lion:
    return Lion(tensors(params), lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, use_triton=False)


add(OptimizerEntry(
    "lion", "Lion (Chen et al. 2023): sign of interpolated momentum, exactly scale invariant", lion,
    {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0}, _check,
))
