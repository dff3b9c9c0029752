"""What several tests share: tiny data sets in the formats the data-on-disk tasks read (nothing is
downloaded), options that make every task small, and a plain SGD loop over a problem."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

TINY_GPT = {"block_size": 16, "batch_size": 4, "n_layer": 1, "n_head": 2, "n_embd": 16}
TEXT = "The quick brown fox jumps over the lazy dog. Ünïcode, too: é ø ß.\n"


def write_cifar10(root: Path) -> Path:
    """A CIFAR-10 folder in the python-pickle format of the official archive, with random images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, count in [(f"data_batch_{i}", 6) for i in range(1, 6)] + [("test_batch", 10)]:
        entry = {"batch_label": name, "labels": rng.integers(0, 10, count).tolist(),
                 "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(count)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 6, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def write_wikitext(root: Path) -> Path:
    folder = root / "wikitext-2-raw"
    folder.mkdir()
    (folder / "wiki.train.raw").write_text(TEXT * 40, encoding="utf-8")
    (folder / "wiki.valid.raw").write_text(TEXT[::-1] * 8, encoding="utf-8")
    return root


def tiny_task_options(cifar_root: Path, wikitext_root: Path) -> dict[str, dict]:
    """Options that make every built-in task small enough for a unit test (and point it at tiny data)."""
    return {
        "digits-cnn": {"width": 4, "batch_size": 16},
        "digits-mlp": {"width": 16},
        "char-gpt": dict(TINY_GPT),
        "wikitext-gpt": {**TINY_GPT, "data_dir": str(wikitext_root)},
        "cifar-resnet18": {"data_dir": str(cifar_root), "batch_size": 4, "verify": False},
        "finite-sum": {"n": 5},
    }


def sgd_losses(problem, steps: int = 3, lr: float = 1e-2) -> list[float]:
    """Train ``problem`` with plain SGD (calling every hook the runner calls); the losses per step."""
    optimizer = torch.optim.SGD([p.tensor for p in problem.params], lr=lr)
    losses = []
    for k in range(steps):
        optimizer.zero_grad()
        loss = problem.loss(k)
        loss.backward()
        optimizer.step()
        problem.after_step()
        losses.append(float(loss.detach()))
    return losses
