"""Lightning DDP on CPU processes (gloo): under the real `dvc repro`, and two nodes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cycle_e2e import alcycle, dvc, edit_params, git_repo, mlflow_runs

from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.stages import evaluate, extract

pytestmark = pytest.mark.e2e

STEPS = 60
ONE_PROCESS = {"devices": 1, "num_nodes": 1, "strategy": "auto"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    # One thread a process: two processes on a small machine would otherwise wait on each other's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _train(root: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "alcycle", "train"], cwd=root, env=_env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def _fit_record(root: Path) -> dict:
    return torch.load(root / "models/model.pt", weights_only=True)["fit"]


def _test_accuracy(root: Path) -> float:
    layout, params = Layout(root), load_params(root / "params.yaml")
    extract.run(layout, params)
    return evaluate.run(layout, params, log_to_mlflow=False)["test_accuracy"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two cycles of `dvc repro` whose training runs as two DDP processes (cycle 0 has no labels to fit)."""
    root = git_repo(tmp_path_factory.mktemp("ddp") / "digits")
    alcycle(root.parent, "init", str(root), "--mnist", "--subsample", "600")
    edit_params(root, pretrain={"method": "none"},
                train={"steps": STEPS, "init": "scratch", "semi_supervised": "none"},
                select={"budget": 100, "strategy": "entropy", "cold_start": "random"},
                compute={"devices": 2, "strategy": "ddp"})
    dvc(root, "repro")
    alcycle(root, "oracle")
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=_env(), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_ddp_takes_the_configured_steps_on_two_processes_and_logs_once(project):
    assert _fit_record(project) == {"steps": STEPS, "processes": 2}
    runs = mlflow_runs(project)
    assert sorted(runs["params.cycle"].astype(int)) == [0, 1]  # one run per cycle, none from rank 1
    assert sorted(p.name for p in (project / "models").iterdir() if not p.name.startswith(".")) == [
        "gan", "model.pt", "pretrained.pt", "pseudo_labels.csv", "vit.pt"]  # no second or half-written checkpoint


def test_ddp_accuracy_is_within_noise_of_one_process(project):
    two = _test_accuracy(project)
    edit_params(project, compute=ONE_PROCESS)
    try:
        _finish(_train(project))
        assert _fit_record(project) == {"steps": STEPS, "processes": 1}
        one = _test_accuracy(project)
    finally:
        edit_params(project, compute={"devices": 2, "num_nodes": 1, "strategy": "ddp"})
    # 120 test digits, 100 labels: one process reaches about 0.92; a step of two processes sees twice the images.
    assert one > 0.8 and abs(two - one) <= 0.06, (one, two)


def test_two_nodes_on_loopback_train_one_model(project):
    edit_params(project, compute={"devices": 1, "num_nodes": 2, "strategy": "ddp"})
    (project / "models/model.pt").unlink()
    try:
        rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        second = _train(project, NODE_RANK="1", **rendezvous)
        first = _train(project, NODE_RANK="0", **rendezvous)
        output = _finish(first) + _finish(second)
    finally:
        edit_params(project, compute={"devices": 2, "num_nodes": 1, "strategy": "ddp"})
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert _fit_record(project) == {"steps": STEPS, "processes": 2}
    assert _test_accuracy(project) > 0.8


def test_a_later_rank_writes_nothing(project, tmp_path, monkeypatch):
    """Node 1 of a run with nothing to fit (no labels yet) would otherwise write beside node 0."""
    from alcycle.stages import train

    layout = Layout(tmp_path)
    for name in ("data", "models"):
        (tmp_path / name).mkdir()
    for path in (Layout(project).manifest.parent, Layout(project).annotations):
        (layout.root / path.relative_to(project)).symlink_to(path)
    header = (project / "data/labeled.csv").read_text().splitlines()[0]
    layout.labeled.write_text(header + "\n")  # nothing labeled: no fit joins the processes
    monkeypatch.setenv("NODE_RANK", "1")
    train.run(layout, load_params(project / "params.yaml"))
    assert not layout.model.exists() and not layout.pseudo_labels.exists()
    monkeypatch.setenv("NODE_RANK", "0")
    train.run(layout, load_params(project / "params.yaml"))
    assert layout.model.exists() and _fit_record(tmp_path) == {"steps": 0, "processes": 1}
