"""End to end: strategies that need more than probabilities, through the real `dvc repro`.

One small project walks through them; each switch of ``select.strategy`` must make the
pipeline produce exactly the inputs the new strategy needs, with no stage naming it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_cycle_e2e import alcycle, dvc, edit_params, git_repo

pytestmark = pytest.mark.e2e

BUDGET = 5


def stages_run(output: str) -> set[str]:
    """Names of the stages a `dvc repro` ran (without the ``path/dvc.yaml:`` of another pipeline)."""
    return {line.split("'")[1].split(":")[-1] for line in output.splitlines() if line.startswith("Running stage '")}


def queries(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data/queries.csv", dtype={"id": str})


def extracted(project: Path) -> set[str]:
    return {p.name for p in (project / "data/extract").iterdir()}


def loss_module(project: Path, fit: bool) -> dict:
    """``train.loss_prediction`` with ``fit`` set (edit_params replaces a whole sub-section)."""
    section = yaml.safe_load((project / "params.yaml").read_text())["train"]["loss_prediction"]
    return {**section, "fit": fit}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Cycle 0 (random cold start) and one oracle cycle, with learning_loss as the strategy."""
    root = git_repo(tmp_path_factory.mktemp("e2e-strategies") / "digits")
    alcycle(root.parent, "init", str(root), "--mnist", "--subsample", "300")
    edit_params(root, train={"steps": 30, "loss_prediction": loss_module(root, True)},
                select={"budget": BUDGET, "strategy": "learning_loss"})
    dvc(root, "repro")
    alcycle(root, "oracle")
    dvc(root, "repro")
    return root


def test_learning_loss_trains_its_module_and_queries_by_it(project):
    # as the fixture left it
    edit_params(project, train={"dropout": 0.0, "loss_prediction": loss_module(project, True)},
                select={"strategy": "learning_loss"})
    dvc(project, "repro")
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["learning_loss"] and len(batch) == BUDGET
    assert extracted(project) == {"probs.npy", "embeddings.npy", "predicted_loss.npy"}
    predicted = np.load(project / "data/extract/predicted_loss.npy")
    manifest = pd.read_csv(project / "data/prepared/manifest.csv", dtype=str)
    scores = dict(zip(manifest["id"], predicted))
    np.testing.assert_allclose(batch["score"], [scores[i] for i in batch["id"]], atol=1e-5)


def test_switching_to_bald_retrains_with_dropout_and_writes_mc_samples(project):
    edit_params(project, train={"dropout": 0.5, "loss_prediction": loss_module(project, False)},
                select={"strategy": "bald"})
    output = dvc(project, "repro")
    assert {"train", "extract", "select"} <= stages_run(output)
    assert not {"prepare", "pretrain", "label-import"} & stages_run(output)
    assert extracted(project) == {"probs.npy", "embeddings.npy", "mc_probs.npy"}
    mc = np.load(project / "data/extract/mc_probs.npy")
    assert mc.shape == (300, 20, 10)
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["bald"] and batch["score"].is_monotonic_decreasing
    labeled = set(pd.read_csv(project / "data/labeled.csv", dtype=str)["id"])
    assert not labeled & set(batch["id"])


def test_switching_to_geal_pretrains_a_vit_once_and_selects_with_it(project):
    edit_params(project, pretrain_vit={"method": "deepcluster", "epochs": 1, "hidden_dim": 24, "layers": 1,
                                       "heads": 2, "mlp_dim": 48, "patch_size": 7},
                select={"strategy": "geal"})
    output = dvc(project, "repro")
    assert {"pretrain-vit", "select"} <= stages_run(output)
    # a strategy that needs nothing new from the model re-runs neither train nor extract
    assert not {"prepare", "pretrain", "label-import", "train", "extract"} & stages_run(output)
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["geal"] and len(batch) == BUDGET
    # a second strategy change leaves the transformer alone
    edit_params(project, select={"strategy": "vaal", "vaal": {"latent_dim": 8, "steps": 20, "batch_size": 16,
                                                              "lr": 0.0005, "kl_weight": 1.0,
                                                              "adversary_weight": 1.0}})
    output = dvc(project, "repro")
    assert stages_run(output) == {"select"}
    assert queries(project)["strategy"].unique().tolist() == ["vaal"]


