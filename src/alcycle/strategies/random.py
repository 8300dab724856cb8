"""Random sampling: the baseline every strategy must beat. Needs nothing; O(N)."""

from __future__ import annotations

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext


def random_strategy(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """``budget`` unlabeled rows drawn uniformly without replacement; score = draw order."""
    picked = rng.choice(context.unlabeled_rows, size=budget, replace=False)
    scores = np.arange(budget, 0, -1, dtype=np.float64)  # first drawn ranks first
    return Selection(rows=picked.astype(np.int64), scores=scores)
