"""The gradient oracle of arXiv 2601.21739, Figures 1–2: no model, a prescribed gradient sequence.

The gradient at step k is the unit direction

    d_k = [10, −8 + sin(ρk/10), 9 + cos(ρk/10)],     g_k = d_k / ‖d_k‖,

fed to the optimizer through the linear loss ⟨g_k, θ⟩ (whose gradient is exactly g_k). ρ = 1 (the
default, option ``rotation``) is the paper's slowly turning direction; ρ = 0 holds it fixed at
d = [10, −8, 10]. The paper's scale bumps s(k), and any other rescaling, come from the battery's
perturbation, so ‖R_k‖ under s ≡ 1 is the clean twin and the deviation from it measures the
optimizer's scale sensitivity.

``dtype='float64'`` keeps θ in double precision. In float32 the measured ‖R_k‖ = ‖θ_k − θ_{k+1}‖/η
carries a rounding error of about ulp(θ_k)/η, and θ grows by about η per step, so the error grows like
k·2^-23: 5e-4 after 4,000 steps, more than the second-order deviations a long run is meant to measure.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo
from gsibench.tasks.base import Problem, Task
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def oracle_direction(step: int, rotation: float = 1.0) -> list[float]:
    """d_k / ‖d_k‖ for the paper's d_k, its angle turning ``rotation`` times as fast."""
    angle = rotation * step / 10
    d = [10.0, -8.0 + math.sin(angle), 9.0 + math.cos(angle)]
    norm = math.sqrt(sum(x * x for x in d))
    return [x / norm for x in d]


class OracleProblem(Problem):
    def __init__(self, device: torch.device, rotation: float = 1.0, dtype: torch.dtype = torch.float32):
        self.theta = nn.Parameter(torch.zeros(3, device=device, dtype=dtype))
        self.params = [ParamInfo("theta", self.theta, "vector")]
        self.rotation = rotation

    def loss(self, step: int) -> torch.Tensor:
        direction = torch.tensor(oracle_direction(step, self.rotation), device=self.theta.device,
                                 dtype=self.theta.dtype)
        return torch.dot(direction, self.theta)


@register
class Oracle(Task):
    name = "oracle"
    description = "prescribed gradient sequence of arXiv 2601.21739 Figs. 1-2 (no model, 3 parameters)"
    default_steps = 601
    options = {"rotation": Option(1.0, low=-1e3, high=1e3), "dtype": Option("float32", choices=tuple(DTYPES))}
    step_seconds = 0.05

    def build(self, seed: int, device: torch.device, rotation: float = 1.0, dtype: str = "float32") -> Problem:
        if isinstance(rotation, bool) or not isinstance(rotation, (int, float)) or not math.isfinite(rotation):
            raise UsageError(f"oracle: rotation must be a number (1 = the paper's, 0 = fixed), got {rotation!r}")
        if dtype not in DTYPES:
            raise UsageError(f"oracle: dtype must be float32 or float64, got {dtype!r}")
        return OracleProblem(device, float(rotation), DTYPES[dtype])
