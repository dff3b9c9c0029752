"""An ill-conditioned noisy quadratic with a known optimum.

The parameter is a matrix W ∈ R^{rows×cols} (role ``hidden``, so matrix optimizers act on it)::

    f(W) = ½ Σ_ij h_i (W_ij − W*_ij)²,     h_i log-spaced in [1, κ],

and the stochastic gradient at step k adds σ·ξ_k with ξ_k ~ N(0, I) drawn from (seed, step), i.e.
the step loss is f(W) + σ⟨ξ_k, W⟩. W starts at 0 and W* ~ N(0, s²) with s = ``optimum_scale``.
The score is the suboptimality f(W) − f(W*) = f(W) (lower is better): how well an optimizer
copes with curvature spread, noise and rescaling.
"""

from __future__ import annotations

import torch
from torch import nn

from gsibench.core.params import ParamInfo
from gsibench.tasks.base import Problem, Score, Task, step_generator
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register


class QuadraticProblem(Problem):
    def __init__(self, seed: int, device: torch.device, rows: int, cols: int, condition: float, noise: float,
                 optimum_scale: float):
        generator = torch.Generator().manual_seed(seed)
        self.optimum = (optimum_scale * torch.randn(rows, cols, generator=generator)).to(device)
        self.curvature = torch.logspace(0, torch.log10(torch.tensor(float(condition))), rows).to(device)
        self.weight = nn.Parameter(torch.zeros(rows, cols, device=device))
        self.params = [ParamInfo("weight", self.weight, "hidden")]
        self.seed, self.noise = seed, noise

    def objective(self) -> torch.Tensor:
        return 0.5 * (self.curvature[:, None] * (self.weight - self.optimum) ** 2).sum()

    def loss(self, step: int) -> torch.Tensor:
        value = self.objective()
        if self.noise:
            xi = torch.randn(self.weight.shape, generator=step_generator(self.seed, step)).to(self.weight.device)
            value = value + self.noise * (xi * self.weight).sum()
        return value

    @torch.no_grad()
    def evaluate(self) -> float:
        return float(self.objective())


@register
class Quadratic(Task):
    name = "quadratic"
    description = "noisy ill-conditioned quadratic on a 16x16 matrix (condition 100), known optimum"
    default_steps = 300
    score = Score("suboptimality", higher_is_better=False)
    loss_bound = 1e8
    step_seconds = 0.05
    options = {"rows": Option(16, low=1, high=4096), "cols": Option(16, low=1, high=4096),
               "condition": Option(100.0, low=1.0, high=1e12), "noise": Option(1.0, low=0.0, high=1e6),
               "optimum_scale": Option(0.1, low=0.0, high=1e6)}

    def build(self, seed, device, rows=16, cols=16, condition=100.0, noise=1.0, optimum_scale=0.1) -> Problem:
        return QuadraticProblem(seed, device, rows, cols, condition, noise, optimum_scale)
