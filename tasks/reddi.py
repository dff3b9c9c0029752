"""The online convex counterexample of Reddi, Kale & Kumar (ICLR 2018), on which Adam fails.

One scalar x ∈ [−1, 1] (role ``vector``), starting at x = 0, and a linear loss per step:

* ``kind="stochastic"`` (default; the version used in replications):
  f_k(x) = 1010·x with probability 0.01, else −10·x, drawn from ``step_generator(seed, k)``.
  E f_k(x) = 0.2·x, so the optimum is x* = −1.
* ``kind="cyclic"``: f_k(x) = C·x if k mod 3 = 1, else −x, with C > 2 (default 3); each cycle of
  three sums to (C − 2)·x, so again x* = −1. Reddi et al. prove that Adam does not converge to x*
  when β2 ≤ min{C^(−4/(C−2)), 1 − (9/(2C))²} (any β1 < √β2; the bound needs C > 4.5), and for
  β1 = 0, β2 = 1/(1 + C²) at any C > 2 (their Theorem 1; 0.1 at the default C = 3).

Adam with a small β2 normalizes away the rare large gradient and follows the frequent small ones to
x = +1. The feasible set is enforced by projection after every optimizer step: the problem overrides
:meth:`~gsibench.tasks.base.Problem.after_step`, which the runner calls right after
``optimizer.step()``. (Reddi et al. project in the √v̂-weighted norm; in one dimension every such
projection is the same clamp to [−1, 1].)

Score: ``distance_to_optimum`` = x_T − x* = x_T + 1 ∈ [0, 2], lower is better. For linear losses it
is the online regret rate: the expected regret per step at x is 0.2·(x + 1) (stochastic) and
(C − 2)/3·(x + 1) (cyclic), so the final distance tells converged (≈ 0) from failed (≈ 2).
"""

from __future__ import annotations

import torch
from torch import nn

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo
from gsibench.tasks.base import Problem, Score, Task, step_generator
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

KINDS = ("stochastic", "cyclic")
RARE_SLOPE, COMMON_SLOPE, RARE_PROBABILITY = 1010.0, -10.0, 0.01


class ReddiProblem(Problem):
    def __init__(self, seed: int, device: torch.device, kind: str, C: float):
        self.x = nn.Parameter(torch.zeros(1, device=device))
        self.params = [ParamInfo("x", self.x, "vector")]
        self.seed, self.kind, self.C = seed, kind, C

    def slope(self, step: int) -> float:
        """The gradient of f_step, the same for every x."""
        if self.kind == "cyclic":
            return self.C if step % 3 == 1 else -1.0
        rare = float(torch.rand(1, generator=step_generator(self.seed, step))) < RARE_PROBABILITY
        return RARE_SLOPE if rare else COMMON_SLOPE

    def loss(self, step: int) -> torch.Tensor:
        return self.slope(step) * self.x.sum()

    @torch.no_grad()
    def after_step(self) -> None:
        """Project x back onto [−1, 1]; the runner calls this after each ``optimizer.step()``."""
        self.x.clamp_(-1.0, 1.0)

    @torch.no_grad()
    def evaluate(self) -> float:
        return float(self.x.sum()) + 1.0


@register
class Reddi(Task):
    name = "reddi"
    description = "Reddi et al. 2018 online counterexample on x in [-1,1] (stochastic 1010x / -10x or cyclic)"
    default_steps = 2000
    score = Score("distance_to_optimum", higher_is_better=False)
    step_seconds = 0.05
    options = {"kind": Option("stochastic", choices=KINDS), "C": Option(3.0, low=-1e6, high=1e6)}

    def check_options(self, options: dict) -> None:
        if options["kind"] == "cyclic" and not options["C"] > 2:
            raise UsageError(f"reddi[kind=cyclic] needs C > 2 (else x = −1 is not the optimum), got {options['C']!r}")

    def build(self, seed: int, device: torch.device, kind: str = "stochastic", C: float = 3.0) -> Problem:
        self.check_options({"kind": kind, "C": C})
        return ReddiProblem(seed, device, kind, float(C))
