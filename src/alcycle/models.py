"""Backbones (plain ``nn.Module``s) and the Lightning classifier that trains them.

A backbone maps images (B, C, H, W) to embeddings (B, D) and exposes ``out_dim``;
the classifier adds one linear head and owns loss, optimiser and augmentation.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision
from pytorch_lightning.utilities import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader

from alcycle.errors import BadFileError
from alcycle.fileio import atomic_write_bytes
from alcycle.loss_prediction import FeatureTaps, LossPredictor, ranking_loss
from alcycle.params import BACKBONES as BACKBONE_NAMES
from alcycle.params import ParamsError


class SmallCNN(nn.Module):
    """Three conv blocks, a 3×3 pooled map and one linear layer: ~8M MACs per 28×28 image.

    Pooling to 3×3 rather than 1×1 keeps where strokes are, which matters for digits and
    for clustering the features (DeepCluster, label propagation).
    ``taps``: the conv blocks whose outputs a loss prediction module reads, with their channels.
    """

    def __init__(self, in_channels: int, width: int = 32, out_dim: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(4 * width * 9, out_dim),
            nn.ReLU(),
        )
        self.out_dim = out_dim
        self.taps = {"features.0": width, "features.2": 2 * width, "features.4": 4 * width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def resnet18_small(in_channels: int) -> nn.Module:
    """torchvision ResNet-18 with a 3×3 stride-1 stem and no max-pool, for small images."""
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.out_dim = 512
    net.taps = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
    return net


BACKBONES: dict[str, Callable[[int], nn.Module]] = {"resnet18": resnet18_small, "small_cnn": SmallCNN}
assert sorted(BACKBONES) == sorted(BACKBONE_NAMES), "params.BACKBONES names the backbones built here"


def build_backbone(name: str, in_channels: int) -> nn.Module:
    try:
        return BACKBONES[name](in_channels)
    except KeyError:
        raise ParamsError(f"unknown backbone '{name}'; choose one of: {', '.join(sorted(BACKBONES))}") from None


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image (B, C, H, W) by up to ``max_shift`` pixels, zero-filling the border."""
    _, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


