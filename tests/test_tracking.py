"""MLflow logging against real stores: a local sqlite database and a real `mlflow server`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from alcycle.tracking import CycleRecord, log_cycle, resolve_tracking_uri


def record(tmp_path: Path, model_digest: str = "m1") -> CycleRecord:
    labeled = pd.DataFrame({"id": ["a", "b"], "label": ["x", "y"], "cycle": [1, 1], "source": "batch-0001.csv"})
    path = tmp_path / "labeled.csv"
    labeled.to_csv(path, index=False)
    return CycleRecord(
        cycle=1, n_labels=2, strategy="entropy", params={"select.budget": 2, "seed": 0},
        metrics={"test_accuracy": 0.75}, labeled=labeled, labeled_path=path,
        digests={"labeled_pool": "ab" * 32, "model": model_digest}, model=lambda: torch.nn.Linear(4, 2),
        model_input=np.zeros((2, 4), dtype=np.float32), artifacts=[path],
    )


def test_logs_once_per_key(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first, logged = log_cycle(record(tmp_path), uri, "exp", tmp_path)
    again, logged_again = log_cycle(record(tmp_path), uri, "exp", tmp_path)
    other, logged_other = log_cycle(record(tmp_path, model_digest="m2"), uri, "exp", tmp_path)
    assert (logged, logged_again, logged_other) == (True, False, True)
    assert again == first and other != first
    client = MlflowClient(uri)
    run = client.get_run(first)
    assert run.data.params["cycle"] == "1" and run.data.params["digest.model"] == "m1"
    assert [m.step for m in client.get_metric_history(first, "test_accuracy")] == [2]
    assert run.inputs.dataset_inputs[0].dataset.digest == "ab" * 8
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path / "mlartifacts")


def test_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri("http://127.0.0.1:9", tmp_path) == "http://127.0.0.1:9"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:8")
    assert resolve_tracking_uri("http://127.0.0.1:9", tmp_path) == "http://127.0.0.1:8"


@pytest.fixture
def mlflow_server(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
         str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_logs_to_a_tracking_server(tmp_path, mlflow_server):
    run_id, logged = log_cycle(record(tmp_path), mlflow_server, "served", tmp_path)
    assert logged
    run = MlflowClient(mlflow_server).get_run(run_id)
    assert run.data.metrics["test_accuracy"] == 0.75
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (tmp_path / "mlartifacts").exists()


def test_a_rerun_cell_discards_its_interrupted_run(tmp_path):
    """A killed cell leaves its parent RUNNING; the cell's next run deletes it (and its
    children) so grouped charts average whole cells only. Other cells are untouched."""
    from alcycle.tracking import CellRun

    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def cell_run(name: str) -> CellRun:
        return CellRun(uri, "campaign-t", tmp_path, {"alcycle.cell": name, "strategy": "random"}, {"seed": 0})

    killed = cell_run("random-plain-0")
    killed.log_cycle(0, 10, {"test_accuracy": 0.3})  # ...and then the process died
    other = cell_run("entropy-plain-0")
    rerun = cell_run("random-plain-0")
    rerun.log_cycle(0, 10, {"test_accuracy": 0.3})
    rerun.finish()
    client = MlflowClient(uri)
    live = client.search_runs([rerun.experiment_id])
    parents = {run.info.run_id for run in live if "mlflow.parentRunId" not in run.data.tags}
    children = [run for run in live if "mlflow.parentRunId" in run.data.tags]
    assert parents == {other.run_id, rerun.run_id}
    assert client.get_run(killed.run_id).info.lifecycle_stage == "deleted"
    assert len(children) == 1 and children[0].data.tags["mlflow.parentRunId"] == rerun.run_id
