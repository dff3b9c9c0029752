"""The direct SQLite writer writes the runs MLflow's own client writes: logged both ways, read back with
MlflowClient, they are the same run."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gsibench.tracking.sqlite_store
from gsibench.battery.spec import Battery
from gsibench.execution.runner import run_cell
from gsibench.measure.twins import compare
from gsibench.tracking.store import Tracker


@pytest.fixture(scope="module")
def results():
    battery = Battery(optimizers=["adam"], tasks=["oracle"], perturbations=["step:at=0.5,factor=10"], seeds=[0],
                      steps=40)
    clean, perturbed = (run_cell(cell) for cell in battery.plan()[0])
    perturbed.omega2 = math.inf  # MLflow stores ±inf as ±max float, and NaN (the oracle's score) as is_nan
    return clean, perturbed, compare(perturbed, clean)


def logged(tracker: Tracker, results) -> list[str]:
    clean, perturbed, comparison = results
    clean_id = tracker.log(clean)
    ids = [clean_id, tracker.log(perturbed, comparison, clean_id)]
    tracker.flush()
    return ids


def test_direct_and_mlflow_writes_read_back_the_same(tmp_path, results):
    fast = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "fast")
    assert fast.fast is not None
    slow = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "slow")
    slow.fast = None  # through MlflowClient, run by run
    client = fast.client
    for fast_id, slow_id in zip(logged(fast, results), logged(slow, results)):
        a, b = client.get_run(fast_id), client.get_run(slow_id)
        assert (a.info.status, a.info.run_name, a.info.lifecycle_stage) == (b.info.status, b.info.run_name, "active")
        assert a.info.artifact_uri.endswith(f"{fast_id}/artifacts")
        tags_a = {k: v for k, v in a.data.tags.items() if k != "twin_run_id"}
        tags_b = {k: v for k, v in b.data.tags.items() if k != "twin_run_id"}
        assert tags_a == tags_b and set(a.data.tags) == set(b.data.tags)
        assert a.data.params == b.data.params
        assert set(a.data.metrics) == set(b.data.metrics)
        for key, value in a.data.metrics.items():
            other = b.data.metrics[key]
            assert (value == other) or (math.isnan(value) and math.isnan(other)), key
        for key in ("series.update_norm", "series.loss", "series.scale"):
            history_a = [(m.step, m.value) for m in client.get_metric_history(fast_id, key)]
            history_b = [(m.step, m.value) for m in client.get_metric_history(slow_id, key)]
            assert sorted(history_a) == sorted(history_b) and len(history_a) > 0
        assert [f.path for f in client.list_artifacts(fast_id)] == [f.path for f in client.list_artifacts(slow_id)]
        with np.load(client.download_artifacts(fast_id, "trace.npz", str(tmp_path / "a"))) as x, \
                np.load(client.download_artifacts(slow_id, "trace.npz", str(tmp_path / "b"))) as y:
            assert x.files == y.files and all(np.array_equal(x[k], y[k], equal_nan=True) for k in x.files)
    found = client.search_runs([fast.experiment_id], "tags.kind = 'perturbed' and metrics.sensitivity > 0")
    assert len(found) == 1  # MLflow's own search sees the directly written runs


def test_readers_agree(tmp_path, results):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "read")
    ids = logged(tracker, results)
    assert tracker.fast.finished() == {r.cell.key: i for r, i in zip(results[:2], ids)}
    rows = {row["run_id"]: row for row in tracker.fast.rows()}
    via_mlflow = {run.info.run_id: run for run in tracker.runs()}
    for run_id in ids:
        run = via_mlflow[run_id]
        assert {k: rows[run_id][k] for k in run.data.params} == run.data.params
        assert {k: rows[run_id][k] for k in run.data.tags} == run.data.tags
        for key, value in run.data.metrics.items():
            assert rows[run_id][key] == value or (math.isnan(value) and math.isnan(rows[run_id][key]))


def test_another_schema_goes_through_mlflow(tmp_path, monkeypatch, results):
    monkeypatch.setattr(gsibench.tracking.sqlite_store, "SCHEMA", "a-revision-this-writer-does-not-know")
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "other")
    assert tracker.fast is None
    clean_id, perturbed_id = logged(tracker, results)
    assert tracker.client.get_run(perturbed_id).data.tags["twin_run_id"] == clean_id
