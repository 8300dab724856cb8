"""The classifier's head (dropout + linear) trained and run over cached features (``features.py``).

With a frozen backbone the features of an image never change, so a cycle needs the
backbone nowhere: ``HeadOnly`` trains the classifier's own ``dropout`` and ``head``
modules (shared, so the classifier saved afterwards is whole) on rows of the cached
(N, D) array, with the same loss, optimiser, loaders and random streams as
``Classifier`` with ``freeze_backbone`` and no augmentation; ``write_head_outputs``
writes what extract writes, chunk by chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig

from alcycle.classifier import Classifier
from alcycle.features import atomic_memmap
from alcycle.inference import write_mc_probs
from alcycle.semi import PseudoLabeller, PseudoLabels
from alcycle.training import single_threaded


class HeadOnly(pl.LightningModule):
    """Features (B, D) -> dropout -> the classifier's linear head -> logits (B, num_classes)."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        if classifier.loss_module is not None:
            raise ValueError("a loss prediction module reads the backbone's maps; it cannot train on cached features")
        self.classifier = classifier  # registered, so its head's parameters are this module's

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier.head(self.classifier.dropout(features))

    def training_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """``batch["labeled"]`` = (features, targets); ``batch["pool"]`` = (features, pseudo-targets,
        weights) while pool items train under pseudo-labels (``RefreshFromEmbeddings``)."""
        features, targets = batch["labeled"]
        loss = F.cross_entropy(self(features), targets)
        if "pool" in batch:
            pool_features, pseudo_targets, weights = batch["pool"]
            loss = loss + (weights * F.cross_entropy(self(pool_features), pseudo_targets, reduction="none")).mean()
        self.log("train_loss", loss, prog_bar=False)
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        # The classifier's own: SGD over what requires a gradient, which a frozen backbone leaves to the head.
        return self.classifier.configure_optimizers()


@torch.inference_mode()
def head_probs(classifier: Classifier, embeddings: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities (N, C) float32 of the head in eval mode over features (N, D); O(batch) beyond the output."""
    parts = [torch.softmax(classifier.head(torch.from_numpy(np.array(embeddings[s : s + batch_size]))), dim=1)
             for s in range(0, len(embeddings), batch_size)]
    return torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros((0, classifier.head.out_features),
                                                                                   dtype=np.float32)


class RefreshFromEmbeddings(pl.Callback):
    """``semi.RefreshPseudoLabels`` over cached features: every ``every`` steps the labeller gets the
    head's probabilities over the pool's features and the features themselves (read from the
    memory map only then: O(N_pool·D) while it labels), and each pool batch its current ones."""

    def __init__(self, labeller: PseudoLabeller, embeddings: np.ndarray, pool_rows: np.ndarray, labels: np.ndarray,
                 every: int, from_start: bool, batch_size: int = 500) -> None:
        self.labeller, self.embeddings, self.pool_rows, self.labels = labeller, embeddings, pool_rows, labels
        self.every, self.from_start, self.batch_size = every, from_start, batch_size
        self.latest: PseudoLabels | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, model: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every == 0 and (step > 0 or self.from_start):
            assert isinstance(model, HeadOnly)
            pool = np.asarray(self.embeddings[self.pool_rows])
            self.latest = self.labeller(head_probs(model.classifier, pool, self.batch_size), pool, self.labels)
        features, rows = batch.pop("pool")
        if self.latest is not None:
            batch["pool"] = (features, torch.from_numpy(self.latest.targets)[rows],
                             torch.from_numpy(self.latest.weights)[rows])


@torch.inference_mode()
def write_head_outputs(classifier: Classifier, embeddings: np.ndarray, folder: Path, batch_size: int,
                       mc_samples: int = 0, seed: int = 0) -> dict[str, Path]:
    """extract's arrays from the head over features (N, D): ``probs.npy`` (N, C) and, when the
    classifier has dropout, ``mc_probs.npy`` (N, T, C) with T = ``mc_samples``.

    Written into memory maps one chunk of ``batch_size`` rows at a time: O(batch) in memory.
    The MC passes are ``inference.write_mc_probs``: one (N, D) draw of dropout masks per pass
    in row order, exactly as ``inference.mc_dropout_probs`` draws them, so the samples equal
    those of a full forward pass whatever the chunk size.
    """
    classifier.eval()
    n, classes = len(embeddings), classifier.head.out_features
    written = {"probs": folder / "probs.npy"}
    with single_threaded(), atomic_memmap(written["probs"], (n, classes)) as probs:
        for start in range(0, n, batch_size):
            chunk = torch.from_numpy(np.array(embeddings[start : start + batch_size]))
            probs[start : start + len(chunk)] = torch.softmax(classifier.head(chunk), dim=1).numpy()
    if classifier.settings.dropout > 0 and mc_samples > 0:
        written["mc_probs"] = folder / "mc_probs.npy"
        write_mc_probs(classifier, embeddings, written["mc_probs"], batch_size, mc_samples, seed)
    return written
