"""The metric schema: every summary metric a run records, its direction and who uses it.

One table for MLflow logging (:mod:`gsibench.tracking.store` logs exactly these names), the regression
check (:mod:`gsibench.regression.check` compares the ``checked`` ones) and the leaderboard (the
``per_cell`` ones get a column with a 95% interval). Adding a metric means a row here and the code
that computes it (:meth:`gsibench.measure.result.CellResult.metrics` for a run,
:func:`gsibench.measure.twins.compare` for a run against its clean twin).

``better`` is ``"lower"``, ``"higher"``, ``"score"`` (the task's own direction, logged with every run as
the params ``score_name`` and ``score_higher_is_better``) or ``""`` (no direction: a count, a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from gsibench.core.params import ROLES


@dataclass(frozen=True)
class MetricSpec:
    name: str
    better: str
    description: str
    checked: bool = True
    """Compared by ``gsibench check``."""
    per_cell: bool = True
    """A leaderboard column (mean over seeds ± 95% interval)."""
    clean: float | None = None
    """Its value on a clean run, where the metric compares a run with its clean twin."""


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("omega1", "lower", "oscillation ω1: mean |Δ| of the EMA-smoothed ‖R_k‖"),
    MetricSpec("omega2", "lower", "oscillation ω2: mean |Δ²| of the EMA-smoothed ‖R_k‖"),
    MetricSpec("sensitivity", "lower", "mean |log(‖R_k^pert‖/‖R_k^clean‖)| over the perturbed window", clean=0.0),
    *(MetricSpec(f"sensitivity.{role}", "lower", f"update sensitivity of the {role} parameters alone",
                 checked=False, per_cell=role == "hidden") for role in ROLES),
    MetricSpec("divergence", "lower", "‖θ_T^pert − θ_T^clean‖ / ‖θ_T^clean − θ_0‖", clean=0.0),
    MetricSpec("val_score", "score", "the task's primary validation score"),
    MetricSpec("init_score", "score", "the validation score at the initial parameters (the trivial baseline)",
               checked=False, per_cell=False),
    MetricSpec("val_drop", "score", "validation score, perturbed minus clean", clean=0.0),
    MetricSpec("final_loss", "lower", "training loss at the last step"),
    MetricSpec("clip_frac", "", "fraction of steps on which gradient clipping was active", checked=False),
    MetricSpec("diverged", "lower", "1 when the run diverged (non-finite, or loss above the task's bound)",
               per_cell=False),
    MetricSpec("diverged_step", "", "the step at which the run diverged", checked=False, per_cell=False),
    MetricSpec("wall_seconds", "", "wall time of the cell", checked=False, per_cell=False),
)
BY_NAME = {metric.name: metric for metric in METRICS}
CHECKED = tuple(m.name for m in METRICS if m.checked)
PER_CELL = tuple(m.name for m in METRICS if m.per_cell)
CLEAN_VALUES = {m.name: m.clean for m in METRICS if m.clean is not None}


def lower_is_better(name: str, score_higher_is_better: bool | None = None) -> bool | None:
    """Whether a lower value of metric ``name`` is better; ``None`` when it has no direction (or it is a
    task score and the task's direction is unknown)."""
    better = BY_NAME[name].better
    if better == "score":
        return None if score_higher_is_better is None else not score_higher_is_better
    return {"lower": True, "higher": False}.get(better)


def known(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` after checking every name is in the schema (a misspelt metric fails loudly here)."""
    unknown = sorted(set(metrics) - set(BY_NAME))
    if unknown:
        raise KeyError(f"metrics not in the schema (gsibench.measure.schema): {unknown}")
    return metrics
