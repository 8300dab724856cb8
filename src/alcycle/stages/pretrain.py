"""pretrain: backbone weights learned once from every image, with no label at all.

``pretrain.method``: ``deepcluster`` trains a ``train.backbone`` with DeepCluster
(``alcycle.deepcluster``); ``weights`` loads a local file of weights (a torchvision or
self-supervised checkpoint; a relative path is taken from the project folder); ``none``
writes a note that there are none. Nothing is downloaded.

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alcycle.backbones import build_backbone
from alcycle.checkpoints import atomic_torch_save, load_backbone_weights
from alcycle.deepcluster import pretrain_backbone, weights_file
from alcycle.layout import Layout
from alcycle.params import Params


def from_file(path: Path, params: Params, in_channels: int) -> nn.Module:
    """A ``train.backbone`` holding the matching tensors of a local weights file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    backbone = build_backbone(params.train.backbone, in_channels)
    skipped = load_backbone_weights(backbone, state)
    if skipped:
        print(f"pretrain: {path}: {len(skipped)} tensor(s) did not fit the backbone and were skipped: "
              f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")
    return backbone


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.pretrained``: the backbone's weights, or a note that there are none."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    method = params.pretrain.method
    saved: dict = {"method": method, "backbone": params.train.backbone}
    if method != "none":
        pixels = np.load(layout.pixels, mmap_mode="r")
        if method == "deepcluster":
            backbone = pretrain_backbone(pixels, params)
        else:
            path = weights_file(layout.root, params.pretrain.weights, "pretrain.weights")
            backbone = from_file(path, params, pixels.shape[1])
        saved["state_dict"] = backbone.state_dict()
    atomic_torch_save(layout.pretrained, saved)
    return saved
