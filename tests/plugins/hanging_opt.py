"""Plugins that never come back or take their process with them: for the cell timeout and the probe check."""

import os
import signal
import time

import torch


class HangingSGD(torch.optim.SGD):
    """Sleeps forever in its first step()."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)

    def step(self, closure=None):
        while True:
            time.sleep(60)


class HangingInit(torch.optim.SGD):
    """Sleeps forever in its constructor."""

    def __init__(self, params, lr=0.01):
        while True:
            time.sleep(60)


class ExitingInit(torch.optim.SGD):
    """Ends its process with os._exit(3) in its constructor."""

    def __init__(self, params, lr=0.01):
        os._exit(3)


class SegfaultingInit(torch.optim.SGD):
    """Dies of SIGSEGV in its constructor."""

    def __init__(self, params, lr=0.01):
        os.kill(os.getpid(), signal.SIGSEGV)
