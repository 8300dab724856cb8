"""What every query strategy receives and returns.

A strategy is a function ``(context, budget, rng) -> Selection``. The loop builds one
``SelectionContext`` and never special-cases a strategy: a strategy reads what it
needs from the context and fails clearly when that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class SelectionContext:
    """The pool as strategies see it; row i of every array is the same item.

    ids:        (N,) str, stable item ids of the selectable split
    labeled:    (N,) bool, True where the item is already labeled
    probs:      (N, C) float32 class probabilities from the current model, or None
    embeddings: (N, D) float32 penultimate-layer features, or None
    """

    ids: np.ndarray
    labeled: np.ndarray
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.labeled.shape != (n,) or self.labeled.dtype != bool:
            raise ValueError(f"labeled must be a bool array of shape ({n},), got {self.labeled.shape}")
        for name in ("probs", "embeddings"):
            array = getattr(self, name)
            if array is not None and (array.ndim != 2 or array.shape[0] != n):
                raise ValueError(f"{name} must have shape ({n}, k), got {array.shape}")

    def require(self, name: str, strategy: str) -> np.ndarray:
        array = getattr(self, name)
        if array is None:
            raise ValueError(f"strategy '{strategy}' needs {name}, which the context does not hold")
        return array

    @property
    def unlabeled_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)


@dataclass(frozen=True)
class Selection:
    """``rows`` (budget,) int64 indices into the context, best first; ``scores`` (budget,) float64."""

    rows: np.ndarray
    scores: np.ndarray


Strategy = Callable[[SelectionContext, int, np.random.Generator], Selection]


def top_scores(context: SelectionContext, scores: np.ndarray, budget: int) -> Selection:
    """The ``budget`` unlabeled rows with the highest scores; ties go to the lower row."""
    rows = context.unlabeled_rows
    # A stable sort on the negated score keeps equal scores in row order, so picks
    # depend only on the inputs, never on the sort algorithm.
    order = np.argsort(-scores[rows], kind="stable")[:budget]
    picked = rows[order]
    return Selection(rows=picked.astype(np.int64), scores=scores[picked].astype(np.float64))
