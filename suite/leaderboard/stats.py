"""The statistics of the leaderboard: means with confidence intervals, paired tests, significance ranks.

**Means.** Every number is the mean over seeds with a two-sided 95% Student-t interval,
``mean ± t_{0.975, n−1} · s/√n`` (s the sample standard deviation; no interval for n < 2).

**Ranks.** Within one (task, perturbation), optimizers are compared pairwise with a *paired t-test*
on seed-matched values: the same seed gives the same initialization and data order for every
optimizer, so the per-seed difference removes the seed's own effect. The p-values of all pairs of
one (task, perturbation) are Benjamini–Hochberg adjusted (false-discovery rate q = 0.05: among the
differences declared, at most 5% are expected to be false). An optimizer's rank is ``1 + the number of
optimizers significantly better than it`` — equal ranks mean "not distinguishable with these seeds",
and a rank gap always rests on a significant test.

Why FDR and not family-wise (Holm) control: 8 optimizers make 28 pairs, and with 3 seeds Holm's first
threshold 0.05/28 needs |t| > 23 at 2 degrees of freedom — only near-deterministic differences pass, a
noisy optimizer ties with everything, and ranks invert against the means (on the default battery 24
inverted pairs with Holm, 2 with Benjamini–Hochberg, both between near-equal means).

Why not Wilcoxon's signed-rank test: with n paired seeds its smallest two-sided p-value is
``2 / 2^n`` — 0.25 for n = 3, 0.0625 for n = 5 — so with the battery's 3 seeds it can never reject at
0.05 and every rank would tie; a sign-flip permutation test has the same floor. The t-test assumes
roughly normal per-seed differences; that is the price of deciding anything from 3 seeds.

**Tiers.** On the leaderboard an entry with a diverged or collapsed seed on a row ranks below every entry
without one (:func:`tiered_ranks`), whatever the test says: a run that failed is not "tied" with one that
did not.

A seed on which both optimizers produce the same value contributes a zero difference; when all
differences are equal and non-zero (a deterministic task such as the oracle, where seeds do not change
the run) the difference is exact and counts as significant; differences below :data:`EQUIVALENCE`
relative to the values' scale count as ties.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
EQUIVALENCE = 1e-9
"""Relative size below which a mean paired difference is treated as zero (rounding noise)."""


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, int]:
    """(mean, half-width of the t interval, n) over the finite ``values``; NaN where undefined."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    spread = x.std(ddof=1)
    if spread <= 1e-12 * abs(x.mean()):  # seeds that do not change the run: rounding noise, not spread
        spread = 0.0
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * spread / math.sqrt(n)
    return float(x.mean()), float(half), n


def paired_pvalue(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of ``a − b`` (seed-matched, equal length, finite)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        return 1.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    if abs(d.mean()) <= EQUIVALENCE * scale:
        return 1.0
    if len(d) < 2:
        return 1.0
    if np.ptp(d) <= EQUIVALENCE * scale:
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1): reject where ≤ q."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [1.0] * m, 1.0
    for position in range(m - 1, -1, -1):
        index = order[position]
        running = min(running, pvalues[index] * m / (position + 1))
        adjusted[index] = running
    return adjusted


def significance_ranks(values: Mapping[str, Mapping[int, float]], lower_is_better: bool,
                       alpha: float = ALPHA) -> tuple[dict[str, int], list[tuple[str, str, float, float]]]:
    """Ranks of optimizers from seed-matched values ``{optimizer: {seed: value}}``.

    Returns ``(ranks, tests)`` where ``tests`` lists ``(a, b, p, p_adjusted)`` for every pair with at
    least two common seeds. Optimizers with no finite value get no rank.
    """
    usable = {name: {s: v for s, v in per_seed.items() if v is not None and math.isfinite(v)}
              for name, per_seed in values.items()}
    usable = {name: per_seed for name, per_seed in usable.items() if per_seed}
    pairs, raw = [], []
    for a, b in itertools.combinations(sorted(usable), 2):
        seeds = sorted(set(usable[a]) & set(usable[b]))
        if len(seeds) < 2:
            continue
        x = [usable[a][s] for s in seeds]
        y = [usable[b][s] for s in seeds]
        pairs.append((a, b, float(np.mean(x) - np.mean(y))))
        raw.append(paired_pvalue(x, y))
    adjusted = benjamini_hochberg(raw)
    better_than: dict[str, int] = {name: 0 for name in usable}
    tests = []
    for (a, b, diff), p, q in zip(pairs, raw, adjusted):
        tests.append((a, b, p, q))
        if q < alpha:
            a_better = diff < 0 if lower_is_better else diff > 0
            better_than[b if a_better else a] += 1
    return {name: 1 + count for name, count in better_than.items()}, tests


def tiered_ranks(values: Mapping[str, Mapping[int, float]], failures: Mapping[str, int], alpha: float = ALPHA
                 ) -> tuple[dict[str, int], list[tuple[str, str, float, float]]]:
    """Ranks of entries by a higher-is-better outcome ``{entry: {seed: value}}`` in two tiers.

    An entry with a failed seed (``failures[entry] > 0``: diverged or collapsed, already scored as the
    trivial baseline) is never level with or ahead of one without: every failure-free entry counts as
    ahead of it. Within a tier an entry is ahead when a paired t-test on the common seeds says so
    (Benjamini–Hochberg over all pairs, :func:`significance_ranks`). Rank = 1 + entries ahead of it;
    equal ranks are ties."""
    _, tests = significance_ranks(values, lower_is_better=False, alpha=alpha)
    means = {name: float(np.mean([v for v in per_seed.values() if math.isfinite(v)]))
             for name, per_seed in values.items() if any(math.isfinite(v) for v in per_seed.values())}
    ahead: dict[str, set[str]] = {name: set() for name in means}
    for a, b, _, adjusted in tests:
        if a in means and b in means and adjusted < alpha and (failures.get(a, 0) > 0) == (failures.get(b, 0) > 0):
            winner, loser = (a, b) if means[a] > means[b] else (b, a)
            ahead[loser].add(winner)
    for loser in means:
        if failures.get(loser, 0) > 0:
            ahead[loser] |= {name for name in means if failures.get(name, 0) == 0}
    return {name: 1 + len(others) for name, others in ahead.items()}, tests
