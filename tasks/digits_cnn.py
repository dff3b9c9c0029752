"""A small CNN on scikit-learn's digits seen as 1×8×8 images.

The same data, fixed split and mini-batch order as ``digits-mlp`` (:mod:`gsibench.tasks.digits_mlp`), but the
hidden weights are convolution filters, so matrix optimizers (Muon, Scion) meet 4-D tensors that they
must flatten to (out, in·k·k). Architecture: conv 1→w 3×3, ReLU, conv w→2w 3×3, ReLU, 2×2 max-pool,
linear 2w·4·4→10. Score: validation accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from gsibench.tasks.base import Problem, Score, Task
from gsibench.tasks.digits_mlp import TRAIN_EXAMPLES, ClassificationProblem, digits_split
from gsibench.tasks.init import INITS
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register


def digits_cnn(width: int) -> nn.Sequential:
    """The network; it takes the flat 64-pixel rows of :func:`digits_split` directly."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 2w, 4, 4)
        nn.Flatten(),
        nn.Linear(2 * width * 4 * 4, 10),
    )


@register
class DigitsCNN(Task):
    name = "digits-cnn"
    description = "CNN (conv 16, conv 32, pool, linear) on scikit-learn digits as 8x8 images, val accuracy"
    default_steps = 300
    score = Score("val_accuracy", higher_is_better=True)
    loss_bound = 1e3
    step_seconds = 0.25
    options = {"width": Option(16, low=1, high=1024), "batch_size": Option(64, low=1, high=TRAIN_EXAMPLES),
               "init": Option("default", choices=INITS)}

    def build(self, seed: int, device: torch.device, width: int = 16, batch_size: int = 64,
              init: str = "default") -> Problem:
        torch.manual_seed(seed)
        model = digits_cnn(width)
        if init != "default":
            from gsibench.tasks.init import initialize

            initialize(model, init)
        return ClassificationProblem(model, digits_split(), batch_size, seed, device)
