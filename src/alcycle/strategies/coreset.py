"""Core-Set (Sener & Savarese 2018): exact k-center greedy over embeddings.

Needs embeddings. Cost O(N·D) per pick and O(N) memory beyond the features: a
min-distance vector to the chosen centres is updated with one matrix-vector product
per pick, so the N×N distance matrix (4 TB at N = 1M) is never formed.
"""

from __future__ import annotations

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext

_BLOCK = 4096  # centres per block when measuring distances to the labeled set


def k_center_greedy(
    features: np.ndarray, centres: np.ndarray, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy 2-approximation of k-center: repeatedly pick the point farthest from all centres.

    features: (N, D) float; centres: (K,) int row indices already chosen (may be empty).
    Returns the picked rows (budget,) int64 and each pick's distance to its nearest
    centre at the time it was picked (budget,) float64. With no centres the first
    pick is drawn with ``rng``.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    sq_norms = np.einsum("ij,ij->i", x, x)
    min_dist = _squared_distances_to(x, sq_norms, np.asarray(centres, dtype=np.int64))
    rows = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float64)
    for step in range(budget):
        if step == 0 and len(centres) == 0:
            pick = int(rng.integers(len(x)))
        else:
            pick = int(np.argmax(min_dist))
        rows[step] = pick
        dists[step] = np.sqrt(max(float(min_dist[pick]), 0.0))
        # |x - c|² = |x|² - 2 x·c + |c|²: one GEMV streams the features once per pick.
        np.minimum(min_dist, sq_norms - 2.0 * (x @ x[pick]) + sq_norms[pick], out=min_dist)
        min_dist[pick] = -np.inf
    return rows, dists


def _squared_distances_to(x: np.ndarray, sq_norms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,) float32 squared distance of every row to its nearest centre; -inf on the centres."""
    min_dist = np.full(len(x), np.inf, dtype=np.float32)
    for start in range(0, len(centres), _BLOCK):
        block = centres[start : start + _BLOCK]
        d = sq_norms[:, None] - 2.0 * (x @ x[block].T) + sq_norms[block][None, :]
        np.minimum(min_dist, d.min(axis=1), out=min_dist)
    # Centres can never be picked again; -inf also survives every later np.minimum.
    min_dist[centres] = -np.inf
    return min_dist


def coreset(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """k-center greedy with the labeled items as the initial centres; score = distance."""
    features = context.require("embeddings", "coreset")
    rows, dists = k_center_greedy(features, np.flatnonzero(context.labeled), budget, rng)
    return Selection(rows=rows, scores=dists)
