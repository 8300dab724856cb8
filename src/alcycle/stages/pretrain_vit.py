"""pretrain-vit: the vision transformer GEAL selects with, learned without labels or loaded.

``pretrain_vit.method``:

- ``none``: writes a note that there is no transformer (DVC needs the output); GEAL refuses it.
- ``weights``: a local torchvision ``VisionTransformer`` state dict (ImageNet, or a DINO
  checkpoint renamed to torchvision's keys); every encoder tensor must fit the sizes in
  ``pretrain_vit``. A relative path is taken from the project folder. Nothing is downloaded.
- ``deepcluster``: DeepCluster on every image, as ``pretrain`` does for the CNN
  (``alcycle.vit_deepcluster``).

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from alcycle.checkpoints import atomic_torch_save
from alcycle.deepcluster import weights_file
from alcycle.layout import Layout
from alcycle.params import Params, ParamsError, PretrainVitParams
from alcycle.vit import Vit, build_vit, load_weights, save_vit
from alcycle.vit_deepcluster import pretrain_vit


def from_file(path: Path, vit_params: PretrainVitParams, image_size: int, in_channels: int) -> Vit:
    """A ``Vit`` of ``pretrain_vit``'s sizes holding a torchvision state dict's tensors, all of them."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    vit = build_vit(vit_params, image_size=image_size, in_channels=in_channels)
    load_weights(vit, state, str(path))
    return vit


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.vit``: a transformer and its configuration, or a note that there is none."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    method = params.pretrain_vit.method
    if method == "none":
        saved = {"method": "none", "note": "no vision transformer; set pretrain_vit.method for GEAL"}
        atomic_torch_save(layout.vit, saved)
        return saved
    pixels = np.load(layout.pixels, mmap_mode="r")
    if method == "deepcluster":
        vit = pretrain_vit(pixels, params)
    elif method == "weights":
        path = weights_file(layout.root, params.pretrain_vit.weights, "pretrain_vit.weights")
        vit = from_file(path, params.pretrain_vit, image_size=pixels.shape[-1], in_channels=pixels.shape[1])
    else:
        raise ParamsError(f"pretrain_vit.method is {method!r}; choose one of: none, deepcluster, weights")
    return save_vit(layout.vit, vit, method)
