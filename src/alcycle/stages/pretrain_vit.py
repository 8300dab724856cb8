"""pretrain-vit: the vision transformer GEAL selects with, learned without labels or loaded.

``pretrain_vit.method``:

- ``none``: writes a note that there is no transformer (DVC needs the output); GEAL refuses it.
- ``weights``: a local torchvision ``VisionTransformer`` state dict (ImageNet, or a DINO
  checkpoint renamed to torchvision's keys); every encoder tensor must fit the sizes in
  ``pretrain_vit``. A relative path is taken from the project folder. Nothing is downloaded.
- ``deepcluster``: DeepCluster (Caron et al. 2018) on every image, as ``pretrain`` does
  for the CNN: each epoch clusters the final CLS tokens with k-means and trains one pass
  on the cluster ids, clusters sampled uniformly, with a freshly initialised head. The
  images are randomly rotated, scaled and shifted; AdamW with a warm-up, seeded throughout.

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from alcycle.errors import MissingInputError
from alcycle.layout import Layout
from alcycle.models import atomic_torch_save, lightning_fit
from alcycle.params import Params, ParamsError, PretrainVitParams
from alcycle.stages.pretrain import cluster_targets, uniform_over_clusters
from alcycle.vit import Vit, build_vit, load_weights, save_vit

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
        self._generator = torch.Generator().manual_seed(seed)
        self._optimization: dict[str, Any] | None = None

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        pixels, targets = batch
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
        with torch.random.fork_rng():
            torch.manual_seed(seed)
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


def deepcluster(pixels: np.ndarray, params: Params) -> Vit:
    """A ``Vit`` trained with DeepCluster on uint8 ``pixels`` (N, C, H, W); no label is read."""
    vp = params.pretrain_vit
    k = vp.clusters or 5 * len(params.classes)
    if k > len(pixels):
        raise ParamsError(f"pretrain_vit.clusters: {k} clusters for {len(pixels)} images; set fewer")
    steps = -(-len(pixels) // vp.batch_size)
    with torch.random.fork_rng():  # seeded initial weights, leaving torch's global generator as it was
        torch.manual_seed(params.seed)
        vit = build_vit(vp, image_size=pixels.shape[-1], in_channels=pixels.shape[1])
        model = VitDeepCluster(vit, k, vp.lr, steps * vp.epochs, params.seed)
    images = torch.from_numpy(np.array(pixels))
    for epoch in range(vp.epochs):
        seed = params.seed + epoch
        assignment = cluster_targets(cls_features(vit, images, 4 * vp.batch_size), k, 0, KMEANS_ITERATIONS, seed)
        model.reset_head(seed)
        model.train()  # Lightning keeps the modes it is given; the features above were taken in eval mode
        loader = DataLoader(TensorDataset(images, torch.from_numpy(assignment)), batch_size=vp.batch_size,
                            sampler=uniform_over_clusters(assignment, k, seed),
                            generator=torch.Generator().manual_seed(seed))
        trainer = lightning_fit(model, loader)
        print(f"pretrain-vit: DeepCluster epoch {epoch + 1}/{vp.epochs}, loss "
              f"{float(trainer.callback_metrics['train_loss']):.3f}, {len(np.unique(assignment))} clusters in use, "
              f"largest {np.bincount(assignment).max()}", flush=True)
    return vit.eval()


def from_file(path: Path, vit_params: PretrainVitParams, image_size: int, in_channels: int) -> Vit:
    """A ``Vit`` of ``pretrain_vit``'s sizes holding a torchvision state dict's tensors, all of them."""
    if not path.exists():
        raise MissingInputError(f"pretrain_vit.weights: {path} not found")
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
        vit = deepcluster(pixels, params)
    elif method == "weights":
        weights = Path(params.pretrain_vit.weights)
        vit = from_file(weights if weights.is_absolute() else layout.root / weights, params.pretrain_vit,
                        image_size=pixels.shape[-1], in_channels=pixels.shape[1])
    else:
        raise ParamsError(f"pretrain_vit.method is {method!r}; choose one of: none, deepcluster, weights")
    return save_vit(layout.vit, vit, method)
