"""Cells: the key is a hash of the full spec, stable for cells that existed before a field was added."""

from dataclasses import replace

from gsibench.battery.cells import Cell
from gsibench.execution.runner import oscillation_window

CELL = Cell.make(optimizer="adam[beta1=0.9,beta2=0.99]", optimizer_name="adam",
                 hparams={"lr": 1e-3, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.0},
                 task="digits-mlp", task_name="digits-mlp",
                 task_options={"width": 128, "depth": 2, "batch_size": 64, "init": "default"},
                 perturbation="none", seed=0, steps=300)


def test_a_cell_without_omega_settings_keeps_its_key_from_before_the_fields_existed():
    # computed with suite/battery/cells.py of commit 2f3f1ab, before omega_window/omega_warmup existed:
    # MLflow stores with runs of that version still find them finished
    assert CELL.key == "3d0d8ac4a11ea669fd56"


def test_omega_settings_are_part_of_the_key_and_of_the_window():
    paper = replace(CELL, omega_window=200, omega_warmup=15)
    assert len({CELL.key, paper.key, replace(CELL, omega_window=200).key}) == 3
    assert (oscillation_window(paper, 300).warmup, oscillation_window(paper, 300).window) == (15, 200)
    scaled = oscillation_window(CELL, 300)  # for_steps: 10% dropped, w = 270 // 20
    assert (scaled.warmup, scaled.window) == (30, 13)
    assert oscillation_window(replace(CELL, omega_window=50), 300).warmup == 30
