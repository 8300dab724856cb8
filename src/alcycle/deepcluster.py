"""DeepCluster (Caron et al. 2018): backbone weights learned from every image, with no label.

As Siméoni et al. use it: each epoch clusters the current features with k-means and
trains one pass on the cluster ids, sampling clusters uniformly, with a freshly
initialised head. One loop (``fit_clusters``) serves the ``pretrain`` CNN and the
``pretrain-vit`` transformer (``vit_deepcluster.py``), with one randomness policy:
everything is drawn from ``seed`` (epoch ``e`` from ``seed + e``) through explicit
generators, and weight initialisation, which torch draws from its global generator,
runs under ``rng.seeded``, which leaves that generator as it was (the policy: ``rng.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from alcycle import rng
from alcycle.backbones import build_backbone
from alcycle.classifier import Classifier, ClassifierSettings, Optimisation
from alcycle.compute import PerProcess
from alcycle.faiss_ops import kmeans, l2_normalise, pca_whiten
from alcycle.inference import predict
from alcycle.params import ComputeParams, Params, ParamsError
from alcycle.training import lightning_fit


@dataclass(frozen=True)
class Rounds:
    """What one DeepCluster run does each epoch: cluster into ``clusters`` and train one pass."""

    epochs: int
    clusters: int
    batch_size: int
    pca: int  # 0: no PCA before k-means
    kmeans_iterations: int
    seed: int
    compute: ComputeParams | None = None  # where each epoch's fit runs (None: one CPU process)


def cluster_count(clusters: int, classes: int, images: int, key: str) -> int:
    """``clusters``, or five per class when 0; k-means cannot make more clusters than images."""
    k = clusters or 5 * classes
    if k > images:
        raise ParamsError(f"{key}: {k} clusters for {images} images; set fewer")
    return k


def cluster_targets(features: np.ndarray, k: int, pca: int, iterations: int, seed: int) -> np.ndarray:
    """DeepCluster's pseudo-targets: (optional whitened PCA), L2 normalisation, k-means ids (N,)."""
    if pca:
        features = pca_whiten(features, pca)
    return kmeans(l2_normalise(features), k, iterations, seed)[1]


def uniform_over_clusters(assignment: np.ndarray, k: int, seed: int, passes: int = 1) -> WeightedRandomSampler:
    """Draw ``passes`` × as many items as there are, each cluster equally often (big clusters do not dominate)."""
    sizes = np.bincount(assignment, minlength=k)
    weights = 1.0 / sizes[assignment]
    return WeightedRandomSampler(torch.from_numpy(weights), num_samples=passes * len(assignment), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))


def fit_clusters(
    model: pl.LightningModule, images: torch.Tensor, rounds: Rounds,
    features: Callable[[torch.Tensor], np.ndarray], reset_head: Callable[[int], None], name: str,
) -> None:
    """Train ``model`` on uint8 ``images`` (N, C, H, W) with DeepCluster, in place.

    ``features`` gives the (N, D) features to cluster; ``reset_head(seed)`` gives the model
    a fresh head over ``rounds.clusters`` ids. The model trains on batches
    ``{"labeled": (pixels, cluster ids)}`` and logs ``train_loss``.
    """
    for epoch in range(rounds.epochs):
        seed = rng.epoch_seed(rounds.seed, epoch)
        assignment = cluster_targets(features(images), rounds.clusters, rounds.pca, rounds.kmeans_iterations, seed)
        # Cluster ids are permuted from one epoch to the next: the old head means nothing now.
        reset_head(seed)
        model.train()  # Lightning keeps the modes it is given; the features may have been taken in eval mode
        # Each process of a distributed fit takes an epoch's worth of steps of its own draws.
        sampler = PerProcess(functools.partial(uniform_over_clusters, assignment, rounds.clusters, seed))
        loader = DataLoader(TensorDataset(images, torch.from_numpy(assignment)), batch_size=rounds.batch_size,
                            sampler=sampler, generator=torch.Generator().manual_seed(seed))
        trainer = lightning_fit(model, {"labeled": loader}, compute=rounds.compute)
        print(f"{name}: DeepCluster epoch {epoch + 1}/{rounds.epochs}, loss "
              f"{float(trainer.callback_metrics['train_loss']):.3f}, {len(np.unique(assignment))} clusters in use, "
              f"largest {np.bincount(assignment).max()}", flush=True)


def pretrain_backbone(pixels: np.ndarray, params: Params) -> nn.Module:
    """A ``train.backbone`` trained with DeepCluster on uint8 ``pixels`` (N, C, H, W); returns the backbone."""
    pp = params.pretrain
    k = cluster_count(pp.clusters, len(params.classes), len(pixels), "pretrain.clusters")
    rounds = Rounds(pp.epochs, k, pp.batch_size, pp.pca, pp.kmeans_iterations, params.seed, params.compute)
    optimisation = Optimisation(pp.lr, params.train.momentum, params.train.weight_decay,
                                steps=-(-len(pixels) // pp.batch_size))
    with rng.seeded(params.seed):
        backbone = build_backbone(params.train.backbone, pixels.shape[1])
        model = Classifier(backbone, ClassifierSettings(k, optimisation, seed=params.seed, augment=True))

    def reset_head(seed: int) -> None:
        with rng.seeded(seed):
            model.head = nn.Linear(model.backbone.out_dim, k)

    images = torch.from_numpy(np.array(pixels))
    fit_clusters(model, images, rounds, lambda x: predict(model, x.numpy(), 500)[1], reset_head, "pretrain")
    return model.backbone


def deepcluster_backbone(root: Path, pixels: np.ndarray, params: Params) -> nn.Module:
    """``pretrain.method: deepcluster`` (``methods.PRETRAIN``); ``root`` is not needed."""
    return pretrain_backbone(pixels, params)
