"""The gradient oracle of arXiv 2601.21739, Figures 1–2: no model, a prescribed gradient sequence.

The gradient at step k is the unit direction

    d_k = [10, −8 + sin(k/10), 9 + cos(k/10)],     g_k = d_k / ‖d_k‖,

fed to the optimizer through the linear loss ⟨g_k, θ⟩ (whose gradient is exactly g_k). The paper's
scale bumps s(k), and any other rescaling, come from the battery's perturbation, so ‖R_k‖ under
s ≡ 1 is the clean twin and the deviation from it measures the optimizer's scale sensitivity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gsibench.core.params import ParamInfo
from gsibench.tasks.base import Problem, Task
from gsibench.tasks.registry import register


def oracle_direction(step: int) -> list[float]:
    """d_k / ‖d_k‖ for the paper's d_k."""
    d = [10.0, -8.0 + math.sin(step / 10), 9.0 + math.cos(step / 10)]
    norm = math.sqrt(sum(x * x for x in d))
    return [x / norm for x in d]


class OracleProblem(Problem):
    def __init__(self, device: torch.device):
        self.theta = nn.Parameter(torch.zeros(3, device=device))
        self.params = [ParamInfo("theta", self.theta, "vector")]

    def loss(self, step: int) -> torch.Tensor:
        direction = torch.tensor(oracle_direction(step), device=self.theta.device)
        return torch.dot(direction, self.theta)


@register
class Oracle(Task):
    name = "oracle"
    description = "prescribed gradient sequence of arXiv 2601.21739 Figs. 1-2 (no model, 3 parameters)"
    default_steps = 601
    step_seconds = 0.05

    def build(self, seed: int, device: torch.device) -> Problem:
        return OracleProblem(device)
