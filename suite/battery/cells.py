"""A cell: one training run of the battery, fully specified, with a stable key.

A cell names an optimizer (with every hyperparameter resolved), a task (with every option), a
perturbation, a seed and the run settings. Its key is a hash of all of that, so re-running a battery
finds finished cells by key (resume) and a changed default makes a new cell rather than a stale hit.
Each perturbed cell has a *clean twin*: the same cell with perturbation ``none``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any

KEY_VERSION = 1
OPTIONAL_KEY_FIELDS = ("omega_window", "omega_warmup")
"""Fields added after ``KEY_VERSION`` 1: part of the key only when not ``None``."""


def _freeze(mapping: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in mapping.items()))


@dataclass(frozen=True)
class Cell:
    optimizer: str
    """Display spec as given (``adam-balanced[beta=0.99]``); the leaderboard groups by it."""
    optimizer_name: str
    hparams: tuple[tuple[str, Any], ...]
    task: str
    task_name: str
    task_options: tuple[tuple[str, Any], ...]
    perturbation: str
    """Canonical perturbation spec (every field)."""
    seed: int
    steps: int
    schedule: str = "constant"
    warmup: float = 0.05
    clip: float | None = None
    device: str = "auto"
    imports: tuple[str, ...] = ()
    """Modules to import before resolving names (decorator-registered plugins)."""
    omega_window: int | None = None
    """EMA window w of ω; ``None``: scaled with the run length (``OscillationWindow.for_steps``)."""
    omega_warmup: int | None = None
    """Steps dropped before ω is computed; ``None``: as ``OscillationWindow.for_steps`` does."""

    @classmethod
    def make(cls, *, hparams: dict[str, Any], task_options: dict[str, Any], **fields: Any) -> Cell:
        return cls(hparams=_freeze(hparams), task_options=_freeze(task_options), **fields)

    @cached_property
    def key(self) -> str:
        """Hash of the full spec (imports excluded: they say where names come from, not what runs).

        The ω settings enter only when set, so that cells that leave them to the run length keep the
        keys they had before the fields existed (and MLflow still finds them finished)."""
        spec = asdict(self)
        spec.pop("imports")
        for name in OPTIONAL_KEY_FIELDS:
            if spec[name] is None:
                spec.pop(name)
        spec["version"] = KEY_VERSION
        blob = json.dumps(spec, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def is_clean(self) -> bool:
        return self.perturbation == "none"

    @property
    def twin(self) -> Cell:
        """The clean twin: same everything, no perturbation."""
        return replace(self, perturbation="none")

    @property
    def group(self) -> tuple[str, str, str]:
        """(optimizer, task, perturbation): the cells that differ only by seed."""
        return self.optimizer, self.task, self.perturbation

    def label(self) -> str:
        return f"{self.optimizer} | {self.task} | {self.perturbation} | seed {self.seed}"
