"""Shared fixtures: a throw-away MLflow store per test, tiny data sets, and quiet MLflow logs."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.helpers import tiny_task_options, write_cifar10, write_wikitext

# One intra-op thread: the tensors here are tiny, and two cores shared with other work make OpenMP
# spin-waits dominate (Muon's Newton–Schulz went from 0.5 ms to 80 ms a call under load).
torch.set_num_threads(1)

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def cifar_dir(tmp_path):
    return write_cifar10(tmp_path)


@pytest.fixture
def wikitext_dir(tmp_path):
    return write_wikitext(tmp_path)


@pytest.fixture
def tiny_options(cifar_dir, wikitext_dir) -> dict[str, dict]:
    return tiny_task_options(cifar_dir, wikitext_dir)
