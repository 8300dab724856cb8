"""A campaign cell whose recipe freezes the backbone runs embed once, then trains heads only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import toy_digits, write_params
from test_frozen import tiny_frozen_project

from alcycle.campaign.cell import run_cell
from alcycle.campaign.definition import Campaign, Cell
from alcycle.checkpoints import atomic_torch_save
from alcycle.layout import Layout
from alcycle.params import load_params

pytestmark = pytest.mark.slow  # trains a few heads and logs to a real MLflow store

FROZEN = {"pretrain.method": "weights", "pretrain.weights": "unused.pt", "train.init": "pretrained",
          "train.freeze_backbone": True, "train.augment": False}


def campaign_folder(root: Path) -> Layout:
    """A campaign folder as `alcycle campaign init` + its prepare and pretrain stages leave it."""
    params_path = write_params(root, **{"  steps: 300": "  steps: 5", "  budget: 20": "  budget: 4"})
    layout = tiny_frozen_project(root, load_params(params_path))
    layout.labeled.unlink()  # a campaign's own folder holds no labels; each cell starts from none
    _, targets = toy_digits(n=30)
    layout.truth.parent.mkdir(parents=True)
    ids = pd.read_csv(layout.manifest)["id"]
    pd.DataFrame({"id": ids, "label": [str(t) for t in targets]}).to_csv(layout.truth, index=False)
    atomic_torch_save(layout.vit, {"method": "none", "note": "no vision transformer"})
    return layout


def test_a_frozen_cell_embeds_once_and_learns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    layout = campaign_folder(tmp_path)
    campaign = Campaign(name="frozen", strategies=("random",), options=("frozen",), seeds=(0,),
                        initial_budget=4, budget=(4, 6), cycles=2,  # a budget per cycle
                        recipes={"strategies": {"random": {}}, "options": {"frozen": FROZEN}},
                        source=tmp_path / "campaign.yaml")
    params = campaign.cell_params(yaml.safe_load(layout.params.read_text()), Cell("random", "frozen", 0))
    assert params.train.freeze_backbone and not params.train.augment

    result = run_cell(tmp_path, campaign, Cell("random", "frozen", 0), echo=lambda line: None)

    assert [point["n_labels"] for point in result["curve"]] == [4, 8, 14]
    assert all(0.0 <= point["test_accuracy"] <= 1.0 for point in result["curve"])
    assert [len(batch) for batch in result["picks"]] == [4, 4, 6]
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # scratch removed
