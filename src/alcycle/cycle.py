"""Driving whole cycles: ``dvc repro``, committing and tagging a finished cycle, simulation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from alcycle.errors import AlcycleError
from alcycle.layout import Layout
from alcycle.oracle import answer
from alcycle.params import Params, load_params
from alcycle.pipeline import committed_paths
from alcycle.pool import cycle_number


class CycleError(AlcycleError, RuntimeError):
    """A cycle cannot be committed or run."""


def _run(cmd: list[str], root: Path) -> subprocess.CompletedProcess:
    # Stage commands call `alcycle`, which lives next to this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)


def dvc_repro(root: Path) -> str:
    done = _run([sys.executable, "-m", "dvc", "repro"], root)
    if done.returncode != 0:
        raise CycleError(f"dvc repro failed in {root}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _git(root: Path, *args: str) -> str:
    done = _run(["git", *args], root)
    if done.returncode != 0:
        raise CycleError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_cycle(layout: Layout) -> str:
    """Commit the finished cycle's files and tag the commit ``cycle-N``; returns the tag."""
    root = layout.root
    tag = f"cycle-{cycle_number(layout.annotations)}"
    if _git(root, "tag", "--list", tag):
        raise CycleError(f"tag {tag} exists already; label the queries and run `dvc repro` to finish a new cycle")
    status = _run([sys.executable, "-m", "dvc", "status", "--quiet"], root)
    if status.returncode != 0:
        raise CycleError("the pipeline is not up to date (`dvc status` lists changes); run `dvc repro` first")
    paths = [str(p.relative_to(root)) for p in committed_paths(layout) if p.exists()]
    ignores = [str(p.relative_to(root)) for p in root.glob("*/.gitignore")]
    _git(root, "add", "--", *paths, *ignores)
    _git(root, "commit", "--quiet", "--allow-empty", "-m", f"{tag}: {_summary(layout)}")
    _git(root, "tag", tag)
    return tag


def _summary(layout: Layout) -> str:
    metrics = json.loads(layout.metrics.read_text()) if layout.metrics.exists() else {}
    accuracy = metrics.get("test_accuracy")
    shown = f", test accuracy {accuracy:.4f}" if accuracy is not None else ""
    return f"{metrics.get('n_labels', 0)} labels{shown}"


def describe(params: Params) -> str:
    """One line naming the choices a run of the cycle makes (what ``make demo`` uses)."""
    train = params.train
    start = f"from {params.pretrain.method} pretraining" if train.init == "pretrained" else "from scratch"
    unlabeled = "" if train.semi_supervised == "none" else f", unlabeled pool: {train.semi_supervised}"
    frozen = " (frozen backbone)" if train.freeze_backbone else ""
    return (f"using params.yaml: {params.prepare.source} data; train {train.backbone} {start}{frozen}{unlabeled}, "
            f"{train.steps} steps; select {params.select.strategy} (first batch: {params.select.cold_start}), "
            f"{params.select.budget} labels per cycle")


def simulate(layout: Layout, cycles: int, commit: bool, echo: Callable[[str], None]) -> list[dict]:
    """Run ``cycles`` oracle-labelled cycles (oracle, then ``dvc repro``); returns each cycle's metrics."""
    echo(describe(load_params(layout.params)))
    cycle = cycle_number(layout.annotations)
    echo(f"bringing the pipeline up to date (cycle {cycle}); the first run also prepares the data")
    dvc_repro(layout.root)
    if commit and not _git(layout.root, "tag", "--list", f"cycle-{cycle}"):
        commit_cycle(layout)
    curve = []
    for _ in range(cycles):
        batch = answer(layout)
        echo(f"oracle wrote {batch.relative_to(layout.root)}; running dvc repro")
        dvc_repro(layout.root)
        if commit:
            echo(f"committed and tagged {commit_cycle(layout)}")
        metrics = json.loads(layout.metrics.read_text())
        curve.append(metrics)
        echo(f"cycle {metrics['cycle']}: {metrics['n_labels']} labels, test accuracy {metrics.get('test_accuracy', float('nan')):.4f}")
    return curve
