"""pretrain: backbone weights learned once from every image, with no label at all.

DeepCluster (Caron et al. 2018), as Siméoni et al. use it: each epoch clusters the
current features with k-means and trains one pass on the cluster ids, sampling
clusters uniformly with a freshly initialised head. Or: a local file of weights (a
torchvision or self-supervised checkpoint). Nothing is downloaded.

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from alcycle.faiss_ops import kmeans, l2_normalise, pca_whiten
from alcycle.layout import Layout
from alcycle.models import Classifier, atomic_torch_save, build_backbone, lightning_fit, load_backbone_weights, predict
from alcycle.params import Params


def cluster_targets(features: np.ndarray, k: int, pca: int, iterations: int, seed: int) -> np.ndarray:
    """DeepCluster's pseudo-targets: (optional whitened PCA), L2 normalisation, k-means ids (N,)."""
    if pca:
        features = pca_whiten(features, pca)
    return kmeans(l2_normalise(features), k, iterations, seed)[1]


def uniform_over_clusters(assignment: np.ndarray, k: int, seed: int) -> WeightedRandomSampler:
    """Draw as many items as there are, each cluster equally often (big clusters do not dominate)."""
    sizes = np.bincount(assignment, minlength=k)
    weights = 1.0 / sizes[assignment]
    return WeightedRandomSampler(torch.from_numpy(weights), num_samples=len(assignment), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))


def deepcluster(pixels: np.ndarray, params: Params) -> nn.Module:
    """Train a ``train.backbone`` on uint8 ``pixels`` (N, C, H, W) with DeepCluster; returns the backbone."""
    pp = params.pretrain
    k = pp.clusters or 5 * len(params.classes)
    steps = -(-len(pixels) // pp.batch_size)
    pl.seed_everything(params.seed, verbose=False)
    model = Classifier(backbone=params.train.backbone, in_channels=pixels.shape[1], num_classes=k, lr=pp.lr,
                       momentum=params.train.momentum, weight_decay=params.train.weight_decay, steps=steps,
                       augment=True, seed=params.seed)
    images = torch.from_numpy(np.array(pixels))
    for epoch in range(pp.epochs):
        _, features = predict(model, pixels, 500)
        assignment = cluster_targets(features, k, pp.pca, pp.kmeans_iterations, params.seed + epoch)
        # Cluster ids are permuted from one epoch to the next: the old head means nothing now.
        model.head = nn.Linear(model.backbone.out_dim, k)
        data = TensorDataset(images, torch.from_numpy(assignment))
        loader = DataLoader(data, batch_size=pp.batch_size,
                            sampler=uniform_over_clusters(assignment, k, params.seed + epoch))
        lightning_fit(model, {"labeled": loader})
        print(f"pretrain: DeepCluster epoch {epoch + 1}/{pp.epochs}, "
              f"{len(np.unique(assignment))} clusters in use, largest {np.bincount(assignment).max()}")
    return model.backbone


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
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    method = params.pretrain.method
    saved: dict = {"method": method, "backbone": params.train.backbone}
    if method != "none":
        pixels = np.load(layout.pixels, mmap_mode="r")
        backbone = (deepcluster(pixels, params) if method == "deepcluster"
                    else from_file(Path(params.pretrain.weights), params, pixels.shape[1]))
        saved["state_dict"] = backbone.state_dict()
    atomic_torch_save(layout.pretrained, saved)
    return saved
