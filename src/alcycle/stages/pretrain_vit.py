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

import numpy as np

from alcycle.checkpoints import atomic_torch_save
from alcycle.contract import Stage, cached
from alcycle.layout import Layout
from alcycle.params import Params
from alcycle.compute import FIT_KEYS, is_global_zero
from alcycle.methods import PRETRAIN_VIT
from alcycle.vit import save_vit

_L = Layout()
STAGE = Stage(
    name="pretrain-vit",
    deps=(_L.pixels,),
    params=("seed", "classes", "pretrain_vit", *FIT_KEYS),
    outs=(cached(_L.vit),),
    code=("vit_deepcluster.py", "deepcluster.py", "vit.py", "training.py", "checkpoints.py", "rng.py", "faiss_ops.py", "compute.py"),
)


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.vit``: a transformer and its configuration, or a note that there is none."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    method = params.pretrain_vit.method
    if method == "none":
        saved = {"method": "none", "note": "no vision transformer; set pretrain_vit.method for GEAL"}
        atomic_torch_save(layout.vit, saved)
        return saved
    pixels = np.load(layout.pixels, mmap_mode="r")
    vit = PRETRAIN_VIT.load(method)(layout.root, pixels, params)
    if not is_global_zero():
        return {"method": method}  # another process of a distributed fit: rank zero writes
    return save_vit(layout.vit, vit, method)
