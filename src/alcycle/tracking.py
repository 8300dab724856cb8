"""MLflow behind one small module: one run per cycle, logged at most once; campaign cells.

A cycle's run is identified by a key over everything that determines it (labeled
pool, model, parameters). Logging a key that is already in the experiment reuses
that run, so a forced re-run of a stage never logs a cycle twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from alcycle.errors import AlcycleError
from alcycle.fileio import exclusive_lock

RUN_KEY_TAG = "alcycle.run_key"
SERVER_TIMEOUT = 10  # seconds a tracking server has to answer its health check
# These machines may have no network: MLflow must not try to send usage telemetry.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass(frozen=True)
class CycleRecord:
    """Everything one cycle's run holds."""

    cycle: int
    n_labels: int
    strategy: str
    params: dict[str, Any]  # flat "section.key" -> value
    metrics: dict[str, float]
    labeled: pd.DataFrame
    labeled_path: Path
    digests: dict[str, str]  # name -> sha256 of a file that defines the cycle
    model: Callable[[], Any]  # loads the torch.nn.Module; called only when the run is logged
    model_input: Any  # input example, uint8 (2, C, H, W): a batch of 2 keeps the batch size dynamic in the pt2 export
    artifacts: list[Path]


def resolve_tracking_uri(configured: str, root: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else params' ``track.tracking_uri``, else ``<root>/mlflow.db``.

    The default is absolute so that every stage (and DVC's temporary experiment
    folders) logs to the same database.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{Path(root).resolve()}/mlflow.db"


class TrackingServerError(AlcycleError, ConnectionError):
    """The MLflow tracking server named by the tracking URI does not answer."""


def check_reachable(tracking_uri: str) -> None:
    """For a tracking server (http, https), fail at once, naming it, when it does not answer;
    MLflow's own client would retry for minutes, with a run perhaps already open."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import requests

    health = tracking_uri.rstrip("/") + "/health"
    try:
        requests.get(health, timeout=SERVER_TIMEOUT).raise_for_status()
    except requests.RequestException as exc:
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} does not answer ({type(exc).__name__} on {health}): "
            f"start it, or point MLFLOW_TRACKING_URI (or track.tracking_uri) at one that runs; nothing was "
            f"logged, and `dvc repro` logs this cycle once it answers") from exc


def run_key(record: CycleRecord) -> str:
    blob = json.dumps({"cycle": record.cycle, "digests": record.digests, "params": record.params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def git_commit(root: Path) -> tuple[str, bool]:
    """The HEAD commit of the project and whether its work tree has changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return git("rev-parse", "HEAD") or "none", bool(git("status", "--porcelain"))


# MLflow 3's UI opens an experiment of unknown kind on its GenAI overview; this kind opens
# the runs table and charts, where learning curves are.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(client: MlflowClient, name: str, root: Path, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if tracking_uri.startswith(("sqlite:", "file:")):
        # A local store keeps artifacts beside it, whatever folder a stage runs in.
        location = (Path(root).resolve() / "mlartifacts").as_uri()
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    return client.create_experiment(name, tags=EXPERIMENT_KIND)  # a tracking server decides where artifacts go


def log_cycle(record: CycleRecord, tracking_uri: str, experiment: str, root: Path) -> tuple[str, bool]:
    """Log the cycle's run unless its key is already there; returns (run id, newly logged)."""
    check_reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, experiment, root, tracking_uri)
    key = run_key(record)
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'"
    )
    if existing:
        return existing[0].info.run_id, False
    commit, dirty = git_commit(root)
    tags = {
        RUN_KEY_TAG: key,
        "mlflow.source.git.commit": commit,
        "alcycle.git_dirty": str(dirty).lower(),
        "alcycle.cycle": str(record.cycle),
        "alcycle.strategy": record.strategy,
    }
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=f"cycle-{record.cycle}", tags=tags) as run,
        warnings.catch_warnings(),
    ):
        # Pixels and label cycles are integers that never go missing, which is all
        # MLflow's schema hint about integer columns warns of.
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        mlflow.log_params({**record.params, "cycle": record.cycle, "n_labels": record.n_labels})
        mlflow.log_params({f"digest.{name}": value for name, value in record.digests.items()})
        mlflow.log_input(_labeled_dataset(record), context="training")
        # step = number of labels, so runs of one experiment line up as a learning curve.
        mlflow.log_metrics({**record.metrics, "n_labels": record.n_labels}, step=record.n_labels)
        for path in record.artifacts:
            mlflow.log_artifact(str(path))
        _log_model(record.model(), record.model_input)
    return run.info.run_id, True