def test_asal_trains_its_gan_once_and_new_labels_do_not_retrain_it(project):
    edit_params(project, gan={"method": "dcgan", "latent_dim": 16, "width": 8, "steps": 40, "batch_size": 32,
                              "lr": 0.0002, "features": "pca", "pca_dim": 10},
                select={"strategy": "asal", "asal": {"candidates": 4, "steps": 10, "lr": 0.05}})
    output = dvc(project, "repro")
    # the GAN reads no label, so only it and select run: the classifier is the one already trained
    assert stages_run(output) == {"pretrain-gan", "select"}
    assert {p.name for p in (project / "models/gan").iterdir()} == {"gan.pt", "features.npy", "samples.png"}
    assert np.load(project / "models/gan/features.npy").shape == (300, 10)
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["asal"] and len(batch) == BUDGET
    assert batch["score"].is_monotonic_decreasing and (batch["score"] <= np.log(10) + 1e-6).all()
    manifest = pd.read_csv(project / "data/prepared/manifest.csv", dtype=str).set_index("id")
    labeled = set(pd.read_csv(project / "data/labeled.csv", dtype=str)["id"])
    assert not labeled & set(batch["id"]) and (manifest.loc[batch["id"], "split"] == "pool").all()
    gan_digest = (project / "models/gan/gan.pt").read_bytes()
    # a labeled cycle: the classifier changes, the GAN does not
    alcycle(project, "oracle")
    output = dvc(project, "repro")
    assert {"label-import", "train", "extract", "select"} <= stages_run(output)
    assert "pretrain-gan" not in stages_run(output)
    assert (project / "models/gan/gan.pt").read_bytes() == gan_digest
    assert not set(queries(project)["id"]) & set(pd.read_csv(project / "data/labeled.csv", dtype=str)["id"])


def test_a_stream_meets_one_window_a_cycle_within_its_budget_and_replays(project):
    stream = {"window": 40, "order": "random", "manager": "variable_uncertainty", "budget": 0.1, "step": 0.05,
              "random_share": 0.1}
    edit_params(project, select={"strategy": "entropy", "stream": stream})
    dvc(project, "repro")
    manifest = pd.read_csv(project / "data/prepared/manifest.csv", dtype=str)
    pool = manifest.loc[manifest["split"] == "pool", "id"].to_numpy()
    pool = pool[np.random.default_rng(0).permutation(len(pool))].tolist()  # order: random, seed 0
    for _ in range(2):
        states = json.loads((project / "data/stream.json").read_text())
        cycle = max(map(int, states))
        state = states[str(cycle)]
        batch = queries(project)
        assert len(batch) >= 1 and (batch["strategy"] == "stream:variable_uncertainty").all()
        assert (batch["cycle"] == cycle).all()
        # never more than the budget's share of the items met
        assert state["labeled"] <= np.floor(0.1 * state["seen"] + 1e-9)
        # the batch lies in this cycle's window: pool positions from the previous state's to this one's
        start = states.get(str(cycle - 1), {"position": 0})["position"]
        assert set(batch["id"]) <= set(pool[start : state["position"]])
        labeled = set(pd.read_csv(project / "data/labeled.csv", dtype=str)["id"])
        assert not labeled & set(batch["id"])
        # select again in the same cycle (what a replay of the cycle's tag does): the same batch and state
        before = (project / "data/queries.csv").read_bytes(), (project / "data/stream.json").read_bytes()
        alcycle(project, "select")
        assert ((project / "data/queries.csv").read_bytes(), (project / "data/stream.json").read_bytes()) == before
        alcycle(project, "oracle")
        dvc(project, "repro")
    assert len(json.loads((project / "data/stream.json").read_text())) >= 3


