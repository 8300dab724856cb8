"""The Lightning classifier: a backbone object, dropout and a linear head, trained with SGD.

It owns loss, optimiser and augmentation (Lightning's examples' split); the backbone is
built elsewhere (``alcycle.backbones``) and handed in, and its settings come as one frozen
``ClassifierSettings``, recorded flat in ``hparams`` so a checkpoint can rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

from alcycle import rng
from alcycle.augment import random_shift
from alcycle.backbones import Backbone
from alcycle.loss_prediction import FeatureTaps, LossPredictor, ranking_loss
from alcycle.params import LossPredictionParams


@dataclass(frozen=True)
class Optimisation:
    """SGD with Nesterov momentum; ``lr`` decays to 0 along a cosine over ``steps`` steps."""

    lr: float
    momentum: float
    weight_decay: float
    steps: int


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything about the classifier but its backbone."""

    num_classes: int
    optimisation: Optimisation
    seed: int  # the augmentation stream's seed (``rng.augmentation_generator``)
    augment: bool = False  # random shifts of up to 2 pixels
    freeze_backbone: bool = False
    dropout: float = 0.0  # on the features, before the head
    loss_prediction: LossPredictionParams | None = None  # a Learning Loss module, with its λ, ξ, detach share

    def hparams(self) -> dict[str, Any]:
        """A flat record of plain values (what ``model.pt`` stores; the names older files use)."""
        o, lp = self.optimisation, self.loss_prediction or LossPredictionParams(
            fit=False, weight=1.0, margin=1.0, detach_after=0.6)
        return {"num_classes": self.num_classes, "lr": o.lr, "momentum": o.momentum,
                "weight_decay": o.weight_decay, "steps": o.steps, "augment": self.augment, "seed": self.seed,
                "freeze_backbone": self.freeze_backbone, "dropout": self.dropout,
                "loss_prediction": self.loss_prediction is not None, "loss_weight": lp.weight,
                "loss_margin": lp.margin, "loss_detach_after": lp.detach_after}

    @classmethod
    def from_hparams(cls, hp: Mapping[str, Any]) -> ClassifierSettings:
        """The inverse of ``hparams``; keys that older files lack take their old defaults."""
        loss = (LossPredictionParams(fit=True, weight=hp.get("loss_weight", 1.0), margin=hp.get("loss_margin", 1.0),
                                     detach_after=hp.get("loss_detach_after", 0.6)) if hp.get("loss_prediction") else None)
        return cls(num_classes=hp["num_classes"],
                   optimisation=Optimisation(hp["lr"], hp["momentum"], hp["weight_decay"], hp["steps"]),
                   seed=hp["seed"], augment=hp["augment"], freeze_backbone=hp.get("freeze_backbone", False),
                   dropout=hp.get("dropout", 0.0), loss_prediction=loss)


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the whole batch of weight × cross-entropy: logits (B, C), targets (B,), weights (B,).

    An item of weight 0 adds 0 but still counts in the mean (FixMatch's masked loss).
    """
    return (weights * F.cross_entropy(logits, targets, reduction="none")).mean()


class Classifier(pl.LightningModule):
    """Backbone (B, C, H, W) -> (B, D), then dropout and a linear head -> logits (B, num_classes).

    With ``settings.loss_prediction`` it also trains a Learning Loss module on the backbone's
    ``taps`` (weight λ, margin ξ; after ``detach_after`` of the steps the module reads
    detached maps, so it no longer shapes the backbone, as in the paper).
    Parameters are created in this order (backbone first, outside): head, loss module.
    """

    def __init__(self, backbone: nn.Module, settings: ClassifierSettings) -> None:
        super().__init__()
        self.save_hyperparameters(settings.hparams())
        self.settings = settings
        self.backbone = backbone
        self.dropout = nn.Dropout(settings.dropout)
        described = cast(Backbone, backbone)  # an nn.Module that also has out_dim and taps
        self.head = nn.Linear(described.out_dim, settings.num_classes)
        self.loss_module: LossPredictor | None = None
        self.taps: FeatureTaps | None = None
        if settings.loss_prediction is not None:
            self.loss_module = LossPredictor(list(described.taps.values()))
            self.taps = FeatureTaps(backbone)
        self._generator = rng.augmentation_generator(settings.seed)
        if settings.freeze_backbone:
            self.backbone.requires_grad_(False)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning switches every submodule to training mode; frozen features must also
        # keep their batch-norm statistics, so the backbone goes back to eval mode.
        if self.settings.freeze_backbone:
            self.backbone.eval()

    @staticmethod
    def to_input(pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (B, C, H, W) -> float in [-1, 1]."""
        return pixels.float().div_(127.5).sub_(1.0)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D) of uint8 pixels."""
        return self.backbone(self.to_input(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of uint8 pixels."""
        return self.head(self.dropout(self.embed(pixels)))

    def _logits(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.to_input(pixels)
        if self.settings.augment:
            x = random_shift(x, 2, self._generator)
        return self.head(self.dropout(self.backbone(x)))

    def training_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """``batch["labeled"]`` = (pixels, targets); ``batch["pool"]`` = (pixels, pseudo-targets,
        weights), present only when pool items train under pseudo-labels (``semi.py``)."""
        pixels, targets = batch["labeled"]
        losses = F.cross_entropy(self._logits(pixels), targets, reduction="none")
        loss = losses.mean()
        if self.settings.loss_prediction is not None:
            loss = loss + self.settings.loss_prediction.weight * self._ranking_loss(losses)
        if "pool" in batch:
            pool_pixels, pseudo_targets, weights = batch["pool"]
            loss = loss + weighted_cross_entropy(self._logits(pool_pixels), pseudo_targets, weights)
        self.log("train_loss", loss, prog_bar=False)
        return loss

    def _ranking_loss(self, losses: torch.Tensor) -> torch.Tensor:
        """Learning Loss on the maps of the labeled batch just seen, against its true losses (B,)."""
        settings = self.settings.loss_prediction
        assert settings is not None and self.taps is not None and self.loss_module is not None
        maps = self.taps.latest()
        if self.global_step >= settings.detach_after * self.settings.optimisation.steps:
            maps = [m.detach() for m in maps]
        return ranking_loss(self.loss_module(maps), losses, settings.margin)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        o = self.settings.optimisation
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(trainable, lr=o.lr, momentum=o.momentum, nesterov=True,
                                    weight_decay=o.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=o.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
