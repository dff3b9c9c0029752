"""Registering a user optimizer: decorator, import path and entry point, each built and stepped."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gsibench.core.errors import UsageError
from gsibench.core.params import ParamInfo, probe_params, tensors
from gsibench.optimizers import registry
from gsibench.optimizers.registry import available, get, register, resolve

USER_MODULE = '''
import torch


class MyAdam(torch.optim.Adam):
    """Adam under another name: a user's Optimizer subclass."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999)):
        super().__init__(params, lr=lr, betas=betas, foreach=False)


def make_opt(params, lr=0.1):
    """Plain SGD from ParamInfo: a user's factory."""
    return torch.optim.SGD([p.tensor for p in params], lr=lr)
'''


@pytest.fixture(autouse=True)
def scratch_registry(monkeypatch: pytest.MonkeyPatch):
    """Every test registers into a copy of the registry (built-ins loaded first) and forgets ``mymod``."""
    available()
    monkeypatch.setattr(registry.REGISTRY, "_items", dict(registry.REGISTRY._items))
    yield
    sys.modules.pop("mymod", None)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mymod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(tmp_path)
    return tmp_path


def step_once(optimizer: torch.optim.Optimizer, params: list[ParamInfo]) -> list[torch.Tensor]:
    """Give every tensor the gradient 1 + its index, take a step; returns the values before it."""
    before = [p.tensor.detach().clone() for p in params]
    for i, p in enumerate(params):
        p.tensor.grad = torch.full_like(p.tensor, 1.0 + i)
    optimizer.step()
    return before


def assert_adam_first_step(params: list[ParamInfo], before: list[torch.Tensor], lr: float) -> None:
    """Adam's first bias-corrected step is lr·sign(g) (ε aside): the update is lr up to a dozen roundings
    (relative u = 2^-24 each) and ε/|g| ≤ 1e-8, and θ − update is stored to half an ulp of θ."""
    for p, b in zip(params, before):
        allowed = torch.from_numpy(np.spacing(torch.maximum(p.tensor.detach().abs(), b.abs()).numpy())) / 2
        gap = (p.tensor.detach().double() - (b.double() - lr)).abs()
        assert bool((gap <= allowed.double() + lr * (12 * 2.0**-24 + 1e-8)).all()), gap.max()


def test_register_decorator_on_a_factory() -> None:
    @register("my-sgd", defaults={"lr": 0.1})
    def my_sgd(params: list[ParamInfo], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(tensors(params), lr=lr)

    entry, hparams = resolve("my-sgd[lr=0.5]")
    assert hparams == {"lr": 0.5}
    params = probe_params()
    before = step_once(entry.build(params, **hparams), params)
    for i, (p, b) in enumerate(zip(params, before)):
        torch.testing.assert_close(p.tensor.detach(), b - 0.5 * (1.0 + i))
    assert "my-sgd" in available()


def test_register_decorator_on_an_optimizer_class() -> None:
    @register("my-sign")
    class MySign(torch.optim.Optimizer):
        """θ ← θ − lr·sign(g)."""

        def __init__(self, params, lr: float = 1e-2):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])

    entry, hparams = resolve("my-sign[lr=0.25]")
    assert hparams == {"lr": 0.25}
    assert entry.description == "θ ← θ − lr·sign(g)."
    params = probe_params()
    before = step_once(entry.build(params, **hparams), params)
    for p, b in zip(params, before):
        torch.testing.assert_close(p.tensor.detach(), b - 0.25)


def test_import_path_to_an_optimizer_class(user_module: Path) -> None:
    entry, hparams = resolve("mymod:MyAdam[lr=1e-3]")
    assert hparams == {"lr": 1e-3, "betas": (0.9, 0.999)}
    params = probe_params()
    before = step_once(entry.build(params, **hparams), params)
    assert_adam_first_step(params, before, lr=1e-3)


def test_import_path_to_a_factory(user_module: Path) -> None:
    entry, hparams = resolve("mymod:make_opt")
    assert hparams == {"lr": 0.1}
    params = probe_params()
    optimizer = entry.build(params, lr=0.2)
    assert isinstance(optimizer, torch.optim.SGD)
    before = step_once(optimizer, params)
    torch.testing.assert_close(params[0].tensor.detach(), before[0] - 0.2)


def test_entry_point(user_module: Path) -> None:
    dist_info = user_module / "mymod_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mymod-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[gsibench.optimizers]\nmy-ep = mymod:MyAdam\n")
    assert "my-ep" in available()
    entry = get("my-ep")
    assert entry.name == "my-ep"
    params = probe_params()
    before = step_once(entry.build(params, lr=1e-3), params)
    assert_adam_first_step(params, before, lr=1e-3)
    assert resolve("my-ep[lr=0.5]")[1]["lr"] == 0.5


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("no_such_module_xyz:Foo", "cannot import module 'no_such_module_xyz'"),
        ("mymod:Missing", "unknown optimizer 'Missing' in module mymod"),
        ("mymod:", "must look like package.module:attr"),
    ],
)
def test_bad_import_path_says_which_part_is_wrong(user_module: Path, path: str, says: str) -> None:
    with pytest.raises(UsageError) as error:
        get(path)
    assert says in str(error.value)


def test_unknown_attribute_lists_the_module_contents(user_module: Path) -> None:
    with pytest.raises(UsageError, match="Did you mean 'MyAdam'") as error:
        get("mymod:MyAdm")
    assert str(error.value).endswith("Valid optimizers: MyAdam, make_opt.")  # not the imported torch


def test_import_path_to_something_else_is_rejected(user_module: Path) -> None:
    (user_module / "mymod.py").write_text(USER_MODULE + "\nLEARNING_RATE = 0.1\n")
    with pytest.raises(UsageError, match="is a float; expected an OptimizerEntry"):
        get("mymod:LEARNING_RATE")


def test_factory_returning_a_non_optimizer_is_rejected_by_check() -> None:
    @register("not-an-optimizer")
    def broken(params: list[ParamInfo], lr: float = 1e-3) -> list[torch.Tensor]:
        return tensors(params)

    entry = get("not-an-optimizer")
    with pytest.raises(UsageError, match="factory returned list, expected a torch.optim.Optimizer"):
        entry.check()


def test_plugin_that_cannot_be_built_is_reported() -> None:
    @register("raises-on-build")
    def broken(params: list[ParamInfo]) -> torch.optim.Optimizer:
        raise RuntimeError("no GPU here")

    with pytest.raises(UsageError, match="could not be built: RuntimeError: no GPU here"):
        resolve("raises-on-build")


@pytest.mark.parametrize("registry_module", ["gsibench.optimizers.registry", "gsibench.tasks.registry"])
def test_the_builtin_table_names_what_each_family_module_registers(registry_module):
    """BUILTINS maps each built-in name to the module that registers it: importing that module (in a fresh
    interpreter each) must register its names and no name the table does not know."""
    import subprocess
    import sys

    code = ("import importlib, json, sys\n"
            f"registry = importlib.import_module({registry_module!r}).REGISTRY\n"
            "importlib.import_module(sys.argv[1])\n"
            "print(json.dumps(sorted(registry._items)))")
    table = importlib.import_module(registry_module).REGISTRY.builtin_modules
    for module in set(table.values()):
        done = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        registered = set(json.loads(done.stdout))  # a family may import another (digits-cnn uses digits-mlp's)
        assert {n for n, owner in table.items() if owner == module} <= registered <= set(table), module


def test_a_misspelt_name_fails_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom gsibench.battery.spec import Battery\nfrom gsibench.core.errors import UsageError\n"
            "try:\n    Battery(optimizers=['adma'], tasks=['oracle']).check_names()\n"
            "except UsageError as error:\n    print(error)\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "unknown optimizer 'adma'. Did you mean 'adam'?" in done.stdout
    assert done.stdout.strip().endswith("False")
