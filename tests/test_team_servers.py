"""The servers a labeling team shares, each real and started here on loopback: MLflow on
PostgreSQL with its artifacts on S3-compatible storage (SeaweedFS), the DVC remote on the
same store, and an exact replay of a past cycle from a second clone with an empty cache.

Faults: the tracking server down, PostgreSQL restarted while two campaign cells log, an
object missing from the DVC remote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
import yaml
from servers import free_port, mlflow_server, postgres, seaweedfs
from test_campaign_e2e import edit_campaign
from test_cycle_e2e import edit_params, git_repo

pytestmark = pytest.mark.e2e

BUCKET = "alcycle"
BUDGET = 6
# Campaign cells' parent runs still open (a child run is open only for a moment).
OPEN_PARENTS = ("select count(*) from runs r where r.status = 'RUNNING' and not exists "
                "(select 1 from tags t where t.run_uuid = r.run_uuid and t.key = 'mlflow.parentRunId')")


def run(folder: Path, env: dict[str, str], *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    done = subprocess.run(cmd, cwd=folder, env=full, capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def alcycle(folder: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(folder, env, sys.executable, "-m", "alcycle", *args, check=check)


def dvc(folder: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(folder, env, sys.executable, "-m", "dvc", *args, check=check)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """PostgreSQL, SeaweedFS (S3) and an MLflow server storing runs in the one, artifacts in the other."""
    folder = tmp_path_factory.mktemp("team")
    with postgres() as database, seaweedfs(folder / "s3") as s3:
        aws = {k: v for k, v in s3.items() if k != "endpoint"}
        store = boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        store.create_bucket(Bucket=BUCKET)
        with mlflow_server(database.url, f"s3://{BUCKET}/mlflow", folder / "mlflow", aws) as url:
            yield {"database": database, "store": store, "endpoint": s3["endpoint"], "url": url,
                   "env": {**aws, "MLFLOW_TRACKING_URI": url}}


def keys(team, prefix: str) -> list[str]:
    pages = team["store"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="module")
def project(team, tmp_path_factory) -> Path:
    """Cycles 0-2 of a tiny MNIST project, tagged, logged to the team's MLflow, pushed to its DVC remote."""
    env = team["env"]
    root = git_repo(tmp_path_factory.mktemp("team-project") / "digits")
    alcycle(root.parent, env, "init", str(root), "--mnist", "--subsample", "200")
    edit_params(root, train={"steps": 10}, select={"budget": BUDGET})
    dvc(root, env, "remote", "add", "--default", "team", f"s3://{BUCKET}/dvc")
    dvc(root, env, "remote", "modify", "team", "endpointurl", team["endpoint"])
    run(root, env, "git", "add", ".dvc/config", "params.yaml")
    run(root, env, "git", "commit", "--quiet", "-m", "DVC remote: the team's S3 store")
    for cycle in range(3):
        if cycle:
            alcycle(root, env, "oracle")
        dvc(root, env, "repro")
        alcycle(root, env, "commit")
    dvc(root, env, "push", "--all-tags")
    return root


def test_cycles_log_to_mlflow_on_postgresql_with_models_on_s3(team, project):
    import mlflow

    mlflow.set_tracking_uri(team["url"])
    client = mlflow.MlflowClient(team["url"])
    runs = mlflow.search_runs(experiment_names=["alcycle"], order_by=["params.cycle ASC"])
    assert runs["params.cycle"].tolist() == ["0", "1", "2"] and (runs["status"] == "FINISHED").all()
    assert runs["params.n_labels"].astype(int).tolist() == [0, BUDGET, 2 * BUDGET]
    # The runs are rows of the PostgreSQL database, not of a file beside the project.
    assert team["database"].query("select count(*) from runs")[0][0] == 3
    assert not (project / "mlflow.db").exists()
    experiment = runs["experiment_id"][0]
    for run_id in runs["run_id"]:
        assert "labeled.csv" in {a.path for a in client.list_artifacts(run_id)}
        assert any(k.endswith("/labeled.csv") for k in keys(team, f"mlflow/{experiment}/{run_id}/artifacts/"))
        # The model (an MLflow 3 logged model of the run) went through the server to S3 too.
        (model,) = client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'")
        stored = keys(team, f"mlflow/{experiment}/models/{model.model_id}/artifacts/")
        assert any(k.endswith("/MLmodel") for k in stored), stored


def test_dvc_push_fills_the_s3_remote(team, project):
    stored = keys(team, "dvc/files/md5/")
    local = [p for p in (project / ".dvc/cache/files/md5").rglob("*") if p.is_file()]
    assert len(stored) == len(local) > 0