def test_bgadl_adds_generated_variants_to_training_but_never_to_the_pool(project):
    section = yaml.safe_load((project / "params.yaml").read_text())["train"]["bgadl"]
    edit_params(project, train={"dropout": 0.5, "bgadl": {**section, "variants": 1, "steps": 10, "width": 8}},
                select={"strategy": "bald", "stream": {**yaml.safe_load((project / "params.yaml").read_text())
                                                       ["select"]["stream"], "window": 0}})
    output = dvc(project, "repro")
    assert {"train", "extract", "select"} <= stages_run(output)
    labeled = pd.read_csv(project / "data/labeled.csv", dtype=str)
    assert f"added {len(labeled)} generated variants of the {len(labeled)} labeled images" in output
    import torch

    model = torch.load(project / "models/model.pt", weights_only=True)
    assert sorted(model["train_ids"]) == sorted(labeled["id"])  # the variants are no pool item
    assert model["fit"]["steps"] == 30
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["bald"] and not set(batch["id"]) & set(labeled["id"])


def test_gaal_asks_synthesised_images_that_enter_and_leave_the_pool_only_through_batches(project):
    section = yaml.safe_load((project / "params.yaml").read_text())["train"]["bgadl"]
    edit_params(project, train={"dropout": 0.0, "bgadl": {**section, "variants": 0}},
                select={"strategy": "gaal", "gaal": {"objective": "margin", "candidates": 2, "steps": 10, "lr": 0.05}})
    dvc(project, "repro")
    batch = queries(project)
    assert batch["strategy"].unique().tolist() == ["gaal"] and len(batch) == BUDGET
    assert batch["id"].str.fullmatch(r"synth-\d{4}-[0-9a-f]{12}").all() and batch["score"].is_monotonic_decreasing
    assert all((project / path).is_file() for path in batch["path"])  # the images the annotator opens
    assert 'value="unrecognisable"' in (project / "data/labelstudio.xml").read_text()
    tasks = json.loads((project / "data/queries.labelstudio.json").read_text())
    assert [t["data"]["alcycle_id"] for t in tasks] == batch["id"].tolist()
    # an annotator answers three of the five: two classes and one "unrecognisable"
    asked = batch["id"].tolist()
    answers = project.parent / "gaal-answers.csv"
    pd.DataFrame({"id": asked[:3], "label": ["3", "unrecognisable", "7"]}).to_csv(answers, index=False)
    alcycle(project, "import", str(answers))
    kept = project / "data/annotations/synthesised"
    assert sorted(p.stem for p in kept.iterdir()) == sorted(asked[:3])
    output = dvc(project, "repro")
    assert {"label-import", "train", "extract", "evaluate", "select"} <= stages_run(output)
    labeled = pd.read_csv(project / "data/labeled.csv", dtype=str).set_index("id")
    assert labeled.loc[asked[:3], "label"].tolist() == ["3", "unrecognisable", "7"]
    assert not set(asked[3:]) & set(labeled.index)  # unanswered: never in the pool
    import torch

    model = torch.load(project / "models/model.pt", weights_only=True)
    assert asked[0] in model["train_ids"] and asked[2] in model["train_ids"]
    assert asked[1] not in model["train_ids"]  # unrecognisable: kept out of training
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert (metrics["n_synthesised"], metrics["n_unrecognisable"]) == (3, 1)
    # the next batch is new images; the kept ones stay, and a removal batch takes one out of the pool
    assert not set(queries(project)["id"]) & set(asked)
    alcycle(project, "label", "remove", asked[2], "--reason", "not a digit after all")
    dvc(project, "repro")
    model = torch.load(project / "models/model.pt", weights_only=True)
    assert asked[2] not in model["train_ids"] and (kept / f"{asked[2]}.png").exists()
    # the oracle answers synthesised images with a reference classifier and says so
    output = alcycle(project, "oracle", "--reference-steps", "60")
    assert "synthesised image(s) answered by a reference classifier trained on all 240 pool truth labels" in output
    stored = sorted((project / "data/annotations").glob("batch-*.csv"))[-1]
    answered = pd.read_csv(stored, dtype=str)
    assert answered["annotator"].unique().tolist() == ["reference-classifier"]
    assert set(answered["label"]) <= {*map(str, range(10)), "unrecognisable"}
    dvc(project, "repro")
    assert set(answered["id"]) <= set(pd.read_csv(project / "data/labeled.csv", dtype=str)["id"])
    # git keeps exactly the pool, the batches with their images and the cycle's files
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project, check=True,
                            capture_output=True, text=True).stdout
    assert "data/.oracle" not in status and "models/" not in status
