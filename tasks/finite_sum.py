"""A finite-sum problem with Adam's (β1, β2) phase transition (Zhang et al., NeurIPS 2022, arXiv 2208.09632).

One unconstrained scalar x ∈ R (role ``vector``), starting at x₀ = 0, and n components::

    f_0(x) = n·x + ½·relu(−1 − x)²          (one component with a large slope)
    f_i(x) = −x  + ½·relu(−1 − x)²          (i = 1 … n−1: a small opposite slope)
    f(x)   = Σ_i f_i(x) = x + (n/2)·relu(−1 − x)²

Every component is convex with a 1-Lipschitz gradient, and f is bounded below: its minimum is
f* = −1 − 1/(2n) at x* = −1 − 1/n. The full gradient (+1 for x ≥ −1) always points to x*, but n−1 of
the n component gradients point the other way. Step k trains on one component, the loss f_{i_k}(x):
``sampling="shuffle"`` visits the n components in a fresh random order each epoch (random reshuffling,
Zhang et al.'s setting); ``sampling="replacement"`` draws i_k uniformly. Both are fixed by the seed.

Why it splits the (β1, β2) plane: with a small β2, v̂ follows the latest g², so Adam moves about
η·sign(g) per step: n−1 steps towards +∞ and one step of roughly η/√(1−β2) back per epoch, which
drifts to +∞ when n − 1 > 1/√(1−β2), i.e. β2 < 1 − 1/(n−1)² for β1 = 0: a threshold that rises to 1 as
n grows. With β2 → 1, v̂ ≈ mean g² ≈ n and an epoch moves x by −η/√n: Adam converges. Momentum
averages the components and shrinks the diverging region. Numerical check (``torch.optim.Adam``,
lr 0.1, 2,000 steps, random reshuffling, seeds 0 and 1) on the grid β1 ∈ {0, .5, .9, .95, .99} ×
β2 ∈ {.5, .9, .95, .99, .995, .999, .9999}: both seeds diverge (criterion below) in 2 cells for n = 5,
7 for n = 10 and 15 for n = 20; every cell with β2 ≥ 0.999 (so β1 < √β2) ends below its starting
objective, and (0.9, 0.999) ends within 0.6 of f* for all three n.

Use ``sampling="shuffle"`` for a phase map. With replacement the number of draws of f_0 fluctuates,
and the summed gradient has signal T/n against noise ≈ n·√(T/n): its sign is only reliable for
T ≫ n³ steps (at T = 2,000 even (0.9, 0.999) ends above x₀ for n = 10 and 20 in both seeds).

Score: the suboptimality f(x_T) − f* (lower is better). **Divergence criterion** for a phase map:
a run diverges when the runner flags it (a non-finite loss or a loss above ``loss_bound``) *or* when
it ends worse than it started, f(x_T) − f* > f(x₀) − f* (the ``initial_suboptimality`` attribute
of the problem, 1 + 1/(2n), also in ``problem.info``). Drifting to +∞ is linear in the step count,
so at any lr the final gap of a diverging run grows past the initial one, while a converging run
moves towards x* from the first epoch. Adam at lr 0.1 over the default 2,000 steps reproduces the
numbers above; a smaller lr shrinks both margins in proportion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsibench.core.params import ParamInfo
from gsibench.tasks.base import EpochSampler, Problem, Score, Task, step_generator
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

SAMPLINGS = ("shuffle", "replacement")
START = 0.0


def objective(x: torch.Tensor, n: int) -> torch.Tensor:
    """f(x) = Σ_i f_i(x) = x + (n/2)·relu(−1 − x)²."""
    return x + 0.5 * n * F.relu(-1.0 - x) ** 2


def component_loss(x: torch.Tensor, i: int, n: int) -> torch.Tensor:
    """f_i(x): slope n for i = 0, slope −1 otherwise, plus the shared wall ½·relu(−1 − x)²."""
    slope = float(n) if i == 0 else -1.0
    return slope * x + 0.5 * F.relu(-1.0 - x) ** 2


def optimal_value(n: int) -> float:
    """f* = f(−1 − 1/n) = −1 − 1/(2n)."""
    return -1.0 - 0.5 / n


class FiniteSumProblem(Problem):
    def __init__(self, seed: int, device: torch.device, n: int, sampling: str):
        self.x = nn.Parameter(torch.full((1,), START, device=device))
        self.params = [ParamInfo("x", self.x, "vector")]
        self.seed, self.n, self.sampling = seed, n, sampling
        self.sampler = EpochSampler(n, 1, seed) if sampling == "shuffle" else None
        self.initial_suboptimality = float(objective(torch.tensor(START), n)) - optimal_value(n)
        self.info = {"initial_suboptimality": repr(self.initial_suboptimality)}

    def component(self, step: int) -> int:
        """The index i_k of the component trained at ``step``."""
        if self.sampler is not None:
            return int(self.sampler.indices(step)[0])
        return int(torch.randint(self.n, (1,), generator=step_generator(self.seed, step)))

    def loss(self, step: int) -> torch.Tensor:
        return component_loss(self.x.sum(), self.component(step), self.n)

    @torch.no_grad()
    def evaluate(self) -> float:
        return float(objective(self.x.sum(), self.n)) - optimal_value(self.n)


@register
class FiniteSum(Task):
    name = "finite-sum"
    description = "Zhang et al. 2022 finite sum: 1 component of slope n, n-1 of slope -1; Adam's phase map"
    default_steps = 2000
    score = Score("suboptimality", higher_is_better=False)
    loss_bound = 1e6
    step_seconds = 0.05
    options = {"n": Option(10, low=2, high=1_000_000), "sampling": Option("shuffle", choices=SAMPLINGS)}

    def build(self, seed: int, device: torch.device, n: int = 10, sampling: str = "shuffle") -> Problem:
        self.resolve_options({"n": n, "sampling": sampling})
        return FiniteSumProblem(seed, device, n, sampling)
