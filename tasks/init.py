"""Weight initializations selectable with a task's ``init`` option.

``default`` keeps the model's own initialization. ``sinusoidal`` is the deterministic scheme every
run of arXiv 2601.21739 uses (introduced by Fernández-Hernández et al., arXiv 2505.12909; we follow
the authors' ``code/utils/models/sinusoidal.py`` in github.com/AlbertoFdezHdez/Adam_equal_betas).
Each output neuron i gets its own sine wave over its flattened inputs j::

    S[i, j] = sin((i + 1)(2πj / fan_in + 2π / n_out)),     W = A·S,     A = √2 / √(var(S)·fan_in),

where a convolution weight is viewed as (n_out, fan_in) with fan_in = n_in·k·k and var is the unbiased
variance of the raw sine matrix S. The result has the standard deviation √(2 / fan_in) of He (Kaiming)
initialization, with no randomness at all: every seed starts from the same weights. Biases of the
initialized layers become zero; embeddings and normalization layers keep their initialization.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gsibench.core.errors import unknown_name

INITS = ("default", "sinusoidal")
_SINUSOIDAL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def sinusoidal_matrix(n_out: int, fan_in: int) -> torch.Tensor:
    """The raw sine pattern S (float64, shape (n_out, fan_in)), before scaling."""
    position = torch.arange(fan_in, dtype=torch.float64) * (2 * math.pi / fan_in) + 2 * math.pi / n_out
    neuron = torch.arange(1, n_out + 1, dtype=torch.float64)
    return torch.sin(neuron[:, None] * position[None, :])


@torch.no_grad()
def sinusoidal_(weight: torch.Tensor) -> torch.Tensor:
    """Fill a Linear or Conv weight in place with the scaled sine pattern; returns ``weight``.

    For tiny shapes where the pattern vanishes identically (e.g. 1×2), the weight is left as it is.
    """
    n_out, fan_in = weight.shape[0], weight[0].numel()
    pattern = sinusoidal_matrix(n_out, fan_in)
    variance = float(pattern.var()) if pattern.numel() > 1 else 0.0
    if not variance > 1e-12:
        return weight
    amplitude = math.sqrt(2.0) / math.sqrt(variance * fan_in)
    weight.copy_((amplitude * pattern).reshape(weight.shape).to(weight.dtype))
    return weight


def initialize(model: nn.Module, init: str) -> None:
    """Re-initialize ``model`` in place with the named scheme (see the module docstring)."""
    if init not in INITS:
        raise unknown_name("init", init, INITS)
    if init == "default":
        return
    for module in model.modules():
        if isinstance(module, _SINUSOIDAL_LAYERS):
            sinusoidal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
