import math

import numpy as np
import pytest

from gsibench.battery.cells import Cell
from gsibench.measure.metrics import max_deviation, trajectory_divergence, update_sensitivity
from gsibench.measure.result import CellResult
from gsibench.measure.twins import compare


def test_update_sensitivity_by_hand():
    clean = np.array([1.0, 1.0, 2.0, 2.0])
    perturbed = np.array([5.0, 1.0, 2.0 * math.e, 2.0 / math.e])
    # window from step 2: |log e| and |log 1/e| -> mean 1
    assert update_sensitivity(perturbed, clean, slice(2, 4)) == pytest.approx(1.0)
    assert update_sensitivity(clean, clean, slice(0, 4)) == 0.0


def test_trajectory_divergence_by_hand():
    assert trajectory_divergence(np.array([3.0, 4.0]), np.array([0.0, 0.0]), 10.0) == pytest.approx(0.5)
    assert math.isnan(trajectory_divergence(np.zeros(2), np.zeros(2), 0.0))


def test_max_deviation():
    assert max_deviation(np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.5])) == 2.0


def _result(perturbation, norms, final, score, travel=2.0):
    cell = Cell.make(optimizer="x", optimizer_name="x", hparams={}, task="t", task_name="t", task_options={},
                     perturbation=perturbation, seed=0, steps=4)
    return CellResult(cell, "finished", series={"update_norm": np.array(norms)}, final_params=np.array(final),
                      travel=travel, val_score=score)


def test_compare_with_clean_twin():
    clean = _result("none", [1.0, 1.0, 1.0, 1.0], [1.0, 0.0], 0.9)
    perturbed = _result("step:at=0.5,factor=10.0", [1.0, 1.0, math.e, 1.0], [1.0, 1.0], 0.8)
    metrics = compare(perturbed, clean)
    assert metrics["sensitivity"] == pytest.approx(0.5)  # window = steps 2..3: (1 + 0)/2
    assert metrics["divergence"] == pytest.approx(0.5)   # |[0, 1]| / travel 2
    assert metrics["val_drop"] == pytest.approx(-0.1)