def test_a_second_clone_replays_cycle_2_exactly(team, project, tmp_path):
    env = team["env"]
    clone = tmp_path / "second-machine"
    run(tmp_path, env, "git", "clone", "--quiet", str(project), str(clone))
    run(clone, env, "git", "checkout", "--quiet", "cycle-2")
    assert not (clone / ".dvc/cache").exists()  # its own, empty cache
    dvc(clone, env, "pull")
    before = team["database"].query("select count(*) from runs")[0][0]
    replay = dvc(clone, env, "repro")
    assert "up to date" in replay.stdout.lower(), replay.stdout
    forced = dvc(clone, env, "repro", "--force", "--single-item", "select")
    assert "Running stage 'select'" in forced.stdout
    for path in ("data/queries.csv", "data/queries.labelstudio.json", "data/labeled.csv", "dvc.lock"):
        original = run(project, env, "git", "show", f"cycle-2:{path}").stdout
        assert (clone / path).read_text() == original, path
    assert team["database"].query("select count(*) from runs")[0][0] == before  # nothing logged twice


def test_an_object_missing_from_the_remote_is_named_at_pull(team, project, tmp_path):
    env = team["env"]
    clone = tmp_path / "third-machine"
    run(tmp_path, env, "git", "clone", "--quiet", str(project), str(clone))
    # The trained model of the last cycle: an output this checkout needs.
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    (model,) = [o for o in lock["stages"]["train"]["outs"] if o["path"].endswith("model.pt")]
    lost = f"dvc/files/md5/{model['md5'][:2]}/{model['md5'][2:]}"
    body = team["store"].get_object(Bucket=BUCKET, Key=lost)["Body"].read()
    team["store"].delete_object(Bucket=BUCKET, Key=lost)
    try:
        pulled = dvc(clone, env, "pull", check=False)
        said = pulled.stdout + pulled.stderr
        assert pulled.returncode != 0 and model["path"] in said and "failed to pull" in said.lower(), said
        assert not (clone / model["path"]).exists()  # not there rather than half there
    finally:
        team["store"].put_object(Bucket=BUCKET, Key=lost, Body=body)
    assert dvc(clone, env, "pull").returncode == 0  # the object back: the same pull completes
    assert dvc(clone, env, "status").stdout.strip().lower().startswith("data and pipelines are up to date")


def test_a_cycle_with_the_tracking_server_down_fails_naming_it_and_logs_nothing(team, project, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    env = {**team["env"], "MLFLOW_TRACKING_URI": down}
    clone = tmp_path / "offline"
    run(tmp_path, env, "git", "clone", "--quiet", str(project), str(clone))
    dvc(clone, env, "pull")
    alcycle(clone, env, "oracle")
    failed = dvc(clone, env, "repro", check=False)
    assert failed.returncode != 0
    assert f"the MLflow tracking server at {down} does not answer" in failed.stdout + failed.stderr
    # The server back (the team's): the same `dvc repro` finishes the cycle and logs it once.
    before = team["database"].query("select count(*) from runs")[0][0]
    dvc(clone, team["env"], "repro")
    assert team["database"].query("select count(*) from runs")[0][0] == before + 1


def test_two_cells_logging_through_a_postgresql_restart_lose_no_run(team, project):
    """Two campaign cells log at once to the server while PostgreSQL restarts under it."""
    env = team["env"]
    alcycle(project, env, "campaign", "init", "team")
    folder = project / "campaigns" / "team"
    edit_campaign(folder, strategies=["random", "entropy"], options=["plain"], seeds=[0], initial_budget=4,
                  budget=4, cycles=3)
    dvc(project, env, "repro", f"{folder}/dvc.yaml:prepare")  # the cells' own copy of the data
    full = {**os.environ, **env}
    processes = [subprocess.Popen([sys.executable, "-m", "alcycle", "campaign", "cell", strategy, "plain", "0"],
                                  cwd=folder, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for strategy in ("random", "entropy")]

    restarted: list[float] = []

    def restart_once_runs_are_open() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if team["database"].query(OPEN_PARENTS)[0][0] == 2:
                start = time.monotonic()
                team["database"].restart()
                restarted.append(time.monotonic() - start)
                return
            time.sleep(0.2)

    restarter = threading.Thread(target=restart_once_runs_are_open)
    restarter.start()
    outputs = [p.communicate(timeout=900) for p in processes]
    restarter.join()
    # A string, not a list, so pytest shows the whole traceback of a failed cell.
    assert [p.returncode for p in processes] == [0, 0], "\n-----\n".join(err[-6000:] for _, err in outputs)
    assert restarted, "PostgreSQL was never restarted while both cells' runs were open"
    print(f"PostgreSQL down for {restarted[0]:.1f} s while both cells logged")
    import mlflow

    mlflow.set_tracking_uri(team["url"])
    runs = mlflow.search_runs(experiment_names=["campaign-team"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert sorted(parents["tags.alcycle.cell"]) == ["entropy-plain-0", "random-plain-0"]
    assert (runs["status"] == "FINISHED").all() and len(children) == 2 * 4
    for name in ("random-plain-0", "entropy-plain-0"):
        result = json.loads((folder / "cells" / f"{name}.json").read_text())
        assert len(result["curve"]) == 4 and result["mlflow_run_id"] in set(parents["run_id"])
