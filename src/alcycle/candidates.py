"""Candidate subsets: which unlabeled pool items a strategy scores (``select.candidates``).

A strategy whose cost grows faster than the pool, or one that is simply too slow at a
million items, can score a subset instead: a random one, or SEALS's (Coleman et al. 2020,
arXiv 2007.00077) nearest unlabeled neighbours of the labeled items, which keeps the
items near the current decision-relevant region at a fraction of the cost. Labeled items
always stay in the context, as labeled: Core-Set's centres and TypiClust's covered
clusters come from them. This module imports no faiss until SEALS runs.
"""

from __future__ import annotations

import numpy as np

METHODS = ("all", "random", "seals")  # select.candidates.method


def candidate_rows(method: str, labeled: np.ndarray, size: int, k: int, rng: np.random.Generator,
                   embeddings: np.ndarray | None = None) -> np.ndarray:
    """The context rows a strategy sees: every labeled row and at most ``size`` unlabeled ones.

    labeled: (N,) bool; embeddings: (N, D) float32, needed by ``seals``. Returns (M,) int64
    ascending rows. ``all`` keeps every row and draws nothing from ``rng``, so the strategy's
    picks are exactly those without candidates. ``random`` draws ``size`` unlabeled rows from
    ``rng``; ``seals`` keeps the union of each labeled row's ``k`` nearest unlabeled rows
    (the ``size`` nearest to a labeled row when the union is larger), topped up at random when
    it is smaller, and is ``random`` while nothing is labeled. Memory: O(N) beyond the inputs.
    """
    if method not in METHODS:
        raise ValueError(f"unknown candidate method {method!r}; choose one of: {', '.join(METHODS)}")
    unlabeled = np.flatnonzero(~labeled)
    if method == "all" or len(unlabeled) <= size:
        return np.arange(len(labeled), dtype=np.int64)
    if method == "seals" and labeled.any():
        if embeddings is None or len(embeddings) != len(labeled):
            raise ValueError(f"candidates 'seals' needs embeddings with one row per item ({len(labeled)})")
        chosen = _nearest_to_labeled(embeddings, labeled, unlabeled, size, k, rng)
    else:
        chosen = rng.choice(len(unlabeled), size=size, replace=False)
    return np.union1d(np.flatnonzero(labeled), unlabeled[chosen]).astype(np.int64)


def _nearest_to_labeled(embeddings: np.ndarray, labeled: np.ndarray, unlabeled: np.ndarray, size: int,
                        k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions in ``unlabeled`` of SEALS's candidates, exactly ``size`` of them."""
    from alcycle import faiss_ops

    distances, found = faiss_ops.knn_l2(embeddings[labeled], embeddings[unlabeled], min(k, len(unlabeled)))
    # Each unlabeled row's distance to its nearest labeled row (inf: no labeled row's neighbour).
    nearest = np.full(len(unlabeled), np.inf, dtype=np.float32)
    np.minimum.at(nearest, found.ravel(), distances.ravel())
    union = np.flatnonzero(np.isfinite(nearest))
    if len(union) >= size:
        # Ties go to the lower row, so the subset depends only on the inputs.
        return union[np.argsort(nearest[union], kind="stable")[:size]]
    rest = np.flatnonzero(~np.isfinite(nearest))
    return np.concatenate([union, rng.choice(rest, size=size - len(union), replace=False)])
