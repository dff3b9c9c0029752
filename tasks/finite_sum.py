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
η·sign(g) per step: n−1 steps towards +∞ and one step back that is larger by a factor that grows as β2
falls towards 0 and shrinks as β2 rises; for large n the n − 1 small steps win and x drifts to +∞, so
the critical β2 rises towards 1 as n grows. With β2 → 1, v̂ ≈ mean g² ≈ n and an epoch moves x by
−η/√n: Adam converges. Momentum averages the components and shrinks the diverging region.

Use ``sampling="shuffle"`` for a phase map. With replacement the number of draws of f_0 fluctuates,
and the summed gradient has signal T/n against noise ≈ n·√(T/n): its sign is only reliable for
T ≫ n³ steps.

Score: the suboptimality f(x_T) − f* (lower is better); ``initial_suboptimality`` (also in
``problem.info``) is f(x₀) − f* = 1 + 1/(2n). Whether a run *diverged* is the phase map's business
(:mod:`gsibench.reproductions.phase`: by default, x still rising over the second half of the run);
the runner flags only non-finite values and losses above ``loss_bound``. :func:`position_from_loss`
recovers x_k from the loss of step k, so that a criterion on x works on runner cells too.
"""

from __future__ import annotations

import numpy as np
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


def position_from_loss(loss: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """x_k from the loss f_{i_k}(x_k) of step k and the slope s of that step's component (n or −1).

    For x ≥ −1 the loss is s·x; below the wall it is s·x + ½u² with u = −1 − x > 0, so
    u = s − sign(s)·√(s² + 2(s + loss)): the positive root for s = −1, the root below n for s = n (f_0 is
    monotone for x > −1 − n, where the inversion is unique). ``loss`` and x are float32 in training, so x
    comes back to float32 precision."""
    loss, slopes = np.asarray(loss, dtype=np.float64), np.asarray(slopes, dtype=np.float64)
    above = loss / slopes
    depth = slopes - np.sign(slopes) * np.sqrt(np.maximum(slopes**2 + 2 * (slopes + loss), 0.0))
    return np.where(above >= -1.0, above, -1.0 - depth)


class FiniteSumProblem(Problem):
    def __init__(self, seed: int, device: torch.device, n: int, sampling: str):
        self.x = nn.Parameter(torch.full((1,), START, device=device))
        self.params = [ParamInfo("x", self.x, "vector")]
        self.seed, self.n, self.sampling = seed, n, sampling
        self.sampler = EpochSampler(n, 1, seed) if sampling == "shuffle" else None
        self.initial_suboptimality = float(objective(torch.tensor(START), n)) - optimal_value(n)
        self.info = {"initial_suboptimality": repr(self.initial_suboptimality)}

    def slope(self, step: int) -> float:
        """The slope of the component trained at ``step``: n for f_0, −1 for the others."""
        return float(self.n) if self.component(step) == 0 else -1.0

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
