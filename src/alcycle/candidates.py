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
SEARCHES = ("exact", "ivfpq")  # select.candidates.search


def candidate_rows(method: str, labeled: np.ndarray, size: int, k: int, rng: np.random.Generator,
                   embeddings: np.ndarray | None = None, at: np.ndarray | None = None,
                   search: str = "exact") -> np.ndarray:
    """The context rows a strategy sees: every labeled row and at most ``size`` unlabeled ones.

    labeled: (N,) bool; embeddings: (E, D) float32 (a memmap is fine), needed by ``seals``,
    whose row ``at[i]`` belongs to item i (``at`` (N,) int64, default the identity). Returns (M,) int64
    ascending rows. ``all`` keeps every row and draws nothing from ``rng``, so the strategy's
    picks are exactly those without candidates. ``random`` draws ``size`` unlabeled rows from
    ``rng``; ``seals`` keeps the union of each labeled row's ``k`` nearest unlabeled rows
    (the ``size`` nearest to a labeled row when the union is larger), topped up at random when
    it is smaller, and is ``random`` while nothing is labeled. Memory: O(N) beyond the inputs,
    plus the labeled items' embeddings and one block of ``faiss_ops.knn_l2``. ``search``
    ``ivfpq`` finds the neighbours through ``faiss_ops.knn_l2_ivfpq`` instead (approximate,
    N·(D/4 + 8) bytes of index, for pools too big to scan for every labeled item).
    """
    if method not in METHODS:
        raise ValueError(f"unknown candidate method {method!r}; choose one of: {', '.join(METHODS)}")
    unlabeled = np.flatnonzero(~labeled)
    if method == "all" or len(unlabeled) <= size:
        return np.arange(len(labeled), dtype=np.int64)
    if method == "seals" and labeled.any():
        at = np.arange(len(labeled)) if at is None else at
        if embeddings is None or len(at) != len(labeled) or (len(at) and at.max() >= len(embeddings)):
            raise ValueError(f"candidates 'seals' needs embeddings with a row for each of the {len(labeled)} items")
        chosen = _nearest_to_labeled(embeddings, at[labeled], at[unlabeled], size, k, rng, search)
    else:
        chosen = rng.choice(len(unlabeled), size=size, replace=False)
    return np.union1d(np.flatnonzero(labeled), unlabeled[chosen]).astype(np.int64)


def _nearest_to_labeled(embeddings: np.ndarray, labeled_at: np.ndarray, unlabeled_at: np.ndarray, size: int,
                        k: int, rng: np.random.Generator, search: str = "exact") -> np.ndarray:
    """Positions in ``unlabeled_at`` of SEALS's candidates, exactly ``size`` of them."""
    from alcycle import faiss_ops

    if search not in SEARCHES:
        raise ValueError(f"unknown candidate search {search!r}; choose one of: {', '.join(SEARCHES)}")
    k = min(k, len(unlabeled_at))
    knn = faiss_ops.knn_l2 if search == "exact" else faiss_ops.knn_l2_ivfpq
    distances, found = knn(embeddings[labeled_at], embeddings, k, rows=unlabeled_at)
    # Each unlabeled item's distance to its nearest labeled item (inf: no labeled item's neighbour).
    nearest = np.full(len(unlabeled_at), np.inf, dtype=np.float32)
    kept = found.ravel() >= 0  # an approximate search may find fewer than k
    np.minimum.at(nearest, found.ravel()[kept], distances.ravel()[kept])
    union = np.flatnonzero(np.isfinite(nearest))
    if len(union) >= size:
        # Ties go to the lower row, so the subset depends only on the inputs.
        return union[np.argsort(nearest[union], kind="stable")[:size]]
    rest = np.flatnonzero(~np.isfinite(nearest))
    return np.concatenate([union, rng.choice(rest, size=size - len(union), replace=False)])
