import math

import numpy as np
import pytest

from gsibench.measure.metrics import OscillationWindow, binomial_tail, ema, loglog_slope, oscillation


def test_ema_matches_hand_computation():
    # alpha = 2/(3+1) = 0.5, started at the first value
    assert ema(np.array([4.0, 0.0, 2.0, 2.0]), window=3).tolist() == [4.0, 2.0, 2.0, 2.0]


def test_oscillation_by_hand():
    # warm-up drops the first value; w = 1 gives alpha = 1 (no smoothing)
    norms = np.array([100.0, 1.0, 3.0, 2.0, 5.0])
    omega1, omega2 = oscillation(norms, warmup=1, window=1)
    # kept 1,3,2,5: first differences 2,-1,3 -> mean |.| = 2; second differences -3,4 -> 3.5
    assert omega1 == pytest.approx(2.0) and omega2 == pytest.approx(3.5)


def test_oscillation_with_smoothing_by_hand():
    norms = np.array([0.0, 4.0, 0.0, 4.0])  # w = 3 -> alpha 0.5: smooth 0, 2, 1, 2.5
    omega1, omega2 = oscillation(norms, warmup=0, window=3)
    assert omega1 == pytest.approx((2 + 1 + 1.5) / 3)
    assert omega2 == pytest.approx((3 + 2.5) / 2)


def test_oscillation_of_constant_series_is_zero_and_short_series_nan():
    assert oscillation(np.full(50, 3.0), 5, 10) == pytest.approx((0.0, 0.0), abs=1e-15)
    assert all(math.isnan(x) for x in oscillation(np.array([1.0, 2.0]), 0, 5))


def test_window_scales_with_run_length():
    assert OscillationWindow.for_steps(100) == OscillationWindow(warmup=10, window=5)
    assert OscillationWindow.for_steps(100_000).window == 200


def test_binomial_tail_matches_the_paper():
    assert binomial_tail(9, 9, 1 / 3) == pytest.approx(5.08e-5, rel=1e-3)
    assert binomial_tail(6, 9, 1 / 3) == pytest.approx(0.0424, rel=1e-2)
    assert binomial_tail(7, 9, 1 / 3) == pytest.approx(0.0083, rel=1e-2)
    assert binomial_tail(9, 12, 1 / 4) == pytest.approx(3.9e-4, rel=1e-2)


def test_loglog_slope():
    x = np.array([1e-3, 2e-3, 4e-3])
    assert loglog_slope(x, 5 * x**2) == pytest.approx(2.0)
