"""An MLP on scikit-learn's digits (shipped with the package: 1,797 8×8 images, 10 classes).

A fixed stratified split (20% held out, independent of the seed) keeps the validation set the
same for every run; the seed fixes the initialization and the mini-batch order. Score: validation
accuracy.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from gsibench.core.params import infer_roles
from gsibench.tasks.base import EpochSampler, Problem, Score, Task
from gsibench.tasks.init import INITS
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

TRAIN_EXAMPLES = 1437
"""Training examples of the fixed split (80% of 1,797): the largest batch."""


@lru_cache(maxsize=1)
def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_val, y_val) with pixels scaled to [0, 1]; the split is fixed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    train, val = train_test_split(range(len(y)), test_size=0.2, random_state=0, stratify=digits.target)
    return x[train], y[train], x[val], y[val]


class ClassificationProblem(Problem):
    """Cross-entropy training on in-memory tensors; score = validation accuracy."""

    def __init__(self, model: nn.Module, data: tuple, batch_size: int, seed: int, device: torch.device):
        self.model = model.to(device)
        self.x_train, self.y_train, self.x_val, self.y_val = (t.to(device) for t in data)
        self.sampler = EpochSampler(len(self.y_train), batch_size, seed)
        self.params = infer_roles(self.model)

    def loss(self, step: int) -> torch.Tensor:
        index = self.sampler.indices(step).to(self.x_train.device)
        return F.cross_entropy(self.model(self.x_train[index]), self.y_train[index])

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        accuracy = (self.model(self.x_val).argmax(dim=1) == self.y_val).float().mean()
        self.model.train()
        return float(accuracy)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@register
class DigitsMLP(Task):
    name = "digits-mlp"
    description = "MLP 64-128-128-10 on scikit-learn digits (shipped data), validation accuracy"
    default_steps = 300
    score = Score("val_accuracy", higher_is_better=True)
    loss_bound = 1e3
    step_seconds = 0.1
    options = {"width": Option(128, low=1, high=16384), "depth": Option(2, low=1, high=64),
               "batch_size": Option(64, low=1, high=TRAIN_EXAMPLES), "init": Option("default", choices=INITS)}

    def build(self, seed, device, width=128, depth=2, batch_size=64, init="default") -> Problem:
        torch.manual_seed(seed)
        model = mlp([64] + [width] * depth + [10])
        if init != "default":
            from gsibench.tasks.init import initialize

            initialize(model, init)
        return ClassificationProblem(model, digits_split(), batch_size, seed, device)
