"""The query-strategy registry: one mapping from name to function, one signature.

| name             | needs       | cost per call          |
|------------------|-------------|------------------------|
| random           | nothing     | O(N)                   |
| entropy          | probs       | O(N·C)                 |
| margin           | probs       | O(N·C log C)           |
| least_confidence | probs       | O(N·C)                 |
| coreset          | embeddings  | O(N·D·budget), O(N) memory |
| badge            | probs, embeddings | O(N·(C+D)·budget), O(N) memory |
| typiclust        | embeddings  | one k-means, then O(s²·D) per chosen cluster of size s |
"""

from __future__ import annotations

import numpy as np

from alcycle.strategies.badge import badge
from alcycle.strategies.base import Selection, SelectionContext, Strategy
from alcycle.strategies.coreset import coreset
from alcycle.strategies.random import random_strategy
from alcycle.strategies.typiclust import typiclust
from alcycle.strategies.uncertainty import entropy, least_confidence, margin

STRATEGIES: dict[str, Strategy] = {
    "badge": badge,
    "coreset": coreset,
    "entropy": entropy,
    "least_confidence": least_confidence,
    "margin": margin,
    "random": random_strategy,
    "typiclust": typiclust,
}


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; an unknown name lists the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy '{name}'; choose one of: {', '.join(sorted(STRATEGIES))}") from None


def select(context: SelectionContext, name: str, budget: int, rng: np.random.Generator) -> Selection:
    """Run strategy ``name`` and check its answer: ``budget`` distinct unlabeled rows."""
    strategy = get_strategy(name)
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    available = int((~context.labeled).sum())
    if budget > available:
        raise ValueError(f"budget {budget} exceeds the {available} unlabeled items left in the pool")
    selection = strategy(context, int(budget), rng)
    rows = selection.rows
    if len(rows) != budget or len(np.unique(rows)) != budget or context.labeled[rows].any():
        raise RuntimeError(f"strategy '{name}' broke its contract: {budget} distinct unlabeled rows expected")
    return selection


__all__ = ["STRATEGIES", "Selection", "SelectionContext", "get_strategy", "select"]
