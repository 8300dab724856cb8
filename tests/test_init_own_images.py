"""`alcycle init` on a user's own image folder, then the real pipeline on it."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_cycle_e2e import alcycle, dvc, edit_params, git_repo, sh

from alcycle.params import load_params

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 210)}


def write_images(folder, per_class: int = 12, seed: int = 0) -> None:
    """Noisy solid-colour photos of different sizes, one class folder per colour."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(20, 60, size=2)
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}")


@pytest.mark.slow
def test_init_suggests_params_from_the_images(tmp_path):
    write_images(tmp_path / "photos")
    alcycle(tmp_path, "init", str(git_repo(tmp_path / "proj")), "--images", str(tmp_path / "photos"))
    params = load_params(tmp_path / "proj/params.yaml")
    assert params.classes == ("blue", "green", "red")
    assert params.prepare.source == "folder" and params.prepare.channels == 3
    assert 20 <= params.prepare.image_size <= 60
    stages = yaml.safe_load((tmp_path / "proj/dvc.yaml").read_text())["stages"]
    assert stages["prepare"]["deps"] == [str((tmp_path / "photos").resolve())]
    assert (tmp_path / "proj/.dvc").is_dir() and (tmp_path / "proj/.git").is_dir()


def test_init_refuses_a_used_folder_and_ambiguous_arguments(tmp_path):
    alcycle(tmp_path, "init", str(git_repo(tmp_path / "proj")), "--mnist")
    with pytest.raises(AssertionError, match="exists already"):
        alcycle(tmp_path, "init", str(tmp_path / "proj"), "--mnist")
    with pytest.raises(AssertionError, match="exactly one of --images PATH or --mnist"):
        alcycle(tmp_path, "init", str(tmp_path / "other"))


@pytest.mark.e2e
def test_a_cycle_on_own_images(tmp_path):
    write_images(tmp_path / "photos")
    project = git_repo(tmp_path / "proj")
    alcycle(tmp_path, "init", str(project), "--images", str(tmp_path / "photos"))
    assert sh(project, "git", "status", "--porcelain", "-uall") == ""
    edit_params(project, train={"steps": 30}, select={"budget": 3}, prepare={"image_size": 16})
    dvc(project, "repro")
    alcycle(project, "oracle")
    dvc(project, "repro")
    labeled = pd.read_csv(project / "data/labeled.csv", dtype=str)
    manifest = pd.read_csv(project / "data/prepared/manifest.csv", dtype=str)
    assert len(labeled) == 3 and set(labeled["label"]) <= set(COLOURS)
    assert manifest["id"].str.fullmatch(r"img-[0-9a-f]{12}").all()
    assert (manifest["split"] == "test").sum() == round(0.2 * 36)
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert metrics["n_labels"] == 3 and metrics["test_items"] == 7
    pixels = np.load(project / "data/prepared/pixels.npy")
    assert pixels.shape == (36, 3, 16, 16)
    assert "Data and pipelines are up to date" in dvc(project, "repro")
    changed = {line[3:] for line in sh(project, "git", "status", "--porcelain", "-uall").splitlines()}
    batches = {name for name in changed if name.startswith("data/annotations/")}
    assert len(batches) == 1 and re.fullmatch(r"data/annotations/batch-0001-[0-9a-f]{16}\.csv", next(iter(batches)))
    # select writes the queried images beside the labeling-tool files that point at them.
    images = {name for name in changed if name.startswith("data/queries/")}
    queries = pd.read_csv(project / "data/queries.csv", dtype=str)
    assert images == set(queries["path"]) and len(images) == 3
    assert changed - batches - images == {
                       "params.yaml", "data/labeled.csv", "data/queries.csv", "metrics/label_import.json",
                       "data/queries.labelstudio.json", "data/queries.cvat.txt", "data/labelstudio.xml", "dvc.lock",
                       "metrics/evaluate.json", "metrics/mlflow_run.json", "data/stream.json"}
    # Committed, and after the README's `dvc plots show`, git has nothing left to report.
    assert "tagged cycle-1" in alcycle(project, "commit")
    assert sh(project, "git", "status", "--porcelain", "-uall") == ""
    assert "dvc_plots/index.html" in dvc(project, "plots", "show")
    assert sh(project, "git", "status", "--porcelain", "-uall") == ""
