"""model.pt: what it stores, and files written before the models split still load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from alcycle.checkpoints import load_model, save_model
from alcycle.stages.train import build_classifier

# The flat hyperparameters alcycle's model.pt held before the split (the old Classifier's arguments).
OLD_HPARAMS = {"backbone": "small_cnn", "in_channels": 1, "num_classes": 10, "lr": 0.05, "momentum": 0.9,
               "weight_decay": 0.0005, "steps": 300, "augment": True, "seed": 0, "freeze_backbone": False,
               "dropout": 0.25, "loss_prediction": True, "loss_weight": 1.0, "loss_margin": 1.0,
               "loss_detach_after": 0.6}


def learning_loss_model(params):
    loss = dataclasses.replace(params.train.loss_prediction, fit=True)
    p = dataclasses.replace(params, select=dataclasses.replace(params.select, strategy="learning_loss"),
                            train=dataclasses.replace(params.train, dropout=0.25, loss_prediction=loss))
    return build_classifier(p, in_channels=1).eval()


def test_the_payload_names_the_backbone_beside_the_classifier_settings(tmp_path, params):
    model = learning_loss_model(params)
    save_model(tmp_path / "model.pt", model, ["a"], params.classes)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["backbone"] == {"name": "small_cnn", "in_channels": 1}
    assert payload["classifier"] == {k: v for k, v in OLD_HPARAMS.items() if k not in ("backbone", "in_channels")}


def test_a_model_pt_in_the_old_shape_still_loads(tmp_path, params):
    model = learning_loss_model(params)
    torch.save({"hparams": OLD_HPARAMS, "state_dict": model.state_dict(), "classes": list(params.classes),
                "train_ids": ["x", "y"]}, tmp_path / "model.pt")
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["train_ids"] == ["x", "y"] and meta["classes"] == list(params.classes)
    assert loaded.settings == model.settings and loaded.loss_module is not None
    assert loaded.hparams.dropout == 0.25 and loaded.hparams.loss_prediction
    x = torch.randint(0, 255, (3, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(model(x), loaded(x))


def test_a_backbone_built_outside_the_registry_is_refused(tmp_path, params):
    model = learning_loss_model(params)
    del model.backbone.spec
    with pytest.raises(TypeError, match="build_backbone"):
        save_model(tmp_path / "model.pt", model, [], params.classes)
