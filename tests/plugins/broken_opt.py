"""Test plugins: optimizers that misbehave in controlled ways."""

import torch


class ExplodingOptimizer(torch.optim.SGD):
    """Raises inside step() after a few steps, like a buggy user optimizer."""

    def __init__(self, params, lr: float = 0.1, fail_at: int = 3):
        super().__init__(params, lr=lr)
        self.fail_at, self.calls = fail_at, 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom: user optimizer bug")
        return super().step(closure)
