"""pretrain: backbone weights learned once from every image, with no label at all.

``pretrain.method``: ``deepcluster`` trains a ``train.backbone`` with DeepCluster
(``alcycle.deepcluster``), ``simclr`` with SimCLR (``alcycle.simclr``); ``weights`` loads a local file of weights (a torchvision or
self-supervised checkpoint; a relative path is taken from the project folder); ``none``
writes a note that there are none. Nothing is downloaded.

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging

import numpy as np

from alcycle.checkpoints import atomic_torch_save
from alcycle.methods import PRETRAIN
from alcycle.contract import Stage, cached
from alcycle.compute import FIT_KEYS, is_global_zero
from alcycle.layout import Layout
from alcycle.params import Params

_L = Layout()
STAGE = Stage(
    name="pretrain",
    # The pixels only: new labels never re-run it.
    deps=(_L.pixels,),
    params=("seed", "classes", "pretrain", "train.backbone", "train.momentum", "train.weight_decay", *FIT_KEYS),
    outs=(cached(_L.pretrained),),
    code=("deepcluster.py", "simclr.py", "views.py", "backbones", "classifier.py", "augment.py", "loss_prediction.py",
          "inference.py", "training.py", "checkpoints.py", "rng.py", "faiss_ops.py", "compute.py"),
)


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.pretrained``: the backbone's weights, or a note that there are none."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    method = params.pretrain.method
    saved: dict = {"method": method, "backbone": params.train.backbone}
    learn = PRETRAIN.load(method)
    if learn is not None:
        backbone = learn(layout.root, np.load(layout.pixels, mmap_mode="r"), params)
        saved["state_dict"] = backbone.state_dict()
    if not is_global_zero():
        return saved  # another process of a distributed fit: rank zero writes
    atomic_torch_save(layout.pretrained, saved)
    return saved
