"""Semi-supervised training: pseudo-labels for the unlabeled pool, refreshed while training.

Two pseudo-labellers, each a pure function of the model's current view of the pool:
label propagation (Iscen et al. 2019, as in Siméoni et al.) over the embeddings, and
CEAL's high-confidence labels (Wang et al. 2017) from the probabilities; FixMatch
(``fixmatch.py``) labels each step's batch from a weak view instead. Each method makes one
``PoolCallback`` for a training run. Pseudo-labels live only inside one training run: they
never enter the labeled pool file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from alcycle.classifier import Classifier
from alcycle.inference import predict
from alcycle.params import CealParams, LabelPropagationParams, TrainParams
from alcycle.propagation import Search, propagate
from alcycle.strategies.uncertainty import entropy_scores


@dataclass(frozen=True)
class PseudoLabels:
    """targets (N,) int64 and loss weights (N,) float32 for the N pool rows; weight 0 = unused."""

    targets: np.ndarray
    weights: np.ndarray

    @property
    def count(self) -> int:
        return int((self.weights > 0).sum())


# (probs (N, C), embeddings (N, D), labels (N,) with -1 = unlabeled) -> PseudoLabels
PseudoLabeller = Callable[[np.ndarray, np.ndarray, np.ndarray], PseudoLabels]


def propagation_labeller(params: LabelPropagationParams, num_classes: int) -> PseudoLabeller:
    """Label propagation: weight = certainty ω × class-balancing weight, labeled rows 0."""

    def label(probs: np.ndarray, embeddings: np.ndarray, labels: np.ndarray) -> PseudoLabels:
        result = propagate(embeddings, labels, num_classes, k=params.k, gamma=params.gamma,
                           alpha=params.alpha, reciprocal=params.reciprocal, iterations=params.iterations,
                           search=Search(params.search, params.nlist, params.nprobe, pq_m=params.pq_m))
        weights = result.weights * result.class_weights[result.pseudo_labels]
        # Labeled rows are trained on in the labeled stream, with their true labels.
        weights = np.where(labels >= 0, 0.0, weights).astype(np.float32)
        return PseudoLabels(result.pseudo_labels, weights)

    return label


def ceal_threshold(params: CealParams, cycle: int) -> float:
    """CEAL's entropy threshold δ at ``cycle`` (1-based): δ0 − dr·(cycle − 1), never below 0."""
    return max(params.delta - params.decay * (cycle - 1), 0.0)


def ceal_labeller(delta: float) -> PseudoLabeller:
    """CEAL: unlabeled rows whose predictive entropy is below ``delta`` get their predicted class."""

    def label(probs: np.ndarray, embeddings: np.ndarray, labels: np.ndarray) -> PseudoLabels:
        confident = (entropy_scores(probs) < delta) & (labels < 0)
        return PseudoLabels(probs.argmax(axis=1).astype(np.int64), confident.astype(np.float32))

    return label


class PoolCallback(pl.Callback):
    """What a semi-supervised method adds to a training run: each step, ``train.fit`` draws
    ``mu`` × batch_size items of ``pool_pixels`` as ``batch["pool"]`` = (pixels, rows), which
    the callback turns into (pixels, pseudo-targets, weights) before the step, or drops.
    ``latest`` holds the pseudo-labels in force at the end (``models/pseudo_labels.csv``)."""

    pool_pixels: Any
    mu: int = 1
    latest: PseudoLabels | None = None


class Method(Protocol):
    """What ``methods.SEMI_SUPERVISED`` builds: the ``PoolCallback`` of one training run over
    the pool's ``pool_pixels`` (N, C, H, W), with ``labels`` (N,) int64 (-1 = unlabeled)."""

    def callback(self, pool_pixels: Any, labels: np.ndarray, seed: int, from_start: bool) -> PoolCallback: ...


@dataclass(frozen=True)
class Schedule:
    """A semi-supervised method for one training run: its labeller, refreshed every ``every`` steps."""

    labeller: PseudoLabeller
    every: int

    def callback(self, pool_pixels: Any, labels: np.ndarray, seed: int, from_start: bool) -> RefreshPseudoLabels:
        """The labeller over ``pool_pixels``; ``seed`` is unused (the labellers draw nothing)."""
        return RefreshPseudoLabels(self.labeller, pool_pixels, labels, self.every, from_start)


def label_propagation(train: TrainParams, num_classes: int, cycle: int) -> Schedule:
    """``train.semi_supervised: label_propagation`` (``methods.SEMI_SUPERVISED``)."""
    return Schedule(propagation_labeller(train.label_propagation, num_classes), train.label_propagation.every)


def ceal(train: TrainParams, num_classes: int, cycle: int) -> Schedule:
    """``train.semi_supervised: ceal``: the threshold shrinks with the cycle (``methods.SEMI_SUPERVISED``)."""
    return Schedule(ceal_labeller(ceal_threshold(train.ceal, cycle)), train.ceal.every)


class PoolRows(Dataset):
    """The pool as a dataset of (row of ``pixels``, pool row): each item read when drawn.

    ``pixels`` is (N, C, H, W) images, or (N, D) cached features in frozen-feature mode, and
    indexable by row, e.g. a ``pixel_store.Rows`` over a memory map, so a loader holds one batch of the pool, never all of it: O(batch)
    in memory. Yields what ``TensorDataset(pool, arange(N))`` would, so training draws the
    same batches either way.
    """

    def __init__(self, pixels: Any) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self.pixels[row])), row


class RefreshPseudoLabels(PoolCallback):
    """Recompute the pool's pseudo-labels every ``every`` steps with the model being trained,
    and give each step's pool batch its current ones.

    The pool loader yields (pixels, pool rows); before each step this callback turns that
    batch into (pixels, pseudo-targets, weights), or drops it while the pool has no
    pseudo-labels yet, so the model reads them from its batch alone. It is done here, not
    in the dataset, because the loader fetches a batch ahead, before the step's refresh.
    ``from_start`` also labels before the first step: worth it when the model starts from
    pretrained features, not from random ones. ``pool_pixels`` (N, C, H, W) is read in
    batches (``PoolRows``, ``inference.predict``), never copied whole.
    """

    def __init__(self, labeller: PseudoLabeller, pool_pixels: Any, labels: np.ndarray,
                 every: int, from_start: bool, batch_size: int = 500) -> None:
        self.labeller, self.pool_pixels, self.labels = labeller, pool_pixels, labels
        self.every, self.from_start, self.batch_size = every, from_start, batch_size
        self.latest: PseudoLabels | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, model: Classifier, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every == 0 and (step > 0 or self.from_start):
            probs, embeddings = predict(model, self.pool_pixels, self.batch_size)
            self.latest = self.labeller(probs, embeddings, self.labels)
        self.label_pool_batch(batch)

    def label_pool_batch(self, batch: dict[str, Any]) -> None:
        """``batch["pool"]``: (pixels (B, C, H, W), rows (B,)) -> (pixels, targets (B,), weights (B,))."""
        pixels, rows = batch.pop("pool")
        if self.latest is not None:
            batch["pool"] = (pixels, torch.from_numpy(self.latest.targets)[rows],
                             torch.from_numpy(self.latest.weights)[rows])
