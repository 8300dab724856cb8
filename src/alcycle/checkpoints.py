"""Checkpoint I/O: the classifier's ``model.pt``, backbone weights from other files, atomic saves.

``model.pt`` holds ``backbone`` (its registry name and input channels), ``classifier``
(``ClassifierSettings.hparams()``), ``state_dict``, ``classes`` and ``train_ids``. Files
written before the split hold one flat ``hparams`` dict instead; they still load.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alcycle.backbones import BackboneSpec, build_backbone
from alcycle.classifier import Classifier, ClassifierSettings
from alcycle.errors import BadFileError, MissingInputError
from alcycle.fileio import atomic_write_bytes
from alcycle.params import Params


def atomic_torch_save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a reader never sees half a file."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def save_model(path: Path, model: Classifier, train_ids: list[str], classes: tuple[str, ...],
               fitted: dict[str, int] | None = None) -> None:
    """Write how to rebuild the model, its weights, the class names, the ids it was trained on and
    ``fitted``: the optimiser steps of its fit and how many processes took them."""
    spec = getattr(model.backbone, "spec", None)
    if not isinstance(spec, BackboneSpec):
        raise TypeError("the classifier's backbone was not built by alcycle.backbones.build_backbone; "
                        "a checkpoint could not rebuild it")
    payload = {
        "backbone": asdict(spec),
        "classifier": model.settings.hparams(),
        "state_dict": model.state_dict(),
        "classes": list(classes),
        "train_ids": list(train_ids),
        "fit": dict(fitted or {}),
    }
    atomic_torch_save(path, payload)


def load_model(path: Path) -> tuple[Classifier, dict[str, Any]]:
    """The classifier in eval mode and the stored metadata (classes, train_ids, backbone, classifier)."""
    payload = _current_shape(torch.load(path, map_location="cpu", weights_only=True))
    spec = BackboneSpec(**payload["backbone"])
    model = Classifier(build_backbone(spec.name, spec.in_channels),
                       ClassifierSettings.from_hparams(payload["classifier"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def _current_shape(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload written before the split (one flat ``hparams``, backbone name inside) in today's shape."""
    if "hparams" not in payload:
        return payload
    payload = dict(payload)
    classifier = dict(payload.pop("hparams"))
    payload["backbone"] = {"name": classifier.pop("backbone"), "in_channels": classifier.pop("in_channels")}
    payload["classifier"] = classifier
    return payload


def load_backbone_weights(backbone: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match into ``backbone``; returns the names skipped.

    Accepts a plain state dict or one whose keys carry a ``backbone.`` or ``module.``
    prefix, so torchvision checkpoints and alcycle's own load alike; an adapted stem
    or a classifier layer of another shape is skipped, never forced.
    """
    own = backbone.state_dict()
    loaded, skipped = {}, []
    for name, tensor in state.items():
        key = name.removeprefix("module.").removeprefix("backbone.")
        if key in own and own[key].shape == tensor.shape:
            loaded[key] = tensor
        else:
            skipped.append(name)
    if not loaded:
        raise BadFileError(f"no tensor of the weights matches the backbone (first keys: {list(state)[:3]})")
    backbone.load_state_dict({**own, **loaded})
    return skipped


def weights_file(root: Path, weights: str, key: str) -> Path:
    """A local weights file named in params: a relative path is taken from the project folder."""
    path = Path(weights)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        raise MissingInputError(f"{key}: {path} not found")
    return path


def backbone_from_weights(root: Path, pixels: np.ndarray, params: Params) -> nn.Module:
    """``pretrain.method: weights`` (``methods.PRETRAIN``): a ``train.backbone`` holding the
    matching tensors of the local file ``pretrain.weights`` (relative to ``root``)."""
    path = weights_file(root, params.pretrain.weights, "pretrain.weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    backbone = build_backbone(params.train.backbone, pixels.shape[1])
    skipped = load_backbone_weights(backbone, state)
    if skipped:
        print(f"pretrain: {path}: {len(skipped)} tensor(s) did not fit the backbone and were skipped: "
              f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")
    return backbone
