"""Defaults of the three reproductions, in a module without heavy imports (the command line reads
them to build ``--help`` before it imports NumPy or pandas)."""

# grid (arXiv 2601.21739, Table: ω1 over the (β1, β2) grid)
PAPER_GRIDS = {"3x3": "0.9,0.99,0.999", "4x4": "0.9,0.95,0.99,0.999", "5x5": "0.9,0.968,0.99,0.9968,0.999"}
"""The paper's grids: 3×3 (WikiText, EfficientNet, T5, ViT, SlimPajama), 4×4 (the first ResNet18 grid),
5×5 (the later ResNet18 grid); the authors' ``configs`` and ``paper_artifacts/tables``."""
GRID_BETAS = "3x3"
GRID_TASK = "digits-mlp"
GRID_SEEDS = "3"
GRID_PROTOCOLS = ("quick", "paper")
GRID_PROTOCOL = "quick"
GRID_MEMORIES = 3
"""Default steps are at least GRID_MEMORIES / (1 − max β2): three memory lengths of the slowest average."""
FINE_POINTS = 5
FINE_RATIO = 2**0.5
"""``--fine``: per β1 row, β2 = 1 − (1 − β1)·FINE_RATIO^j for j = −2 … 2 (FINE_POINTS values): the
diagonal, two neighbours with β2 ≥ β1² (1 − β2 < 2(1 − β1)) and one further point on each side."""

PAPER_LR_WARMUP = 0.2
"""Linear lr warm-up over the first 20% of the steps, then cosine (the authors' training scripts)."""
PAPER_OMEGA_WINDOW = 200
PAPER_OMEGA_SKIP = 3 / 60
"""The authors drop 3 epochs of their 60-epoch runs before ω: the first 5% of the steps."""
PAPER_WEIGHT_DECAY = {"char-gpt": 1e-4, "wikitext-gpt": 1e-4, "digits-mlp": 1e-3, "digits-cnn": 1e-3,
                      "cifar-resnet18": 1e-3}
"""Weight decay under ``--protocol paper``, from the paper task nearest to ours (papers.md): language
models 1e-4 (NanoGPT on WikiText-2), image classifiers 1e-3 (ResNet18 on CIFAR-100); both with torch
Adam's (coupled, L2) ``weight_decay``. Other tasks get PAPER_WEIGHT_DECAY_OTHER."""
PAPER_WEIGHT_DECAY_OTHER = 1e-4

# invariance (order of gradient-scale invariance on the oracle; Figs. 1–2)
INVARIANCE_OPTIMIZERS = "adam,adam-balanced,signsgd,sgd,lion"
INVARIANCE_LAYOUTS = ("short", "steady")
INVARIANCE_LAYOUT = "short"
INVARIANCE_RATE = 5e-4
INVARIANCE_DOUBLINGS = 4
FIGURE_STEPS = 601
STEADY_TASK = "oracle[dtype='float64',rotation=0]"
"""The steady layout's oracle: a fixed direction (the turning one adds a term linear in δ to balanced
Adam's deviation) in float64 (float32 rounding of ‖R_k‖ grows with the run length)."""
STEADY_STEPS = 4000
STEADY_RAMP = (0.5, 1.0)
"""2,000 steps at scale 1, then a ramp to the end of the run."""
STEADY_RATE = 1e-5
"""Rates 1e-5 … 1.6e-4: small enough for Adam (0.9, 0.999) to stay linear ((τ2 − τ1)·δ ≤ 0.16)."""
CONTROL_PAIR = (0.95, 0.96)
"""β, β′ of the matched control pair: its order-1 deviation √3·(τ2 − τ1)·δ, τ = β/(1 − β), is 8.66·δ."""
BOOTSTRAP = 2000

# phase (Zhang et al. 2022: converge/diverge map over (β1, β2) per n)
PHASE_TASK = "finite-sum"
PHASE_LR = 0.1
"""The task's documented setting (``tasks/finite_sum.py``); Adam on this problem is invariant to lr
up to the wall at x = −1, so the map hardly depends on it."""
PHASE_NS = "5,10,20"
PHASE_GRID = 20
PHASE_SEEDS = "3"
PHASE_CRITERION = "drift"
PHASE_SCHEDULES = ("constant", "inverse-sqrt")
