"""What one cell produced: the runner's output, the tracker's input, a clean twin's reference.

Plain data (picklable: it travels from worker processes and Ray tasks to the driver, and into the spool).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gsibench.battery.cells import Cell
from gsibench.measure.metrics import OscillationWindow
from gsibench.measure.schema import CLEAN_VALUES, known
from gsibench.tasks.base import Score


@dataclass
class CellResult:
    """What a cell produced. ``series`` holds loss, c_k and the update norms per step."""

    cell: Cell
    status: str  # "finished" or "failed"
    diverged: bool = False
    diverged_step: int | None = None
    series: dict[str, np.ndarray] = field(default_factory=dict)
    final_params: np.ndarray | None = None
    travel: float = math.nan
    """‖θ_T − θ_0‖, the denominator of the twins' trajectory divergence."""
    val_score: float = math.nan
    omega1: float = math.nan
    omega2: float = math.nan
    omega: OscillationWindow | None = None
    wall_seconds: float = 0.0
    error: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    init_score: float = math.nan
    """The validation score at the initial parameters: the trivial baseline the leaderboard normalises by."""
    clip_frac: float = math.nan
    """Fraction of steps on which gradient clipping was active (NaN without clipping)."""
    score: Score | None = None
    """The task's primary score (name and direction), logged with the run so that readers need no registry."""

    @property
    def update_norm(self) -> np.ndarray:
        return self.series.get("update_norm", np.empty(0))

    def metrics(self, comparison: dict[str, float] | None = None) -> dict[str, float]:
        """The run's summary metrics under the schema's names (:mod:`gsibench.measure.schema`): its own,
        then the comparison with its clean twin (a clean run gets the schema's clean values)."""
        if self.status == "failed":
            return {"wall_seconds": self.wall_seconds}
        loss = self.series.get("loss", np.empty(0))
        metrics = {"omega1": self.omega1, "omega2": self.omega2, "val_score": self.val_score,
                   "init_score": self.init_score,
                   "diverged": float(self.diverged), "wall_seconds": self.wall_seconds,
                   "final_loss": float(loss[-1]) if len(loss) else math.nan}
        if self.diverged:
            metrics["diverged_step"] = float(self.diverged_step)
        if math.isfinite(self.clip_frac):
            metrics["clip_frac"] = self.clip_frac
        if self.cell.is_clean:
            metrics.update(CLEAN_VALUES)
        metrics.update(comparison or {})
        return known(metrics)
