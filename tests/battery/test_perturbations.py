import math

import numpy as np
import pytest

from gsibench.battery.perturbations import parse
from gsibench.core.errors import UsageError


def test_step_schedule_and_window():
    p = parse("step:at=0.5,factor=10")
    c = p.schedule(10)
    assert c.tolist() == [1.0] * 5 + [10.0] * 5
    assert p.window(10) == slice(5, 10)


def test_ramp_is_log_linear_with_drift_rate():
    p = parse("ramp:start=0.2,end=0.6,factor=100")
    c = p.schedule(100)
    assert c[20] == 1.0 and c[60] == pytest.approx(100.0) and c[99] == pytest.approx(100.0)
    drift = np.diff(np.log(c[20:61]))
    assert np.allclose(drift, math.log(100) / 40)


def test_ramp_rate_field_sets_drift_directly():
    c = parse("ramp:start=0.0,end=0.5,rate=0.01").schedule(100)
    assert np.allclose(np.diff(np.log(c[:51])), 0.01)
    assert c[-1] == pytest.approx(math.exp(0.5))


def test_noise_is_seeded_and_lognormal():
    p = parse("noise:sigma=0.5")
    a, b, other = p.schedule(2000, seed=1), p.schedule(2000, seed=1), p.schedule(2000, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, other)
    assert np.std(np.log(a)) == pytest.approx(0.5, rel=0.05)


def test_spike_and_bump_match_their_formulas():
    assert parse("spike:at=0.5,factor=100,length=2").schedule(10).tolist() == [1] * 5 + [100, 100] + [1] * 3
    c = parse("bump:height=0.5,start=0.25,end=0.75,width=5").schedule(400)
    k = 200.0
    expected = 1 + 0.5 * (1 / (1 + math.exp(-(k - 100) / 5)) - 1 / (1 + math.exp(-(k - 300) / 5)))
    assert c[200] == pytest.approx(expected)


def test_role_restriction_and_canonical_spec():
    p = parse("step:factor=10,at=0.5,role=hidden")
    assert p.role == "hidden" and p.spec == "step:at=0.5,factor=10.0,role=hidden"
    assert parse(p.spec) == p


@pytest.mark.parametrize("spec, fragment", [
    ("step:at=1.5", "at must be a fraction"),
    ("step:fator=3", "bad field 'fator'"),
    ("ramp:start=0.6,end=0.3", "end (0.3) must be after start"),
    ("noise:sigma=-1", "sigma must be a positive"),
    ("stpe", "Did you mean 'step'"),
    ("constant:factor=0", "factor must be a positive"),
    ("step:role=head", "role must be one of"),
])
def test_parse_errors_name_the_field_and_show_an_example(spec, fragment):
    with pytest.raises(UsageError) as error:
        parse(spec)
    assert fragment in str(error.value)
    if "Did you mean" not in fragment and "role" not in fragment:
        assert "e.g." in str(error.value)
