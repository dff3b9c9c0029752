"""ResNet-18 on CIFAR-10 / CIFAR-100 from local files, the vision setting of arXiv 2601.21739.

The network is ``torchvision.models.resnet18`` adapted to 32×32 images in the usual way: a 3×3
stride-1 first convolution and no max-pool. Data are the python-version pickles of Krizhevsky (2009),
read with ``torchvision.datasets.CIFAR10`` / ``CIFAR100`` (``download=False``, MD5-checked) from
``<data_dir>/cifar-10-batches-py`` or ``<data_dir>/cifar-100-python``; ``data_dir`` is the task option
or else ``$GSIBENCH_DATA``. Without them the battery skips the task with :meth:`CifarResNet18.unavailable`'s
message. ``verify=False`` reads the same pickles without the MD5 check, for a subset or a re-packed copy.

Training uses the standard per-channel normalization and random-crop (4-pixel zero padding) plus
horizontal-flip augmentation, drawn per example from ``step_generator(seed, step)`` with tensor ops on
the device, so a clean run and its perturbed twin see identical batches. The paper trains with batch
64 (papers.md). Score: accuracy on the first ``val_examples`` test images (all 10,000 when ``None`` on
a GPU, 2,000 when ``None`` on a CPU).
"""

from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsibench.core.errors import UsageError, unknown_name
from gsibench.core.params import infer_roles
from gsibench.tasks.base import EpochSampler, Problem, Score, Task, step_generator
from gsibench.tasks.init import INITS
from gsibench.tasks.options import Option
from gsibench.tasks.registry import register

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CLASSES = {"cifar10": 10, "cifar100": 100}
MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
PAD = 4
CPU_VAL_EXAMPLES = 2000


