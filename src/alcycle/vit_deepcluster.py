"""DeepCluster for GEAL's vision transformer: the model, its augmentation and its schedule.

``deepcluster.fit_clusters`` runs the loop, as for ``pretrain``'s CNN: each epoch clusters
the final CLS tokens with k-means and trains one pass on the cluster ids, clusters
sampled uniformly, with a freshly initialised head. The images are randomly rotated,
scaled and shifted; AdamW with a warm-up, seeded throughout.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from alcycle import rng
from alcycle.deepcluster import Rounds, cluster_count, fit_clusters
from alcycle.params import Params
from alcycle.vit import Vit, build_vit

KMEANS_ITERATIONS = 10  # Siméoni et al.'s DeepCluster: 10 iterations, L2-normalised, no PCA
WEIGHT_DECAY = 0.05  # DeiT and DINO's value for small ViTs
WARMUP_SHARE = 0.1  # share of all steps spent warming the learning rate up


class VitDeepCluster(pl.LightningModule):
    """A ``Vit`` and a linear head over the clusters, trained on cluster ids of augmented images.

    Each epoch runs its own Trainer (its targets differ), but the AdamW optimiser and the
    schedule are made once and kept: a ViT trains stably only after a warm-up, which then
    runs once over all epochs, and the moments carry over.
    """

    def __init__(self, vit: Vit, clusters: int, lr: float, total_steps: int, seed: int) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["vit"])
        self.vit = vit
        self.head = nn.Linear(vit.hidden_dim, clusters)
        self.lr, self.total_steps = lr, total_steps
        self._generator = rng.augmentation_generator(seed)
        self._optimization: dict[str, Any] | None = None

    def training_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """``batch["labeled"]`` = (pixels, cluster ids), as ``deepcluster.fit_clusters`` gives it."""
        pixels, targets = batch["labeled"]
        x = random_affine(self.vit.to_input(pixels), self._generator)
        loss = F.cross_entropy(self.head(self.vit(x)), targets)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        if self._optimization is None:
            # As DINO: no weight decay on biases and normalisation scales.
            decay = [p for p in self.parameters() if p.ndim >= 2]
            rest = [p for p in self.parameters() if p.ndim < 2]
            optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                           {"params": rest, "weight_decay": 0.0}], lr=self.lr)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup(self.total_steps))
            self._optimization = {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        return self._optimization

    def reset_head(self, seed: int) -> None:
        """New random head weights, and no optimiser memory of the old ones: cluster ids are
        permuted from one epoch to the next, so the old head means nothing now."""
        with rng.seeded(seed):
            self.head.reset_parameters()
        if self._optimization is not None:
            for parameter in self.head.parameters():
                self._optimization["optimizer"].state.pop(parameter, None)


def warmup(total_steps: int) -> Any:
    """Learning-rate factor per step: a linear warm-up over ``WARMUP_SHARE`` of the steps, then 1.

    The rate stays up after the warm-up, as in DeepCluster: each epoch's fresh head must
    learn its new clusters, which a rate decayed towards 0 would not let it do.
    """
    steps = max(1, round(WARMUP_SHARE * total_steps))
    return lambda step: min(1.0, (step + 1) / steps)


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, S, S) rotated by up to 15°, scaled by 0.85–1.15 and shifted by up to
    10% of its size; uncovered pixels take the image's darkest value (the background of digits).

    Shifts alone let the clusters, and so the network, key on where a stroke is; the
    features GEAL clusters should hold what the shape is.
    """
    b = len(x)
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(15)
    scale = 1 + (torch.rand(b, generator=generator) * 2 - 1) * 0.15
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * 0.2  # grid units: the image spans [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    fill = x.amin(dim=(2, 3), keepdim=True)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


@torch.inference_mode()
def cls_features(vit: Vit, images: torch.Tensor, batch_size: int) -> np.ndarray:
    """Final CLS tokens (N, D) float32 of uint8 ``images`` (N, C, H, W), in eval mode."""
    was_training = vit.training
    vit.eval()
    features = [vit.embed(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    vit.train(was_training)
    return torch.cat(features).numpy()


def pretrain_vit(pixels: np.ndarray, params: Params) -> Vit:
    """A ``Vit`` trained with DeepCluster on uint8 ``pixels`` (N, C, H, W); no label is read."""
    vp = params.pretrain_vit
    k = cluster_count(vp.clusters, len(params.classes), len(pixels), "pretrain_vit.clusters")
    rounds = Rounds(vp.epochs, k, vp.batch_size, 0, KMEANS_ITERATIONS, params.seed, params.compute)
    steps = -(-len(pixels) // vp.batch_size)
    with rng.seeded(params.seed):
        vit = build_vit(vp, image_size=pixels.shape[-1], in_channels=pixels.shape[1])
        model = VitDeepCluster(vit, k, vp.lr, steps * vp.epochs, params.seed)
    images = torch.from_numpy(np.array(pixels))
    fit_clusters(model, images, rounds, lambda x: cls_features(vit, x, 4 * vp.batch_size), model.reset_head,
                 "pretrain-vit")
    return vit.eval()


def deepcluster_vit(root: Path, pixels: np.ndarray, params: Params) -> Vit:
    """``pretrain_vit.method: deepcluster`` (``methods.PRETRAIN_VIT``); ``root`` is not needed."""
    return pretrain_vit(pixels, params)