def _labeled_dataset(record: CycleRecord):
    """The labeled pool as an MLflow dataset whose digest is the pool file's SHA-256."""
    with warnings.catch_warnings():
        # A local path matches two equivalent registered source types; either is right.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        return mlflow.data.from_pandas(
            record.labeled,
            source=str(Path(record.labeled_path).resolve()),
            name="labeled-pool",
            digest=record.digests["labeled_pool"][:16],
        )


def _log_model(model: Any, model_input: Any) -> None:
    import mlflow.pytorch
    import torch

    # Explicit requirements skip MLflow's slow import-tracing inference.
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    mlflow.pytorch.log_model(model, name="model", input_example=model_input, pip_requirements=requirements)


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise writers of a local sqlite store across processes (two campaign cells at once).

    SQLite allows one writer at a time and MLflow creates its tables on first contact,
    which two processes starting together would race; a tracking server needs no lock.
    """
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    with exclusive_lock(Path(tracking_uri.removeprefix("sqlite:///") + ".lock")):
        yield


def discard_interrupted(client: MlflowClient, experiment_id: str, cell: str) -> list[str]:
    """Delete the runs of ``cell`` that are still RUNNING (a killed cell never finishes them),
    with their children, so the UI's grouped curves hold only whole cells. Returns their ids.

    Call it holding ``store_lock``: a cell of this name running right now elsewhere would
    be a second ``dvc repro`` of the same stage, which DVC's own lock already refuses.
    """
    stale = client.search_runs(
        [experiment_id], filter_string=f"tags.`alcycle.cell` = '{cell}' and attributes.status = 'RUNNING'")
    for run in stale:
        parent = f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
        for child in client.search_runs([experiment_id], filter_string=parent):
            client.delete_run(child.info.run_id)
        client.delete_run(run.info.run_id)
    return [run.info.run_id for run in stale]


class CellRun:
    """One campaign cell in MLflow: a parent run tagged with its strategy, option and seed, and
    one child run per cycle. Test accuracy is logged with step = number of labels on both, so
    the parent runs grouped by ``strategy`` draw mean learning curves in the MLflow UI.
    """

    def __init__(self, tracking_uri: str, experiment: str, root: Path, tags: dict[str, str],
                 params: dict[str, Any]) -> None:
        self.tracking_uri = tracking_uri
        check_reachable(tracking_uri)
        with store_lock(tracking_uri):
            # The client creates the store's tables on first contact: inside the lock too.
            self.client = MlflowClient(tracking_uri)
            experiment_id = ensure_experiment(self.client, experiment, root, tracking_uri)
            discard_interrupted(self.client, experiment_id, tags["alcycle.cell"])
            run = self.client.create_run(experiment_id, run_name=tags["alcycle.cell"], tags=tags)
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])
        self.experiment_id = experiment_id
        self.run_id = run.info.run_id

    def log_cycle(self, cycle: int, n_labels: int, metrics: dict[str, float]) -> str:
        """A finished child run for ``cycle``; the same metrics go on the parent at step ``n_labels``."""
        stamp = int(time.time() * 1000)
        entries = [Metric(k, float(v), stamp, n_labels) for k, v in sorted(metrics.items())]
        with store_lock(self.tracking_uri):
            child = self.client.create_run(self.experiment_id, run_name=f"cycle-{cycle}", tags={
                "mlflow.parentRunId": self.run_id, "alcycle.cycle": str(cycle), "alcycle.n_labels": str(n_labels)})
            self.client.log_batch(child.info.run_id, metrics=entries)
            self.client.set_terminated(child.info.run_id, "FINISHED")
            self.client.log_batch(self.run_id, metrics=entries)
        return child.info.run_id

    def finish(self, status: str = "FINISHED") -> None:
        with store_lock(self.tracking_uri):
            self.client.set_terminated(self.run_id, status)
