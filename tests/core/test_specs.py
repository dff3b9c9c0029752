import pytest

from gsibench.battery.perturbations import split_specs
from gsibench.core.errors import UsageError
from gsibench.core.specs import format_named, parse_named, split_top_level


def test_parse_named_with_hyperparameters():
    assert parse_named("adam-balanced[beta=0.99,lr=3e-4]") == ("adam-balanced", {"beta": 0.99, "lr": 3e-4})
    assert parse_named("mypkg.opt:MyAdam[lr=1e-3,amsgrad=true,name=x]") == (
        "mypkg.opt:MyAdam", {"lr": 1e-3, "amsgrad": True, "name": "x"})
    assert parse_named("adam") == ("adam", {})


@pytest.mark.parametrize("bad", ["adam[lr]", "adam[lr=1", "adam[=3]", "adam]", "adam[lr=1,lr=2]", ""])
def test_parse_named_rejects_malformed(bad):
    with pytest.raises(UsageError):
        parse_named(bad)


def test_split_respects_brackets():
    assert split_top_level("adam,adam-balanced[beta=0.99,lr=1e-3],m:X[lr=1]") == [
        "adam", "adam-balanced[beta=0.99,lr=1e-3]", "m:X[lr=1]"]


def test_format_named_is_canonical():
    assert format_named("adam", {"lr": 0.1, "beta1": 0.5}) == "adam[beta1=0.5,lr=0.1]"


def test_split_perturbation_specs_with_commas():
    assert split_specs("step:at=0.5,factor=10,noise:sigma=0.5,none") == [
        "step:at=0.5,factor=10", "noise:sigma=0.5", "none"]
