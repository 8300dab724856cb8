"""End to end: the real `dvc repro` in a temporary git + DVC project on a slice of MNIST."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.e2e

BUDGET = 10
CYCLES = 3


def sh(project: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def git_repo(folder: Path) -> Path:
    """An empty git repository with an identity of its own, for `alcycle init` to commit in."""
    folder.mkdir(parents=True)
    sh(folder, "git", "init", "--quiet")
    sh(folder, "git", "config", "user.email", "test@alcycle.invalid")
    sh(folder, "git", "config", "user.name", "alcycle test")
    return folder


def alcycle(project: Path, *args: str) -> str:
    return sh(project, sys.executable, "-m", "alcycle", *args)


def dvc(project: Path, *args: str) -> str:
    return sh(project, sys.executable, "-m", "dvc", *args)


def edit_params(project: Path, **sections: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def mlflow_runs(project: Path) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    return mlflow.search_runs(experiment_names=["alcycle"], order_by=["params.cycle ASC"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = git_repo(tmp_path_factory.mktemp("e2e") / "digits")
    alcycle(root.parent, "init", str(root), "--mnist", "--subsample", "600")
    # The unlabeled images join in as well: a short DeepCluster pretraining and label propagation.
    edit_params(root, pretrain={"method": "deepcluster", "epochs": 1, "pca": 16},
                train={"steps": 60, "init": "pretrained", "semi_supervised": "label_propagation"},
                select={"budget": BUDGET, "strategy": "entropy"})
    return root


@pytest.fixture(scope="module")
def history(project: Path) -> list[dict]:
    """Cycle 0 plus three oracle cycles, each committed and tagged; what each left behind."""
    steps = []
    output = dvc(project, "repro")
    for cycle in range(CYCLES + 1):
        if cycle:
            alcycle(project, "oracle")
            output = dvc(project, "repro")
        alcycle(project, "commit")
        steps.append({
            "repro": output,
            "pseudo": pd.read_csv(project / "models/pseudo_labels.csv", dtype={"id": str, "label": str}),
            "labeled": pd.read_csv(project / "data/labeled.csv", dtype=str),
            "queries": pd.read_csv(project / "data/queries.csv", dtype={"id": str}),
            "metrics": json.loads((project / "metrics/evaluate.json").read_text()),
        })
    return steps


def test_a_committed_cycle_leaves_git_clean(project, history):
    assert sh(project, "git", "status", "--porcelain") == ""
    assert sh(project, "git", "tag", "--list").split() == ["cycle-0", "cycle-1", "cycle-2", "cycle-3"]


def test_pretraining_runs_once_and_never_for_new_labels(history):
    assert "Running stage 'pretrain'" in history[0]["repro"]
    for step in history[1:]:
        assert "Stage 'pretrain' didn't change, skipping" in step["repro"]
        assert "Running stage 'train'" in step["repro"]


def test_pseudo_labels_stay_out_of_the_labeled_pool(project, history):
    for step in history[1:]:
        pseudo, labeled = step["pseudo"], step["labeled"]
        assert not set(pseudo["id"]) & set(labeled["id"])
        # unlabeled pool items only: never one of the 120 test items
        assert 240 < len(pseudo) <= 480 - len(labeled)
        assert (pseudo["weight"] > 0).all()
    runs = mlflow_runs(project)
    assert runs["metrics.pseudo_labels"].iloc[1:].tolist() == [len(step["pseudo"]) for step in history[1:]]
    assert runs["metrics.pseudo_label_accuracy"].iloc[1:].between(0, 1).all()
    assert runs["params.train.semi_supervised"].unique().tolist() == ["label_propagation"]


def test_labeled_pool_grows_by_the_budget(history):
    assert [len(step["labeled"]) for step in history] == [0, 10, 20, 30]
    for step in history[1:]:
        assert step["labeled"]["id"].is_monotonic_increasing
        assert set(step["labeled"]["label"]) <= {str(d) for d in range(10)}


def test_each_cycle_imports_exactly_the_previous_queries(history):
    for before, after in zip(history, history[1:]):
        added = set(after["labeled"]["id"]) - set(before["labeled"]["id"])
        assert added == set(before["queries"]["id"])


def test_queries_never_overlap_labeled_items(history):
    for step in history:
        assert len(step["queries"]) == BUDGET
        assert step["queries"]["id"].is_unique
        assert not set(step["queries"]["id"]) & set(step["labeled"]["id"])


def test_cold_start_is_random_then_the_configured_strategy(history):
    assert history[0]["queries"]["strategy"].unique().tolist() == ["random"]
    assert history[1]["queries"]["strategy"].unique().tolist() == ["entropy"]


def test_oracle_labels_are_the_ground_truth(project, history):
    truth = pd.read_csv(project / "data/truth/labels.csv", dtype=str).set_index("id")["label"]
    labeled = history[-1]["labeled"]
    assert (labeled["label"].to_numpy() == truth.loc[labeled["id"]].to_numpy()).all()


def test_model_learns(history):
    assert history[0]["metrics"]["n_labels"] == 0
    assert history[-1]["metrics"]["test_items"] == 120
    # 30 labels and 60 steps make a weak model, yet well above the 10% of guessing
    assert history[-1]["metrics"]["test_accuracy"] > max(0.2, history[0]["metrics"]["test_accuracy"] + 0.1)


def test_mlflow_holds_one_run_per_cycle(project, history):
    runs = mlflow_runs(project)
    assert runs["params.cycle"].astype(int).tolist() == [0, 1, 2, 3]
    assert runs["params.n_labels"].astype(int).tolist() == [0, 10, 20, 30]
    assert runs["tags.alcycle.strategy"].unique().tolist() == ["entropy"]
    assert runs["tags.mlflow.source.git.commit"].str.fullmatch("[0-9a-f]{40}").all()
    for step, (_, run) in zip(history, runs.iterrows()):
        assert run["metrics.test_accuracy"] == pytest.approx(step["metrics"]["test_accuracy"])
    # label-import's report reaches MLflow: the oracle never disagrees with itself
    assert runs["metrics.annotator_disagreements"].tolist() == [0, 0, 0, 0]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    last = runs.iloc[-1]
    curve = client.get_metric_history(last["run_id"], "test_accuracy")
    assert [point.step for point in curve] == [30]
    assert client.get_run(last["run_id"]).inputs.dataset_inputs[0].dataset.name == "labeled-pool"
    artifacts = {a.path for a in client.list_artifacts(last["run_id"])}
    assert {"evaluate.json", "labeled.csv"} <= artifacts
    assert client.search_logged_models([runs.iloc[0]["experiment_id"]], filter_string=f"source_run_id = '{last['run_id']}'")


def test_repeat_repro_is_a_no_op(project, history):
    lock = (project / "dvc.lock").read_bytes()
    out = dvc(project, "repro")
    assert "Data and pipelines are up to date" in out
    assert (project / "dvc.lock").read_bytes() == lock
    assert len(mlflow_runs(project)) == CYCLES + 1


def test_forced_evaluate_does_not_log_twice(project, history):
    dvc(project, "repro", "--force", "evaluate")
    assert len(mlflow_runs(project)) == CYCLES + 1


def test_git_history_reviews_the_labels(project, history):
    diff = sh(project, "git", "diff", "--unified=0", "cycle-2", "cycle-3", "--", "data/labeled.csv")
    added = [l for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    removed = [l for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    assert len(added) == BUDGET and not removed
    assert all(re.search(r",3,batch-0003-[0-9a-f]{16}\.csv,$", line) for line in added), added
    metrics = dvc(project, "metrics", "diff", "cycle-2", "cycle-3")
    assert "test_accuracy" in metrics and "n_labels" in metrics


def test_ground_truth_never_reaches_training(project, history):
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    for stage in ("label-import", "train", "extract", "select"):
        assert not any("truth" in dep for dep in stages[stage]["deps"]), stage
    import torch

    checkpoint = torch.load(project / "models/model.pt", weights_only=True)
    assert checkpoint["train_ids"] == history[-1]["labeled"]["id"].tolist()


def test_run_cache_restores_never_lose_or_repeat_a_run(project, history):
    """Replaying cycle 2 from its tag and coming back restores train from DVC's run cache;
    evaluate still runs (never restored) and finds each cycle's existing MLflow run."""
    sh(project, "git", "checkout", "--quiet", "cycle-2")
    try:
        back = dvc(project, "repro")
        assert pd.read_csv(project / "data/labeled.csv", dtype=str).equals(history[2]["labeled"])
    finally:
        sh(project, "git", "checkout", "--quiet", "-")
        forward = dvc(project, "repro")  # cycle 3's outputs back, for the tests after this one
    for out in (back, forward):
        assert "Stage 'train' is cached - skipping run" in out
        assert "Running stage 'evaluate'" in out and "already logged as MLflow run" in out
    assert len(mlflow_runs(project)) == CYCLES + 1
    assert pd.read_csv(project / "data/labeled.csv", dtype=str).equals(history[-1]["labeled"])
    assert sh(project, "git", "status", "--porcelain") == ""