class Classifier(pl.LightningModule):
    """Backbone + (dropout) + linear head trained with SGD (Nesterov) and a cosine learning-rate decay.

    With ``loss_prediction`` it also trains a Learning Loss module on the backbone's
    ``taps`` (weight λ, margin ξ; after ``loss_detach_after`` of the steps the module
    reads detached maps, so it no longer shapes the backbone, as in the paper).
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int,
        num_classes: int,
        lr: float,
        momentum: float,
        weight_decay: float,
        steps: int,
        augment: bool,
        seed: int,
        freeze_backbone: bool = False,
        dropout: float = 0.0,
        loss_prediction: bool = False,
        loss_weight: float = 1.0,
        loss_margin: float = 1.0,
        loss_detach_after: float = 0.6,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = build_backbone(backbone, in_channels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.out_dim, num_classes)
        self.loss_module: LossPredictor | None = None
        self.taps: FeatureTaps | None = None
        if loss_prediction:
            self.loss_module = LossPredictor(list(self.backbone.taps.values()))
            self.taps = FeatureTaps(self.backbone)
        self._generator = torch.Generator().manual_seed(seed)
        # Pseudo-labels of the unlabeled pool, (targets, weights) indexed by pool row;
        # set by a semi-supervised callback, never saved with the weights.
        self.pseudo: tuple[torch.Tensor, torch.Tensor] | None = None
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning switches every submodule to training mode; frozen features must also
        # keep their batch-norm statistics, so the backbone goes back to eval mode.
        if self.hparams.freeze_backbone:
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
        if self.hparams.augment:
            x = random_shift(x, 2, self._generator)
        return self.head(self.dropout(self.backbone(x)))

    def training_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """``batch["labeled"]`` = (pixels, targets); ``batch["pool"]`` = (pixels, pool rows), optional."""
        pixels, targets = batch["labeled"]
        losses = F.cross_entropy(self._logits(pixels), targets, reduction="none")
        loss = losses.mean()
        if self.loss_module is not None:
            loss = loss + self.hparams.loss_weight * self._ranking_loss(losses)
        if "pool" in batch and self.pseudo is not None:
            pool_pixels, rows = batch["pool"]
            pseudo_targets, weights = self.pseudo[0][rows], self.pseudo[1][rows]
            pool_losses = F.cross_entropy(self._logits(pool_pixels), pseudo_targets, reduction="none")
            loss = loss + (weights * pool_losses).mean()
        self.log("train_loss", loss, prog_bar=False)
        return loss

    def _ranking_loss(self, losses: torch.Tensor) -> torch.Tensor:
        """Learning Loss on the maps of the labeled batch just seen, against its true losses."""
        maps = self.taps.latest()
        if self.global_step >= self.hparams.loss_detach_after * self.hparams.steps:
            maps = [m.detach() for m in maps]
        return ranking_loss(self.loss_module(maps), losses, self.hparams.loss_margin)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            trainable, lr=hp.lr, momentum=hp.momentum, nesterov=True, weight_decay=hp.weight_decay
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def lightning_fit(model: pl.LightningModule, loaders: DataLoader | dict[str, DataLoader], max_steps: int = -1,
                  callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """One epoch of ``loaders`` (at most ``max_steps`` steps) with Lightning on the CPU, deterministic,
    with no logger, checkpoint, progress bar or model summary: each stage prints its own progress.

    A dict of loaders gives each step one batch of each, named by its key, until the
    shortest loader ends (Lightning's ``CombinedLoader`` in ``min_size`` mode).
    """
    trainer = pl.Trainer(max_epochs=1, max_steps=max_steps, accelerator="cpu", devices=1, deterministic=True,
                         logger=False, callbacks=list(callbacks), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        # One process on a small machine: extra loader workers would only compete with training.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning's own use of a deprecated torch pytree API: nothing a user can act on.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
        if isinstance(loaders, dict):
            loaders = CombinedLoader(loaders, mode="min_size")
        trainer.fit(model, train_dataloaders=loaders)
    return trainer


def predict(model: Classifier, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C) and embeddings (N, D), float32, for uint8 ``pixels`` (N, C, H, W)."""
    outputs = predict_all(model, pixels, batch_size)
    return outputs["probs"], outputs["embeddings"]


@torch.inference_mode()
def predict_all(model: Classifier, pixels: np.ndarray, batch_size: int,
                mc_samples: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Everything the model can say about each image, float32, one row per image:

    probs (N, C) and embeddings (N, D) always; predicted_loss (N,) when the model has a
    loss prediction module; mc_probs (N, T, C) with T = ``mc_samples`` when it has
    dropout: T passes of dropout + head over the embeddings, masks drawn from ``seed``.
    Dropout sits only before the head, so the backbone runs once, not T times.
    """
    was_training = model.training
    model.eval()
    outputs: dict[str, list[np.ndarray]] = {"probs": [], "embeddings": []}
    if model.loss_module is not None:
        outputs["predicted_loss"] = []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.array(pixels[start : start + batch_size]))  # a copy, even of a memmap
        features = model.embed(batch)
        outputs["probs"].append(torch.softmax(model.head(features), dim=1).numpy())
        outputs["embeddings"].append(features.numpy())
        if model.loss_module is not None:
            outputs["predicted_loss"].append(model.loss_module(model.taps.latest()).numpy())
    model.train(was_training)
    result = {name: np.concatenate(parts).astype(np.float32) for name, parts in outputs.items()}
    if model.hparams.dropout > 0 and mc_samples > 0:
        result["mc_probs"] = mc_dropout_probs(model, result["embeddings"], mc_samples, seed)
    return result


@torch.inference_mode()
def mc_dropout_probs(model: Classifier, embeddings: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(N, T, C) float32 class probabilities of T passes with fresh dropout masks on the features."""
    keep = 1.0 - model.hparams.dropout
    generator = torch.Generator().manual_seed(seed)
    features = torch.from_numpy(embeddings)
    passes = []
    for _ in range(samples):
        mask = torch.bernoulli(torch.full_like(features, keep), generator=generator) / keep
        passes.append(torch.softmax(model.head(features * mask), dim=1))
    return torch.stack(passes, dim=1).numpy().astype(np.float32)


def load_backbone_weights(backbone: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match into ``backbone``; returns the names skipped.

    Accepts a plain state dict or one whose keys carry a ``backbone.`` or ``module.``
    prefix, so torchvision checkpoints and alcycle's own load alike; an adapted stem
    or a classifier layer of another shape is skipped, never forced.
    """
    own = backbone.state_dict()
    loaded, skipped = {}, []
    for name, tensor in state.items():
        key = name.removeprefix("module.").removeprefix("backbone.")
        if key in own and own[key].shape == tensor.shape:
            loaded[key] = tensor
        else:
            skipped.append(name)
    if not loaded:
        raise BadFileError(f"no tensor of the weights matches the backbone (first keys: {list(state)[:3]})")
    backbone.load_state_dict({**own, **loaded})
    return skipped


def save_model(path: Path, model: Classifier, train_ids: list[str], classes: tuple[str, ...]) -> None:
    """Write weights, hyperparameters, class names and the ids the model was trained on."""
    payload = {
        "hparams": dict(model.hparams),
        "state_dict": model.state_dict(),
        "classes": list(classes),
        "train_ids": list(train_ids),
    }
    atomic_torch_save(path, payload)


def atomic_torch_save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_model(path: Path) -> tuple[Classifier, dict[str, Any]]:
    """The classifier in eval mode and the stored metadata (classes, train_ids, hparams)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = Classifier(**payload["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
