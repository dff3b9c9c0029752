"""A perturbed run against its clean twin: the three sensitivity numbers of DESIGN.

(a) update sensitivity over the perturbed window (global and per role), (b) trajectory divergence,
(c) validation drop = perturbed score − clean score. An exactly scale-invariant optimizer scores
≈ 0 on all three.
"""

from __future__ import annotations

import math

import numpy as np

from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.core.params import ROLES
from gsibench.measure.metrics import trajectory_divergence, update_sensitivity


def compare(perturbed, clean) -> dict[str, float]:
    """Metrics of a perturbed :class:`~gsibench.execution.runner.CellResult` relative to its clean twin."""
    cell = perturbed.cell
    window = parse_perturbation(cell.perturbation).window(cell.steps, cell.seed)
    metrics = {"sensitivity": update_sensitivity(perturbed.update_norm, clean.update_norm, window)}
    for role in ROLES:
        name = f"update_norm.{role}"
        p, c = perturbed.series.get(name), clean.series.get(name)
        if p is not None and c is not None and np.any(c[: len(p)] > 0):
            metrics[f"sensitivity.{role}"] = update_sensitivity(p, c, window)
    diverged = perturbed.diverged or clean.diverged
    metrics["divergence"] = math.nan if diverged else trajectory_divergence(
        perturbed.final_params, clean.final_params, clean.travel
    )
    metrics["val_drop"] = perturbed.val_score - clean.val_score
    return metrics
