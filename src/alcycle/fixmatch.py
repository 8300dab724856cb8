"""FixMatch (Sohn et al. 2020): consistency between a weak and a strong view of unlabeled images.

Each step also draws ``mu`` × batch_size unlabeled pool items. The model's class for an
item's weak view, taken without gradient, is its pseudo-label when the model is at least
``threshold`` sure of it; the strong view learns that label, and the loss is averaged over
the whole unlabeled batch, so unsure items add 0 (``weighted_cross_entropy``). It labels
every step's batch itself, so a model starting from random weights simply masks everything
until it grows confident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from alcycle import rng
from alcycle.augment import strong_view, weak_view
from alcycle.classifier import Classifier, weighted_cross_entropy
from alcycle.inference import predict
from alcycle.params import FixMatchParams, TrainParams
from alcycle.pixel_store import Rows
from alcycle.semi import PoolCallback, PseudoLabels


def pseudo_targets(weak_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weak-view logits (B, C) -> pseudo-labels q (B,) int64 = argmax softmax, and the mask (B,)
    bool: max softmax >= ``threshold``. No gradient flows back through either."""
    confidence, targets = torch.softmax(weak_logits.detach(), dim=1).max(dim=1)
    return targets, confidence >= threshold


def unlabeled_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float,
                   weight: float = 1.0) -> torch.Tensor:
    """``weight`` × mean over the B items of mask · CE(strong_logits, q): logits (B, C) -> a scalar.

    What a training step adds for its unlabeled batch; 0 (never NaN) when every item is masked.
    """
    targets, mask = pseudo_targets(weak_logits, threshold)
    return weighted_cross_entropy(strong_logits, targets, weight * mask.float())


class FixMatchViews(PoolCallback):
    """Turns each step's unlabeled batch (pixels, rows) into (strong views, q, λ_u · mask).

    The loader draws only from the unlabeled pool rows (``pool_pixels``, a lazy view, so a
    batch is read when drawn: O(mu · batch) in memory). The weak pass runs the model as it
    trains (training-mode batch norm, as the paper's joint batch does) but without gradient.
    At the end, the model's own pseudo-labels of the unaugmented unlabeled pool, over the
    threshold, become ``latest`` (what ``evaluate`` scores against the truth).
    """

    def __init__(self, params: FixMatchParams, pool_pixels: Any, labels: np.ndarray, seed: int,
                 batch_size: int = 500) -> None:
        self.params, self.mu, self.labels, self.batch_size = params, params.mu, labels, batch_size
        self.unlabeled = np.flatnonzero(labels < 0)
        self.pool_pixels = Rows(pool_pixels, self.unlabeled)
        self.generator = rng.views_generator(seed)
        self.latest: PseudoLabels | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, model: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        pixels, _ = batch.pop("pool")
        weak = weak_view(pixels, self.generator, self.params.flip)
        strong = strong_view(pixels, self.generator)
        with torch.no_grad():
            targets, mask = pseudo_targets(model(weak), self.params.threshold)
        batch["pool"] = (strong, targets, self.params.unlabeled_weight * mask.float())

    def on_train_end(self, trainer: pl.Trainer, model: pl.LightningModule) -> None:
        assert isinstance(model, Classifier)
        probs, _ = predict(model, self.pool_pixels, self.batch_size)
        targets = np.zeros(len(self.labels), dtype=np.int64)
        weights = np.zeros(len(self.labels), dtype=np.float32)
        targets[self.unlabeled] = probs.argmax(axis=1)
        weights[self.unlabeled] = probs.max(axis=1) >= self.params.threshold
        self.latest = PseudoLabels(targets, weights)


@dataclass(frozen=True)
class FixMatch:
    """``train.semi_supervised: fixmatch`` for one training run (a ``semi.Method``)."""

    params: FixMatchParams

    def callback(self, pool_pixels: Any, labels: np.ndarray, seed: int, from_start: bool) -> FixMatchViews:
        """Views drawn from ``seed``; ``from_start`` is moot: every step labels its own batch."""
        return FixMatchViews(self.params, pool_pixels, labels, seed)


def fixmatch(train: TrainParams, num_classes: int, cycle: int) -> FixMatch:
    """``methods.SEMI_SUPERVISED``'s builder: the same every cycle."""
    return FixMatch(train.fixmatch)