def _dataset_class(dataset: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return {"cifar10": CIFAR10, "cifar100": CIFAR100}[dataset]


def find_cifar(data_dir: str | None, dataset: str) -> Path | None:
    """The root holding ``cifar-10-batches-py`` (or ``cifar-100-python``) with every file, or ``None``.
    ``data_dir`` may also name that folder itself."""
    root = data_dir or os.environ.get("GSIBENCH_DATA")
    if not root:
        return None
    root = Path(root).expanduser()
    cls = _dataset_class(dataset)
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    for candidate in (root, root.parent) if root.name == FOLDERS[dataset] else (root,):
        folder = candidate / FOLDERS[dataset]
        if all((folder / name).is_file() for name in names):
            return candidate.resolve()
    return None


@lru_cache(maxsize=1)
def read_cifar(root: Path, dataset: str, verify: bool) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): uint8 images (N, 3, 32, 32) and int64 labels.

    ``verify=True`` goes through torchvision, which checks every file's MD5 against the official
    archive. ``verify=False`` unpickles the same files (same names, keys ``data`` and ``labels`` /
    ``fine_labels``) without that check, so a smaller copy in the same format can be used.
    """
    cls = _dataset_class(dataset)

    def split(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if verify:
            try:
                data = cls(str(root), train=train, download=False)
            except RuntimeError as error:
                raise UsageError(f"{root / FOLDERS[dataset]} failed torchvision's MD5 check ({error}); "
                                 "use the official archive, or verify=False for a copy in the same format") from None
            images = torch.from_numpy(data.data).permute(0, 3, 1, 2)  # torchvision keeps HWC
            return images.contiguous(), torch.tensor(data.targets, dtype=torch.long)
        images, labels = [], []
        for name, _ in cls.train_list if train else cls.test_list:
            with open(root / FOLDERS[dataset] / name, "rb") as file:
                entry = pickle.load(file, encoding="latin1")
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)

    return (*split(True), *split(False))


def resnet18_cifar(num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool (32×32 inputs)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    model.maxpool = nn.Identity()
    return model


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32×32 crop of the zero-padded image and a horizontal flip with probability ½, per example.

    ``images`` is (B, C, H, W) float; the offsets and flips come from ``generator`` (CPU)."""
    batch, _, height, width = images.shape
    shifts = torch.randint(0, 2 * PAD + 1, (2, batch), generator=generator).to(images.device)
    flips = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = shifts[0][:, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = shifts[1][:, None] + torch.arange(width, device=images.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    channels_last = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return channels_last.permute(0, 3, 1, 2)


class CifarProblem(Problem):
    def __init__(self, model: nn.Module, data: tuple[torch.Tensor, ...], dataset: str, batch_size: int,
                 val_examples: int, seed: int, device: torch.device, info: dict[str, str]):
        self.model = model.to(device)
        x_train, y_train, x_test, y_test = data
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.x_val, self.y_val = x_test[:val_examples].to(device), y_test[:val_examples].to(device)
        self.mean = torch.tensor(MEAN[dataset], device=device)[:, None, None]
        self.std = torch.tensor(STD[dataset], device=device)[:, None, None]
        self.sampler = EpochSampler(len(self.y_train), batch_size, seed)
        self.seed = seed
        self.params = infer_roles(self.model)
        self.info = info

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def loss(self, step: int) -> torch.Tensor:
        index = self.sampler.indices(step).to(self.x_train.device)
        images = augment(self.x_train[index].float() / 255, step_generator(self.seed, step, salt=2))
        return F.cross_entropy(self.model(self._normalize(images)), self.y_train[index])

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        correct = 0
        for images, labels in zip(self.x_val.split(500), self.y_val.split(500)):
            logits = self.model(self._normalize(images.float() / 255))
            correct += int((logits.argmax(dim=1) == labels).sum())
        self.model.train()
        return correct / len(self.y_val)


@register
class CifarResNet18(Task):
    name = "cifar-resnet18"
    description = "ResNet-18 (32x32 stem) on CIFAR-10/100 from local files, crop+flip, val accuracy"
    default_steps = 2000
    score = Score("val_accuracy", higher_is_better=True)
    loss_bound = 1e3
    schedule = "warmup-cosine"
    needs_data = True
    prefers_gpu = True
    step_seconds = 30.0
    options = {"dataset": Option("cifar10", choices=tuple(FOLDERS)), "data_dir": Option(None, kind=str),
               "batch_size": Option(64, low=1, high=50_000), "val_examples": Option(None, kind=int, low=1, high=10_000),
               "init": Option("default", choices=INITS), "verify": True}

    def unavailable(self, options: dict[str, Any]) -> str | None:
        dataset = options.get("dataset", "cifar10")
        if dataset not in FOLDERS:
            raise unknown_name("dataset", dataset, FOLDERS)
        try:
            import torchvision  # noqa: F401
        except ImportError:
            return f"task '{self.name}' needs torchvision (pip install 'gsibench[vision]')"
        if find_cifar(options.get("data_dir"), dataset) is not None:
            return super().unavailable(options)
        folder = FOLDERS[dataset]
        root = options.get("data_dir") or os.environ.get("GSIBENCH_DATA")
        where = f"no {folder}/ with all its files under {root}" if root else "no data_dir and GSIBENCH_DATA unset"
        archive = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}[dataset]
        return (
            f"task '{self.name}' needs {dataset} on disk ({where}); gsibench never downloads data. Get the "
            f"python version, {archive}, from https://www.cs.toronto.edu/~kriz/cifar.html, extract it "
            f"into <dir> (giving <dir>/{folder}/) and pass cifar-resnet18[data_dir=<dir>] or set GSIBENCH_DATA=<dir>."
        )

    def build(self, seed: int, device: torch.device, dataset: str = "cifar10", data_dir: str | None = None,
              batch_size: int = 64, val_examples: int | None = None, init: str = "default",
              verify: bool = True) -> Problem:
        if dataset not in FOLDERS:
            raise unknown_name("dataset", dataset, FOLDERS)
        root = find_cifar(data_dir, dataset)
        if root is None:
            raise UsageError(self.unavailable({"dataset": dataset, "data_dir": data_dir}))
        if val_examples is None:
            val_examples = CPU_VAL_EXAMPLES if torch.device(device).type == "cpu" else 10_000
        if not (isinstance(val_examples, int) and val_examples > 0):
            raise UsageError(f"val_examples must be a positive integer or None, got {val_examples!r}")
        torch.manual_seed(seed)
        model = resnet18_cifar(CLASSES[dataset])
        if init != "default":
            from gsibench.tasks.init import initialize

            initialize(model, init)
        info = {"data_dir": str(root), "dataset": dataset, "val_examples": str(val_examples)}
        return CifarProblem(model, read_cifar(root, dataset, bool(verify)), dataset, batch_size, val_examples,
                            seed, device, info)
