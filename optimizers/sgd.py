"""Reference baselines: SGD (scale-equivariant) and sign-SGD (exactly scale-invariant).

SGD: ``θ ← θ − η g`` (optionally heavy-ball momentum), so ‖R_k‖ = ‖g_k‖ follows any rescaling
exactly — the control that shows a perturbation took effect.

Sign-SGD / Signum (Bernstein et al., 2018, arXiv 1802.04434)::

    m_k = μ m_{k-1} + (1 − μ) g_k        θ_{k+1} = θ_k − η · sign(m_k)     (μ = 0: sign(g_k))

Multiplying every gradient by c > 0 multiplies m_k by c and leaves sign(m_k) unchanged: the update
is exactly invariant to any positive gradient scale, constant or not.
"""

from __future__ import annotations

import torch

from gsibench.core.params import ParamInfo, tensors
from gsibench.optimizers.registry import OptimizerEntry, add
from gsibench.optimizers.validation import require_nonnegative, require_range


class SignSGD(torch.optim.Optimizer):
    """Signum: θ ← θ − lr·sign(m), m ← μ m + (1 − μ) g; state ``momentum_buffer`` per parameter."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum: {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["momentum"] > 0:
                buffers = []
                for p in params:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buffers.append(state["momentum_buffer"])
                torch._foreach_lerp_(buffers, grads, 1.0 - group["momentum"])
                directions = torch._foreach_sign(buffers)
            else:
                directions = torch._foreach_sign(grads)
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            torch._foreach_add_(params, directions, alpha=-group["lr"])
        return loss


def _check(hparams: dict) -> None:
    require_range(hparams, "momentum", 0.0, 1.0)
    require_nonnegative(hparams, "weight_decay")


def sgd(params: list[ParamInfo], lr: float, momentum: float, weight_decay: float):
    return torch.optim.SGD(tensors(params), lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)


def signsgd(params: list[ParamInfo], lr: float, momentum: float, weight_decay: float):
    return SignSGD(tensors(params), lr=lr, momentum=momentum, weight_decay=weight_decay)


add(OptimizerEntry(
    "sgd", "SGD baseline: the update follows the gradient scale exactly", sgd,
    dict(lr=1e-2, momentum=0.0, weight_decay=0.0), _check, scale_invariant=False,
))
add(OptimizerEntry(
    "signsgd", "sign-SGD / Signum (Bernstein et al. 2018): exactly scale invariant", signsgd,
    dict(lr=1e-3, momentum=0.0, weight_decay=0.0), _check,
))
