"""End to end: frozen-feature mode under the real `dvc repro`; new labels never re-run embed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_cycle_e2e import alcycle, dvc, edit_params, git_repo

from alcycle.backbones import build_backbone

pytestmark = pytest.mark.e2e


def test_a_second_cycle_re_runs_the_head_stages_but_not_embed(tmp_path):
    root = git_repo(tmp_path / "frozen")
    alcycle(tmp_path, "init", str(root), "--mnist", "--subsample", "300")
    torch.manual_seed(0)  # weights of the user's own "pretrained" backbone
    torch.save(build_backbone("small_cnn", 1).state_dict(), root / "weights.pt")
    edit_params(root, pretrain={"method": "weights", "weights": "weights.pt"},
                train={"init": "pretrained", "freeze_backbone": True, "augment": False, "steps": 20},
                select={"budget": 10, "strategy": "coreset"})
    first = dvc(root, "repro")
    assert "Running stage 'embed'" in first
    embeddings = np.load(root / "data/features/embeddings.npy", mmap_mode="r")
    assert embeddings.shape == (300, 128) and embeddings.dtype == np.float32
    alcycle(root, "oracle")
    second = dvc(root, "repro")
    for stage in ("label-import", "train", "extract", "evaluate", "select"):
        assert f"Running stage '{stage}'" in second, second
    assert "Running stage 'embed'" not in second and "Stage 'embed' didn't change" in second
    assert sorted(p.name for p in (root / "data/extract").iterdir()) == ["probs.npy"]  # no second copy
    assert "Data and pipelines are up to date" in dvc(root, "repro")
