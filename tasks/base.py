"""The task interface.

A :class:`Task` is a recipe; ``task.build(seed, device, **options)`` gives a :class:`Problem`: the
trained parameters with their roles, a deterministic loss per step, and ``evaluate()`` for the
primary validation score. The same seed gives the same initialization and data order, so a clean and a
perturbed run differ only by the injected gradient rescaling.

Task variants are small subclasses that override a class attribute or two (AlgoPerf style).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo
from gsibench.tasks.options import Option, check_options

if TYPE_CHECKING:  # torch loads with the first task built: naming or checking one needs none
    import torch


@dataclass(frozen=True)
class Score:
    """The primary validation score of a task: its name and direction."""

    name: str
    higher_is_better: bool


class Problem(ABC):
    """A built task: parameters, per-step loss, validation — every hook the runner calls.

    The runner calls, per step, ``loss(k)`` then (after ``optimizer.step()``) ``after_step()``, and at
    the end ``evaluate()``; it logs ``info`` with the run. Only :meth:`loss` must be written.
    """

    params: list[ParamInfo]
    info: dict[str, str] = {}
    """Facts about this build worth logging (data file hashes, derived constants): MLflow params ``info.*``."""

    @abstractmethod
    def loss(self, step: int) -> torch.Tensor:
        """Training loss (a scalar) on the data of ``step``; a function of (seed, step) only."""

    def after_step(self) -> None:  # noqa: B027 (a hook: doing nothing is the default)
        """Called right after every ``optimizer.step()`` (a projection onto a feasible set, say)."""

    def evaluate(self) -> float | None:
        """The primary validation score at the current parameters (``None`` if the task has none)."""
        return None

    @property
    def has_after_step(self) -> bool:
        """Whether :meth:`after_step` is overridden (the runner skips the call otherwise)."""
        return type(self).after_step is not Problem.after_step


class Task(ABC):
    """A training task. Subclasses set the class attributes and implement :meth:`build`."""

    name: ClassVar[str]
    description: ClassVar[str]
    default_steps: ClassVar[int] = 200
    score: ClassVar[Score | None] = None
    loss_bound: ClassVar[float] = float("inf")
    """A loss above this ends the run as diverged (non-finite values always do)."""
    schedule: ClassVar[str] = "constant"
    """Default learning-rate schedule: ``constant`` or ``warmup-cosine``."""
    clip: ClassVar[float | None] = None
    """Default gradient-norm clipping (applied after the perturbation, before the step)."""
    needs_data: ClassVar[bool] = False
    needs_gpu: ClassVar[bool] = False
    prefers_gpu: ClassVar[bool] = False
    """GPU-scale task: ``device=auto`` picks CUDA for it when one is available."""
    options: ClassVar[dict[str, Any | Option]] = {}
    """Task options settable in the spec (``digits-mlp[width=256]``): name -> default, or name ->
    :class:`~gsibench.tasks.options.Option` with bounds or choices; the default's type is the option's type."""
    step_seconds: ClassVar[float] = 1.0
    """A generous CPU budget per training step: the default cell timeout is a start-up allowance plus
    ``steps × step_seconds`` (:func:`gsibench.execution.executors.cell_timeout`)."""

    def resolve_options(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``; an unknown key, a value of the wrong type or out of range
        raises a one-line UsageError naming the option (then :meth:`check_options` sees them together)."""
        options = check_options(self.name, self.options, dict(overrides or {}))
        self.check_options(options)
        return options

    def check_options(self, options: dict[str, Any]) -> None:  # noqa: B027 (a hook: no check is the default)
        """Checks that involve several options (``n_embd`` a multiple of ``n_head``); raise UsageError."""

    def unavailable(self, options: dict[str, Any]) -> str | None:
        """Why this task cannot run here (missing data, no GPU), or ``None`` if it can."""
        import torch

        if self.needs_gpu and not torch.cuda.is_available():
            return f"task '{self.name}' needs a GPU and none is available"
        return None

    @abstractmethod
    def build(self, seed: int, device: torch.device, **options: Any) -> Problem:
        """Build model, data stream and loss for ``seed`` on ``device``."""


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, step, salt): per-step randomness that is the
    same in a clean run and its perturbed twin, whatever happened before."""
    import torch

    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + salt * 104_729) % (2**63 - 1))


class EpochSampler:
    """Mini-batch indices drawn without replacement, reshuffled each epoch, fixed by the seed."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True):
        if batch_size > n:
            raise UsageError(f"batch size {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self._epoch, self._order = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            import torch

            self._order = torch.randperm(self.n, generator=step_generator(self.seed, epoch, salt=1))
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]
