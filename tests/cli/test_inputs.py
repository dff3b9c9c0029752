"""Every input is checked before anything runs: one line naming the bad value, exit 2, no store, no training."""

from __future__ import annotations

import pytest

import gsibench.execution.executors
import gsibench.execution.runner
from gsibench.cli import main
from gsibench.core.errors import UsageError
from gsibench.regression.check import parse_tolerances
from gsibench.tasks import registry as tasks
from gsibench.tasks.options import Option, check_options


@pytest.fixture
def no_training(monkeypatch):
    def refuse(cell):
        raise AssertionError("training started")

    monkeypatch.setattr(gsibench.execution.executors, "run_cell", refuse)
    monkeypatch.setattr(gsibench.execution.runner, "run_cell", refuse)


def refused(args: list[str], tmp_path, capsys) -> str:
    """Run ``gsibench run ARGS`` in ``tmp_path``; it must exit 2 with one line and create no store."""
    code = main(["run", *args, "--no-tune", "--jobs", "1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gsibench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()
    return err


ADAM = ["--optimizers", "adam"]


@pytest.mark.parametrize(("args", "says"), [
    ([*ADAM, "--tasks", 'digits-mlp[width="wide"]'],
     "task 'digits-mlp': option width takes an integer in [1, 16384], got 'wide'"),
    ([*ADAM, "--tasks", "digits-mlp[batch_size=5000]"], "option batch_size takes an integer in [1, 1437]"),
    ([*ADAM, "--tasks", "digits-mlp[init='xavier']"], "option init takes one of default, sinusoidal"),
    ([*ADAM, "--tasks", "quadratic[noise=true]"], "option noise takes a number in [0, 1e+06], got True"),
    ([*ADAM, "--tasks", "char-gpt[n_embd=30,n_head=4]"], "n_embd (30) must be a multiple of n_head"),
    ([*ADAM, "--tasks", "finite-sum[n=1]"], "option n takes an integer in [2, 1e+06], got 1"),
    ([*ADAM, "--perturbations", "noise:sigma=1e300"], "sigma must be a positive number in (0, 4], got 1e+300"),
    ([*ADAM, "--perturbations", "step:factor=1e40"], "factor must be a positive number in [1e-12, 1e+12]"),
    ([*ADAM, "--perturbations", "ramp:rate=50"], "rate must be in [-1, 1]"),
    ([*ADAM, "--tasks", "oracle", "--init", "sinusoidal"], "unknown task option 'init'"),
    (["--optimizers", "tests.plugins.slow_opt:SlowSGD[epsilon=1e-8]"],
     "optimizer 'tests.plugins.slow_opt:SlowSGD' has no hyperparameter 'epsilon'; valid: lr"),
    (["--optimizers", "adam[epsilon=1e-8]"], "optimizer 'adam' has no hyperparameter 'epsilon'; valid: "),
])
def test_bad_inputs_exit_2_with_one_line_before_training(args, says, tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    assert says in refused(args, tmp_path, capsys)


def test_a_typo_in_task_options_lists_the_valid_keys(tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text('optimizers = ["adam"]\ntasks = ["oracle", "digits-mlp"]\n'
                                      '[task_options]\ninti = "sinusoidal"\n')
    err = refused(["b.toml"], tmp_path, capsys)
    assert "unknown task option 'inti'" in err and "Did you mean 'init'?" in err
    assert "Valid task options: batch_size, depth, dtype, init, rotation, width." in err


def test_a_wrong_type_in_task_options_names_the_task_and_option(tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text('optimizers = ["adam"]\ntasks = ["digits-mlp"]\n[task_options]\nwidth = "wide"\n')
    assert "task 'digits-mlp': option width takes an integer" in refused(["b.toml"], tmp_path, capsys)


def test_plugin_authors_get_the_declaration_from_gsibench():
    import gsibench

    assert gsibench.TaskOption is Option


def test_option_declarations_infer_the_type_from_the_default():
    declared = {"width": 128, "rate": 0.5, "name": "a", "flag": True, "anything": None,
                "path": Option(None, kind=str), "size": Option(4, low=1, high=8)}
    assert check_options("t", declared, {"rate": 2, "anything": [1], "path": None}) == {
        "width": 128, "rate": 2, "name": "a", "flag": True, "anything": [1], "path": None, "size": 4}
    for bad, says in [({"width": 1.5}, "option width takes an integer, got 1.5"),
                      ({"width": True}, "option width takes an integer, got True"),
                      ({"rate": "fast"}, "option rate takes a number, got 'fast'"),
                      ({"rate": float("nan")}, "option rate takes a number"),
                      ({"flag": 1}, "option flag takes true or false, got 1"),
                      ({"path": 3}, "option path takes a string (or none), got 3"),
                      ({"size": 9}, "option size takes an integer in [1, 8], got 9"),
                      ({"sise": 2}, "task 't' has no option 'sise'; valid: anything, flag, name, path, rate, size, "
                                    "width")]:
        with pytest.raises(UsageError) as error:
            check_options("t", declared, bad)
        assert says in str(error.value)


@pytest.mark.parametrize("name", tasks.available())
def test_every_task_accepts_its_own_defaults(name):
    task = tasks.get(name)
    assert task.resolve_options() == task.resolve_options(task.resolve_options())


def test_tolerance_errors_name_the_flag_and_the_plural():
    with pytest.raises(UsageError) as error:
        parse_tolerances(["omega=1"])
    assert "unknown quantity 'omega' in --tolerance." in str(error.value)
    assert "Valid quantities: " in str(error.value)
