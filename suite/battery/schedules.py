"""Learning-rate schedules, as a multiplier of each group's base lr at step k of T.

``warmup-cosine`` is the paper's setting (arXiv 2601.21739: linear warm-up then cosine): the
multiplier rises as (k+1)/W over W = ⌈warmup·T⌉ steps, then follows ½(1 + cos(π(k − W)/(T − W))),
which stays strictly positive for k < T so that R_k = Δθ/η_k is always defined. ``inverse-sqrt``
is η/√(k + 1).
"""

from __future__ import annotations

import math

from gsibench.core.errors import unknown_name

SCHEDULES = ("constant", "warmup-cosine", "inverse-sqrt")


def lr_multiplier(schedule: str, step: int, steps: int, warmup: float = 0.05) -> float:
    if schedule == "constant":
        return 1.0
    if schedule == "warmup-cosine":
        warmup_steps = max(1, math.ceil(warmup * steps))
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))
    if schedule == "inverse-sqrt":
        return 1.0 / math.sqrt(step + 1)
    raise unknown_name("schedule", schedule, SCHEDULES)
