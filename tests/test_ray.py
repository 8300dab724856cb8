"""A real Ray cluster on loopback (a head and a second node, one CPU each, separate processes):
extract and embed through it equal the local arrays; campaign cells spread over both nodes,
survive the loss of one, and leave DVC only the summary to run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_campaign_e2e import edit_campaign
from test_cycle_e2e import alcycle, dvc, edit_params, git_repo

from alcycle.backbones import build_backbone
from alcycle.checkpoints import save_model
from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.stages import embed, extract, prepare
from alcycle.stages.train import build_classifier

pytestmark = pytest.mark.e2e

CELLS = ["random-plain-0", "entropy-plain-0", "random-plain-1", "entropy-plain-1"]


def start_cluster():
    """A head node and a worker node, each a raylet of its own with one CPU (Ray's own utility)."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # The nodes' workers inherit this environment; a store named in it must not be where the
    # cells log (the runner passes the campaign's own), so name one that cannot work.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = "sqlite:////nonexistent/not-this-store.db"
    try:
        node = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        worker = cluster.add_node(**node)
        cluster.wait_for_nodes()
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return cluster, worker


@pytest.fixture(scope="module")
def cluster():
    cluster, _ = start_cluster()
    yield cluster
    cluster.shutdown()


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _alcycle_on(cluster, project: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "alcycle", *args], cwd=project, capture_output=True, text=True,
                          env=_env(RAY_ADDRESS=cluster.address), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(folder.glob("*.npy"))}


def test_extract_and_embed_on_the_cluster_equal_the_local_arrays(cluster, tmp_path):
    root = git_repo(tmp_path / "digits")
    alcycle(tmp_path, "init", str(root), "--mnist")  # MNIST-5k: 4,000 pool and 1,000 test digits
    edit_params(root, pretrain={"method": "deepcluster"},  # its weights are written below, not trained
                train={"dropout": 0.3, "freeze_backbone": True, "init": "pretrained", "augment": False},
                extract={"mc_samples": 3, "batch_size": 256})
    layout, params = Layout(root), load_params(root / "params.yaml")
    prepare.run(layout, params)
    torch.manual_seed(0)
    layout.pretrained.parent.mkdir(exist_ok=True)
    torch.save({"method": "deepcluster", "backbone": "small_cnn",
                "state_dict": build_backbone("small_cnn", 1).state_dict()}, layout.pretrained)
    unfrozen = dataclasses.replace(params, train=dataclasses.replace(params.train, freeze_backbone=False))
    save_model(layout.model, build_classifier(unfrozen, in_channels=1), [], params.classes)

    # embed: the frozen backbone's features of all 5,000 images.
    _alcycle_on(cluster, root, "embed")
    on_cluster = np.load(layout.features / "embeddings.npy")
    embed.run(layout, params)
    assert on_cluster.shape == (5000, 128)
    np.testing.assert_array_equal(on_cluster, np.load(layout.features / "embeddings.npy"))

    # extract: the whole classifier, with MC-dropout passes, over all 5,000 images.
    edit_params(root, train={"freeze_backbone": False})
    _alcycle_on(cluster, root, "extract")
    remote = _arrays(layout.extracted)
    extract.run(layout, load_params(root / "params.yaml"))
    local = _arrays(layout.extracted)
    assert sorted(local) == ["embeddings.npy", "mc_probs.npy", "probs.npy"] and sorted(remote) == sorted(local)
    assert local["probs.npy"].shape == (5000, 10) and local["mc_probs.npy"].shape == (5000, 3, 10)
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)  # bit for bit


@pytest.fixture
def campaign_project(tmp_path) -> Path:
    """2 strategies × 1 option × 2 seeds, 1 cycle of 4 labels after a 4-label start, on 240 digits."""
    root = git_repo(tmp_path / "digits")
    alcycle(tmp_path, "init", str(root), "--mnist", "--subsample", "240")
    edit_params(root, train={"steps": 20})
    alcycle(root, "campaign", "init", "tiny")
    edit_campaign(root / "campaigns/tiny", strategies=["random", "entropy"], options=["plain"], seeds=[0, 1],
                  initial_budget=4, budget=4, cycles=1)
    return root