def test_a_deleted_batch_stops_the_pipeline(project, history):
    """Deleting the newest batch must not shrink the pool: label-import names it and the fix."""
    [batch] = (project / "data/annotations").glob("batch-0003-*.csv")
    pool = (project / "data/labeled.csv").read_bytes()
    batch.unlink()
    try:
        done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
        assert done.returncode != 0
        assert f"{batch.name}: missing from data/annotations" in done.stderr + done.stdout
        assert f"git checkout -- data/annotations/{batch.name}" in done.stderr + done.stdout
        assert (project / "data/labeled.csv").read_bytes() == pool
    finally:
        sh(project, "git", "checkout", "--", "data/annotations")
    assert "Data and pipelines are up to date" in dvc(project, "repro")


def test_commit_refuses_an_unfinished_cycle(project, history):
    alcycle(project, "oracle")  # batch 4 written, not yet imported
    try:
        with pytest.raises(AssertionError, match="the pipeline is not up to date"):
            alcycle(project, "commit")
        assert "cycle-4" not in sh(project, "git", "tag", "--list")
    finally:
        [batch] = (project / "data/annotations").glob("batch-0004-*.csv")
        batch.unlink()
    with pytest.raises(AssertionError, match="tag cycle-3 exists already"):
        alcycle(project, "commit")
