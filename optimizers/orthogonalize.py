"""Newton–Schulz orthogonalisation, the kernel Muon and Scion share.

NS5 is five steps of the Muon quintic (Jordan et al., 2024) on X_0 = G/‖G‖_F (transposed so that the
rows are the shorter side)::

    X ← a X + (b X Xᵀ + c (X Xᵀ)²) X,     (a, b, c) = (3.4445, −4.7750, 2.0315),

which maps G = U S Vᵀ to about U S' Vᵀ with S' in roughly [0.5, 1.5]. The operations are those of
``torch.optim.Muon`` (``torch/optim/_muon.py``, two ``addmm`` per step), in the same order, in a
chosen dtype: torch runs them in bfloat16, native on CUDA; on a CPU bfloat16 matmuls are emulated
(10–30× slower than float32 here) and round 1000·G unlike G, so CPU runs use float32. With the same
dtype the result is bit-for-bit torch's (tests/optimizers/test_muon.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
EPS = 1e-7
"""Lower clamp of ‖G‖_F (torch.optim.Muon's default): G = 0 stays 0 instead of becoming NaN."""


def newton_schulz5(g: Tensor, steps: int = 5, eps: float = EPS, coefficients: tuple[float, float, float] =
                   NS_COEFFICIENTS, dtype: torch.dtype = torch.float32) -> Tensor:
    """≈ U Vᵀ for the matrix g = U S Vᵀ, computed in ``dtype`` and returned in ``dtype``."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x.div(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x
