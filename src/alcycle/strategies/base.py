"""What every query strategy receives and returns.

A strategy is a function ``(context, budget, rng) -> Selection``. The loop builds one
``SelectionContext`` and never special-cases a strategy: a strategy reads what it
needs from the context and fails clearly when that is missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class SelectionContext:
    """The pool as strategies see it; row i of every array is the same item.

    ids:            (N,) str, stable item ids of the selectable split
    labeled:        (N,) bool, True where the item is already labeled
    probs:          (N, C) float32 class probabilities from the current model, or None
    embeddings:     (N, D) float32 penultimate-layer features, or None
    mc_probs:       (N, T, C) float32 probabilities of T MC-dropout passes, or None
    predicted_loss: (N,) float32 output of the model's loss prediction module, or None
    pixels:         (N, C, H, W) uint8 images (a memmap is fine), or None
    vit:            a vision transformer (``alcycle.vit``) for GEAL, or None
    model:          the current classifier (``alcycle.classifier.Classifier``, eval mode), or None
    gan:            a trained GAN (``alcycle.gan.TrainedGan``) for ASAL, or None
    gan_features:   (N, K) float32 the GAN's matching features of each item (pretrain-gan's), or None
    settings:       the strategy's own ``params.select`` section (e.g. ``VaalParams``), or None
    compute:        ``params.compute``, where a strategy's own Lightning fit runs (VAAL's), or None
    """

    ids: np.ndarray
    labeled: np.ndarray
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    mc_probs: np.ndarray | None = None
    predicted_loss: np.ndarray | None = None
    pixels: np.ndarray | None = None
    vit: Any = None
    model: Any = None
    gan: Any = None
    gan_features: np.ndarray | None = None
    settings: Any = None
    compute: Any = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.labeled.shape != (n,) or self.labeled.dtype != bool:
            raise ValueError(f"labeled must be a bool array of shape ({n},), got {self.labeled.shape}")
        for name, ndim in (("probs", 2), ("embeddings", 2), ("mc_probs", 3), ("predicted_loss", 1),
                           ("pixels", 4), ("gan_features", 2)):
            array = getattr(self, name)
            if array is not None and (array.ndim != ndim or array.shape[0] != n):
                raise ValueError(f"{name} must have {ndim} dimensions and {n} rows, got shape {array.shape}")

    def require(self, name: str, strategy: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"strategy '{strategy}' needs {name}, which the context does not hold")
        return value

    @property
    def unlabeled_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)


@dataclass(frozen=True)
class Selection:
    """``rows`` (budget,) int64 indices into the context, best first; ``scores`` (budget,) float64.

    A strategy that synthesises its queries (GAAL) returns no rows and ``images`` (budget, C, H, W)
    uint8 instead, best first, with one score each.
    """

    rows: np.ndarray
    scores: np.ndarray
    images: np.ndarray | None = None


Strategy = Callable[[SelectionContext, int, np.random.Generator], Selection]

# What a strategy may ask the loop for, beyond ids and labeled; the stages produce
# each one only when the chosen strategy lists it (see ``alcycle.strategies.needs``).
INPUTS = ("probs", "embeddings", "mc_probs", "predicted_loss", "pixels", "vit", "model", "gan", "gan_features",
          "settings", "compute")


@dataclass(frozen=True)
class Registered:
    """A strategy and the one line that documents it.

    target:   where the function lives, ``"module:function"``; imported on first use, so
              reading the registry (every stage checks ``params.yaml`` against it) never
              loads torch, faiss or Lightning
    needs:    the context fields it reads (a subset of ``INPUTS``)
    settings: the ``params.select`` section it reads as ``context.settings``, if any
    summary:  what it needs and what it costs, for the registry table and ``--help``
    synthesises: its queries are new images (``Selection.images``), not pool rows
    """

    target: str
    needs: frozenset[str]
    summary: str
    settings: str | None = None
    synthesises: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(INPUTS)
        if unknown:
            raise ValueError(f"unknown strategy inputs {sorted(unknown)}; choose from {INPUTS}")

    @property
    def function(self) -> Strategy:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


def top_scores(context: SelectionContext, scores: np.ndarray, budget: int) -> Selection:
    """The ``budget`` unlabeled rows with the highest scores; ties go to the lower row."""
    rows = context.unlabeled_rows
    # A stable sort on the negated score keeps equal scores in row order, so picks
    # depend only on the inputs, never on the sort algorithm.
    order = np.argsort(-scores[rows], kind="stable")[:budget]
    picked = rows[order]
    return Selection(rows=picked.astype(np.int64), scores=scores[picked].astype(np.float64))
