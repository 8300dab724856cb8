"""SimCLR (Chen et al. 2020): backbone weights learned by matching two random views of each image.

Each step draws a batch of B pool images, makes two views of each (``views.py``), runs the
backbone and a 2-layer projection head over the 2B views and minimises NT-Xent: each view
must pick out its partner among the other 2B − 1 by cosine similarity. The head is
discarded; the backbone is what ``pretrain`` saves, in the same file and shape as
DeepCluster's, so ``train.init: pretrained``, ``embed`` and frozen-feature mode read it
unchanged. Randomness follows ``rng.py``: weights under ``rng.seeded(seed)``, the pool
order from the pool loader's stream, the views from the augmentation stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from alcycle import rng
from alcycle.backbones import Backbone, build_backbone
from alcycle.classifier import Classifier
from alcycle.compute import PerProcess
from alcycle.params import Params, ParamsError
from alcycle.training import lightning_fit
from alcycle.views import ViewSettings, random_views

WARMUP_SHARE = 0.1  # the paper warms the learning rate up linearly, then decays it along a cosine
WEIGHT_DECAY = 1e-6  # the paper's


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of paired projections ``first``, ``second`` (B, P): the mean over the 2B views of
    −log softmax, at temperature τ, of the cosine similarity to its partner against the 2B − 1
    other views. O(B²) in memory: one batch's similarity matrix."""
    z = F.normalize(torch.cat([first, second]), dim=1)
    similarity = (z @ z.T) / temperature
    # A view is not its own negative.
    similarity = similarity.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
    b = len(first)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(similarity, partner)


@dataclass(frozen=True)
class SimCLRSettings:
    """One SimCLR run: views, loss, head and the AdamW schedule over ``steps`` steps."""

    views: ViewSettings
    temperature: float
    projection_dim: int
    lr: float
    steps: int
    seed: int  # the augmentation stream's seed


class SimCLR(pl.LightningModule):
    """A backbone (B, C, H, W) -> (B, D) and a projection head D -> D -> P trained with NT-Xent.

    Batches are (uint8 pixels (B, C, H, W), pool rows); the rows are not used.
    """

    def __init__(self, backbone: nn.Module, settings: SimCLRSettings) -> None:
        super().__init__()
        self.save_hyperparameters({"temperature": settings.temperature, "projection_dim": settings.projection_dim,
                                   "lr": settings.lr, "steps": settings.steps, "seed": settings.seed})
        self.settings = settings
        self.backbone = backbone
        d = cast(Backbone, backbone).out_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, settings.projection_dim))
        self._generator = rng.augmentation_generator(settings.seed)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        pixels = batch[0]
        first = random_views(pixels, self.settings.views, self._generator)
        second = random_views(pixels, self.settings.views, self._generator)
        z = self.projection(self.backbone(Classifier.to_input(torch.cat([first, second]))))
        loss = nt_xent(z[: len(pixels)], z[len(pixels) :], self.settings.temperature)
        self.log("train_loss", loss, prog_bar=False)
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.settings.lr, weight_decay=WEIGHT_DECAY)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(self.settings.steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def warmup_cosine(steps: int) -> Any:
    """Learning-rate factor per step: linear up over ``WARMUP_SHARE`` of ``steps``, then a cosine to 0."""
    warm = max(1, round(WARMUP_SHARE * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))
    return factor


class StoreRows(Dataset):
    """Images of a uint8 store (N, C, H, W), e.g. a memory map, read one at a time when drawn:
    a loader holds one batch, never the pool (O(batch) in memory). Not ``semi.PoolRows``: pretrain
    would then list semi.py among its code, and a pseudo-labelling change would re-run it."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self.pixels[row])), row


class EpochProgress(pl.Callback):
    """Prints the loss after each pass over the pool (``every`` steps)."""

    def __init__(self, every: int, epochs: int) -> None:
        self.every, self.epochs = every, epochs

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % self.every == 0:
            loss = float(trainer.callback_metrics["train_loss"])
            print(f"pretrain: SimCLR epoch {(batch_idx + 1) // self.every}/{self.epochs}, loss {loss:.3f}", flush=True)


def pretrain_backbone(pixels: np.ndarray, params: Params) -> nn.Module:
    """A ``train.backbone`` trained with SimCLR on uint8 ``pixels`` (N, C, H, W), read a batch at a
    time (a memory map stays one); returns the backbone. O(batch) in memory."""
    sp = params.pretrain.simclr
    if len(pixels) < 2:
        raise ParamsError(f"pretrain.method simclr: {len(pixels)} image(s) in the pool; it needs at least 2")
    batch = min(sp.batch_size, len(pixels))
    per_epoch = len(pixels) // batch
    settings = SimCLRSettings(ViewSettings(sp.min_scale, sp.jitter, sp.blur, sp.flip), sp.temperature,
                              sp.projection_dim, sp.lr, sp.epochs * per_epoch, params.seed)
    with rng.seeded(params.seed):
        model = SimCLR(build_backbone(params.train.backbone, pixels.shape[1]), settings)
    data = StoreRows(pixels)
    # Each epoch a fresh permutation of the pool (RandomSampler chains them), one optimiser and schedule throughout.
    generator = rng.loader_generator(params.seed, rng.POOL_LOADER)
    sampler = PerProcess(lambda world: RandomSampler(data, num_samples=world * settings.steps * batch,
                                                     generator=generator))
    loader = DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True)
    with rng.seeded(params.seed):  # nothing global should be drawn; if Lightning does, it is seeded and left alone
        lightning_fit(model, loader, callbacks=[EpochProgress(per_epoch, sp.epochs)], compute=params.compute)
    return model.backbone


def simclr_backbone(root: Path, pixels: np.ndarray, params: Params) -> nn.Module:
    """``pretrain.method: simclr`` (``methods.PRETRAIN``); ``root`` is not needed."""
    return pretrain_backbone(pixels, params)
