"""Defaults of the three reproductions, in a module without heavy imports (the command line reads
them to build ``--help`` before it imports NumPy or pandas)."""

# grid (arXiv 2601.21739, Table: ω1 over the (β1, β2) grid)
GRID_BETAS = "0.9,0.99,0.999"
GRID_TASK = "digits-mlp"
GRID_SEEDS = "3"

# invariance (order of gradient-scale invariance on the oracle; Figs. 1–2)
INVARIANCE_OPTIMIZERS = "adam,adam-balanced,signsgd,sgd,lion"
INVARIANCE_RATE = 5e-4
INVARIANCE_DOUBLINGS = 4
FIGURE_STEPS = 601

# phase (Zhang et al. 2022: converge/diverge map over (β1, β2) per n)
PHASE_TASK = "finite-sum"
PHASE_LR = 0.1
"""The task's documented setting (``tasks/finite_sum.py``); Adam on this problem is invariant to lr
up to the wall at x = −1, so the map hardly depends on it."""
PHASE_NS = "5,10,20"
PHASE_GRID = 20
