"""Adam, balanced Adam (β1 = β2) and AdamW.

Adam (Kingma & Ba, 2015), as in ``torch.optim.Adam`` with bias correction::

    m_k = β1 m_{k-1} + (1 − β1) g_k          v_k = β2 v_{k-1} + (1 − β2) g_k²
    θ_{k+1} = θ_k − η · m̂_k / (√v̂_k + ε)     m̂_k = m_k / (1 − β1^k),  v̂_k = v_k / (1 − β2^k)

*Balanced* Adam ties β1 = β2 = β. arXiv 2601.21739 shows that this choice, and only this one, makes
the normalized update first-order invariant to a drifting gradient scale: in continuous time the
update is a sign term plus (τ2 − τ1)·d/dt log|g| plus second-order terms, so the drift term vanishes
iff τ1 = τ2. Orvieto & Gower (arXiv 2505.21829) find β1 = β2 near-optimal across 1,300 language models.

AdamW (Loshchilov & Hutter, 2019) decouples weight decay: θ ← θ(1 − ηλ) before the Adam step.
All three use the multi-tensor (``foreach``) implementation explicitly; their state is torch's own
(``exp_avg``, ``exp_avg_sq``, ``step`` per parameter).
"""

from __future__ import annotations

import torch

from gsibench.core.params import ParamInfo, tensors
from gsibench.optimizers.registry import OptimizerEntry, add
from gsibench.optimizers.validation import require_nonnegative, require_range


def _check_adam(hparams: dict) -> None:
    for key in ("beta1", "beta2", "beta"):
        if key in hparams:
            require_range(hparams, key, 0.0, 1.0)
    require_nonnegative(hparams, "eps", "weight_decay")


def adam(params: list[ParamInfo], lr: float, beta1: float, beta2: float, eps: float, weight_decay: float):
    return torch.optim.Adam(
        tensors(params), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, foreach=True
    )


def adam_balanced(params: list[ParamInfo], lr: float, beta: float, eps: float, weight_decay: float):
    return adam(params, lr=lr, beta1=beta, beta2=beta, eps=eps, weight_decay=weight_decay)


def adamw(params: list[ParamInfo], lr: float, beta1: float, beta2: float, eps: float, weight_decay: float):
    return torch.optim.AdamW(
        tensors(params), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, foreach=True
    )


add(OptimizerEntry(
    "adam", "Adam (Kingma & Ba 2015), β1=0.9, β2=0.999, bias-corrected", adam,
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0), _check_adam,
))
add(OptimizerEntry(
    "adam-balanced", "Adam with β1 = β2 = beta (arXiv 2601.21739), first-order scale invariant", adam_balanced,
    dict(lr=1e-3, beta=0.95, eps=1e-8, weight_decay=0.0), _check_adam,
))
add(OptimizerEntry(
    "adamw", "AdamW (Loshchilov & Hutter 2019), decoupled weight decay", adamw,
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01), _check_adam,
))
