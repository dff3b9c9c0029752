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


# ---- the kinds closer to practice ------------------------------------------------------------------

def test_layerwise_walks_are_per_tensor_seeded_and_start_late():
    spec = parse("layerwise:sigma=0.05,start=0.3")
    three, five = spec.tensor_scales(1000, seed=4, tensors=3), spec.tensor_scales(1000, seed=4, tensors=5)
    assert three.shape == (1000, 3) and np.array_equal(three, five[:, :3])  # tensor i's walk ignores the count
    assert np.all(three[:300] == 1.0) and np.all(three[300:] != 1.0)
    assert not np.array_equal(three[:, 0], three[:, 1])
    assert not np.array_equal(three, spec.tensor_scales(1000, seed=5, tensors=3))
    steps = np.diff(np.log(five[300:]), axis=0)
    # 3,495 increments of N(0, 0.05²): the sample SD is within 5% of σ except with probability < 1e-4
    assert abs(steps.std() / 0.05 - 1) < 0.05
    assert np.array_equal(spec.schedule(1000, seed=4), three[:, 0])
    assert spec.window(1000, seed=4) == slice(300, 1000)


def test_loss_scale_is_a_grad_scaler_schedule_of_powers_of_two():
    grows = parse("loss-scale:init=1024,interval=10,p=0").schedule(35)
    assert list(grows[[0, 9, 10, 19, 20, 30]]) == [1024, 1024, 2048, 2048, 4096, 8192]
    shrinks = parse("loss-scale:init=8,interval=10,p=1").schedule(6)
    assert list(shrinks) == [8, 4, 2, 1, 1, 1]  # every step overflows: halve, never below 1
    noisy = parse("loss-scale").schedule(2000, seed=1)
    assert np.all(np.log2(noisy) % 1 == 0) and noisy.max() <= 2.0**24
    assert len(set(noisy)) > 3 and np.array_equal(noisy, parse("loss-scale").schedule(2000, seed=1))


def test_accum_is_a_step_to_k():
    assert np.array_equal(parse("accum:at=0.5,k=8").schedule(10), [1] * 5 + [8] * 5)


def test_order_is_part_of_the_spec_only_when_not_the_default():
    assert parse("step:at=0.5,factor=10").spec == parse("step:at=0.5,factor=10,order=pre-clip").spec
    post = parse("step:at=0.5,factor=10,order=post-clip")
    assert post.order == "post-clip" and post.spec.endswith(",order=post-clip")
    assert parse(post.spec) == post
    with pytest.raises(UsageError, match="order must be one of pre-clip, post-clip"):
        parse("step:order=before")


@pytest.mark.parametrize(("spec", "says"), [
    ("layerwise:sigma=1e300", "sigma must be in (0, 2]"),
    ("loss-scale:init=1000", "init must be a power of two"),
    ("loss-scale:p=2", "p must be a probability"),
    ("loss-scale:interval=0.5", "interval must be a whole number"),
    ("accum:k=0.5", "k must be in (1, 1e+06]"),
])
def test_new_kinds_refuse_values_out_of_range(spec, says):
    with pytest.raises(UsageError) as error:
        parse(spec)
    assert says in str(error.value)
