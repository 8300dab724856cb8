"""The training methods ``params.yaml`` chooses by name, each imported when it is used.

This module imports no torch, so reading ``params.yaml`` checks the names against these
registries (``params.py``); the stages load the chosen method from them.

- ``SEMI_SUPERVISED`` (``train.semi_supervised``): ``(train: TrainParams, num_classes, cycle)
  -> semi.Method``, whose ``callback`` gives a training run the pool's pseudo-labels: a
  ``semi.Schedule`` (a pseudo-labeller and how often it refreshes) or FixMatch's views.
- ``PRETRAIN`` (``pretrain.method``) and ``PRETRAIN_VIT`` (``pretrain_vit.method``):
  ``(root: Path, pixels: np.ndarray, params: Params) -> nn.Module``, the backbone (or
  transformer) learned or loaded; ``root`` is where a relative weights path starts.

``none`` needs no code: the stage writes a note that there is nothing.
"""

from __future__ import annotations

from alcycle.registry import Registry

SEMI_SUPERVISED = Registry("semi-supervised method", {
    "none": None,
    "label_propagation": "alcycle.semi:label_propagation",
    "ceal": "alcycle.semi:ceal",
    "fixmatch": "alcycle.fixmatch:fixmatch",
})
PRETRAIN = Registry("pretrain method", {
    "none": None,
    "deepcluster": "alcycle.deepcluster:deepcluster_backbone",
    "simclr": "alcycle.simclr:simclr_backbone",
    "weights": "alcycle.checkpoints:backbone_from_weights",
})
PRETRAIN_VIT = Registry("pretrain_vit method", {
    "none": None,
    "deepcluster": "alcycle.vit_deepcluster:deepcluster_vit",
    "weights": "alcycle.vit:vit_from_weights",
})