def _mlflow_parents(folder: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["campaign-tiny"])
    return runs[runs["tags.mlflow.parentRunId"].isna()]


def _check_cells(folder: Path) -> None:
    for name in CELLS:
        result = json.loads((folder / "cells" / f"{name}.json").read_text())
        assert [p["n_labels"] for p in result["curve"]] == [4, 8]
    parents = _mlflow_parents(folder)
    assert sorted(parents["tags.alcycle.cell"]) == sorted(CELLS)  # one run per cell: none lost, none twice
    assert (parents["status"] == "FINISHED").all()


def test_campaign_cells_run_on_both_nodes_and_dvc_runs_only_the_summary(cluster, campaign_project):
    root, folder = campaign_project, campaign_project / "campaigns/tiny"
    output = _alcycle_on(cluster, root, "campaign", "run", "tiny", "--ray", cluster.address)
    nodes = {line.split("finished on node ")[1].split()[0] for line in output.splitlines() if "finished on node" in line}
    assert len(nodes) == 2, output  # both nodes ran cells
    assert "Running stage 'campaigns/tiny/dvc.yaml:summary'" in output
    assert "Running stage 'campaigns/tiny/dvc.yaml:cell@" not in output  # DVC found every cell done
    assert output.count("dvc.yaml:cell@") == 4 and output.count("didn't change, skipping") >= 4
    _check_cells(folder)
    assert (folder / "summary/metrics.json").exists()
    assert "Data and pipelines are up to date" in dvc(root, "repro", str(folder / "dvc.yaml"))
    # Run again: nothing left to run on the cluster.
    again = _alcycle_on(cluster, root, "campaign", "run", "tiny")
    assert "4 of 4 cells finished; running 0" in again


def test_a_campaign_survives_losing_a_node(campaign_project):
    import mlflow

    root, folder = campaign_project, campaign_project / "campaigns/tiny"
    cluster, worker = start_cluster()
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    try:
        process = subprocess.Popen([sys.executable, "-m", "alcycle", "campaign", "run", "tiny", "--ray",
                                    cluster.address], cwd=root, env=_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        running_there = _wait_for_a_cell_on(worker.node_id, folder, process)
        cluster.remove_node(worker)  # its raylet and workers die, the running cell with them
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output
    finally:
        cluster.shutdown()
    assert output.count("finished on node") == 4, output
    _check_cells(folder)
    # The interrupted cell ran again, from nothing, on the head; its open run was discarded.
    final = _mlflow_parents(folder).set_index("tags.alcycle.cell")
    assert final.loc[running_there, "tags.alcycle.ray_node"] != worker.node_id
    every = mlflow.search_runs(experiment_names=["campaign-tiny"], run_view_type=mlflow.entities.ViewType.ALL)
    discarded = every[(every["tags.alcycle.cell"] == running_there) & (every["status"] == "RUNNING")]
    assert len(discarded) == 1 and discarded["tags.alcycle.ray_node"].iloc[0] == worker.node_id
    assert "Data and pipelines are up to date" in dvc(root, "repro", str(folder / "dvc.yaml"))


def _wait_for_a_cell_on(node: str, folder: Path, process: subprocess.Popen, timeout: float = 300) -> str:
    """The cell whose MLflow run is open on ``node``, once there is one; waits for it."""
    import mlflow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the campaign ended before a cell ran on the worker node"
        if (folder / "mlflow.db").exists():
            try:
                runs = mlflow.search_runs(experiment_names=["campaign-tiny"], filter_string=(
                    f"tags.`alcycle.ray_node` = '{node}' and attributes.status = 'RUNNING'"))
            except Exception:  # the store is being created
                runs = []
            if len(runs):
                return runs["tags.alcycle.cell"].iloc[0]
        time.sleep(0.5)
    raise AssertionError("no cell ran on the worker node")
