"""The command line: errors for people (exit 2, no traceback), TOML batteries, resume, failures."""

import pytest
from mlflow.tracking import MlflowClient

from gsibench.cli import main
from gsibench.tracking.store import Tracker

SMALL = ["--tasks", "oracle", "--perturbations", "step:at=0.5,factor=10", "--seeds", "2", "--steps", "30"]


def run(args, tracking_uri):
    return main(["run", *args, "--no-tune", "--tracking-uri", tracking_uri, "--experiment", "t"])


@pytest.mark.parametrize("args, message", [
    (["--optimizers", "adm"], "unknown optimizer 'adm'. Did you mean 'adam'?"),
    (["--optimizers", "adam", "--tasks", "digts-mlp"], "Did you mean 'digits-mlp'?"),
    (["--optimizers", "adam-balanced[beta=1.0]"], "beta must be in [0.0, 1.0)"),
    (["--optimizers", "adam[lr=-1]"], "lr must be a positive number"),
    (["--optimizers", "adam[betta=0.9]"], "has no hyperparameter 'betta'"),
    (["--optimizers", "adam", "--perturbations", "ramp:start=0.9,end=0.1"], "must be after start"),
    (["--optimizers", "adam", "--seeds", "zero"], "seeds must be"),
    (["--optimizers", "nosuchmodule.x:Opt"], "cannot import module 'nosuchmodule.x'"),
])
def test_usage_errors_exit_2_before_training(args, message, tracking_uri, capsys, tmp_path):
    assert run(args, tracking_uri) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # nothing was touched


def test_run_logs_every_cell_then_resumes_without_duplicates(tracking_uri, capsys):
    assert run(["--optimizers", "adam,signsgd", *SMALL], tracking_uri) == 0
    out = capsys.readouterr().out
    assert "adam" in out and "signsgd" in out
    tracker = Tracker(tracking_uri, "t")
    runs = tracker.runs()
    assert len(runs) == 2 * 2 * 2  # optimizers × seeds × (clean + step)
    assert {r.info.status for r in runs} == {"FINISHED"}
    params = runs[0].data.params
    assert {"optimizer", "task", "perturbation", "seed", "steps", "opt.lr", "torch_version"} <= set(params)
    assert params["git_dirty"] in ("true", "false") and len(params["git_commit"]) == 40
    perturbed = [r for r in runs if r.data.tags["kind"] == "perturbed"]
    assert all({"omega1", "omega2", "sensitivity", "divergence", "diverged", "wall_seconds"} <= set(r.data.metrics)
               for r in perturbed)
    twin_ids = {r.info.run_id for r in runs if r.data.tags["kind"] == "clean"}
    assert all(r.data.tags["twin_run_id"] in twin_ids for r in perturbed)
    history = MlflowClient(tracking_uri).get_metric_history(runs[0].info.run_id, "series.update_norm")
    assert len(history) == 30

    assert run(["--optimizers", "adam,signsgd", *SMALL], tracking_uri) == 0
    assert "8 already done" in capsys.readouterr().err.replace("\n", " ")
    assert len(tracker.runs()) == 8


def test_a_failing_plugin_marks_its_cells_failed_and_the_battery_goes_on(tracking_uri, capsys):
    code = run(["--optimizers", "tests.plugins.broken_opt:ExplodingOptimizer,signsgd", *SMALL], tracking_uri)
    assert code == 1
    tracker = Tracker(tracking_uri, "t")
    statuses = {}
    for r in tracker.runs():
        statuses.setdefault(r.data.params["optimizer"], set()).add(r.info.status)
    assert statuses["signsgd"] == {"FINISHED"}
    assert statuses["tests.plugins.broken_opt:ExplodingOptimizer"] == {"FAILED"}
    failed = next(r for r in tracker.runs() if r.info.status == "FAILED")
    path = MlflowClient(tracking_uri).download_artifacts(failed.info.run_id, "traceback.txt")
    assert "boom: user optimizer bug" in open(path).read()
    # failed cells are rerun (and fail again) on the next invocation; finished ones are skipped
    assert run(["--optimizers", "tests.plugins.broken_opt:ExplodingOptimizer,signsgd", *SMALL], tracking_uri) == 1
    assert "4 already done" in capsys.readouterr().err.replace("\n", " ")


def test_toml_battery_and_flag_override(tracking_uri, tmp_path, capsys):
    battery = tmp_path / "b.toml"
    battery.write_text('optimizers = ["adam-balanced[beta=0.99]"]\ntasks = ["quadratic"]\n'
                       'perturbations = ["noise:sigma=0.5"]\nseeds = [3, 7]\nsteps = 20\n')
    assert main(["run", str(battery), "--no-tune", "--tracking-uri", tracking_uri, "--experiment", "toml"]) == 0
    runs = Tracker(tracking_uri, "toml").runs()
    assert sorted({r.data.params["seed"] for r in runs}) == ["3", "7"]
    assert {r.data.params["opt.beta"] for r in runs} == {"0.99"}
    bad = tmp_path / "bad.toml"
    bad.write_text('optimizers = ["adam"]\nseedz = 3\n')
    assert main(["run", str(bad), "--no-tune", "--tracking-uri", tracking_uri]) == 2
    assert "Did you mean 'seeds'" in capsys.readouterr().err


def test_diverged_runs_are_finished_not_failed(tracking_uri, capsys):
    args = ["--optimizers", "sgd[lr=1.0]", "--tasks", "quadratic", "--perturbations", "none", "--seeds", "1",
            "--steps", "50"]
    assert run(args, tracking_uri) == 0
    (only,) = Tracker(tracking_uri, "t").runs()
    assert only.info.status == "FINISHED" and only.data.metrics["diverged"] == 1.0
    assert only.data.tags["gsibench.status"] == "diverged"
    assert "1 run now, 0 already done, 1 diverged" in capsys.readouterr().err.replace("\n", " ")
    assert run(args, tracking_uri) == 0  # resumed: the count comes from MLflow, not from this run
    assert "0 run now, 1 already done, 1 diverged" in capsys.readouterr().err.replace("\n", " ")


def test_list_commands(capsys):
    for what in ("optimizers", "tasks", "perturbations"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    for name in ("adam-balanced", "scion", "digits-mlp", "ramp"):
        assert name in out
