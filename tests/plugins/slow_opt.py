"""A slow optimizer for the kill and server-loss tests: a battery must take long enough to be
interrupted mid-way."""

import time

import torch


class SlowSGD(torch.optim.SGD):
    """SGD that sleeps 4 ms a step."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)

    def step(self, closure=None):
        time.sleep(0.004)
        return super().step(closure)
