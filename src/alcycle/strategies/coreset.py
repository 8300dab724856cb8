"""Core-Set (Sener & Savarese 2018): exact k-center greedy over embeddings.

Needs embeddings. Cost O(N·D) per pick; memory one centred float32 copy of the
features plus O(N): a min-distance vector to the chosen centres is updated with one
matrix-vector product per pick, so the N×N distance matrix (4 TB at N = 1M) is never
formed. Each pick streams the features once, which is the memory-bandwidth floor;
``benchmarks/coreset.py`` measures the loop against a plain numpy one.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from alcycle.strategies.base import Selection, SelectionContext

# Rows per block when centring: memory-mapped features are read one block at a time.
CENTRING_ROWS = 16_384
# Rows × centres of one block of the start-up distances to the labeled set: the largest
# temporary is 256 MB of float32, whatever N and the number of labeled items.
ROW_BLOCK = 16_384
CENTRE_BLOCK = 4_096


def k_center_greedy(
    features: np.ndarray,
    centres: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy 2-approximation of k-center: repeatedly pick the point farthest from all centres.

    features: (N, D) float; centres: (K,) int row indices already chosen (may be empty).
    Returns the picked rows (budget,) int64 and each pick's distance to its nearest
    centre at the time it was picked (budget,) float64. With no centres the first
    pick is drawn with ``rng``. ``progress`` shows a tqdm bar over the picks on stderr.

    Arithmetic is float32 on the features minus their mean, so distances are exact to
    float32 rounding of the spread, whatever the offset. Memory beyond the features: the
    centred (N, D) float32 copy, three (N,) float32 vectors and one start-up block of at
    most 256 MB.
    """
    features, centres = np.asarray(features), np.asarray(centres, dtype=np.int64)
    _check(features, centres, budget)
    x = centred(features)
    sq_norms = np.einsum("ij,ij->i", x, x)
    min_dist = _squared_distances_to(x, sq_norms, centres)
    scratch = np.empty_like(min_dist)  # reused by every pick: the loop allocates nothing of size N
    rows = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float64)
    for step in tqdm(range(budget), desc="k-center greedy", unit="pick", file=sys.stderr, disable=not progress):
        if step == 0 and len(centres) == 0:
            pick = int(rng.integers(len(x)))
        else:
            pick = int(np.argmax(min_dist))
        rows[step] = pick
        dists[step] = np.sqrt(max(float(min_dist[pick]), 0.0))
        _add_centre(x, sq_norms, pick, min_dist, scratch)
    return rows, dists


def centred(features: np.ndarray) -> np.ndarray:
    """(N, D) float32 copy of ``features`` minus their column mean, built in row blocks.

    Distances do not change under a translation, but |x|² - 2 x·c + |c|² in float32
    rounds at the scale of |x|²: with an offset of 100 and a spread of 1 that is 0.2 of
    a squared distance of 32. Centred, the rounding scales with the spread. The mean is
    summed in float64; rounding it to float32 only moves every row by the same vector.
    Memory beyond the result: numpy's ufunc buffers, O(D) of our own.
    """
    n, d = features.shape
    total = np.zeros(d, dtype=np.float64)
    for start in range(0, n, CENTRING_ROWS):
        total += features[start : start + CENTRING_ROWS].sum(axis=0, dtype=np.float64)
    mean = (total / max(n, 1)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, CENTRING_ROWS):
        # One rounding per entry, of x - mean: exact to the spread's float32 rounding.
        np.subtract(features[start : start + CENTRING_ROWS], mean, out=x[start : start + CENTRING_ROWS],
                    casting="same_kind")
    return x


def _add_centre(x: np.ndarray, sq_norms: np.ndarray, pick: int, min_dist: np.ndarray, scratch: np.ndarray) -> None:
    """min_dist ← min(min_dist, |x - x[pick]|²) in place, then -inf at ``pick``."""
    # |x - c|² = |x|² - 2 x·c + |c|²: one GEMV streams the features once; the rest is
    # in-place work on (N,) vectors, a few MB against the GB of the features.
    np.matmul(x, x[pick], out=scratch)
    scratch *= -2.0
    scratch += sq_norms
    scratch += sq_norms[pick]
    np.minimum(min_dist, scratch, out=min_dist)
    min_dist[pick] = -np.inf


def _squared_distances_to(x: np.ndarray, sq_norms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,) float32 squared distance of every row to its nearest centre; -inf on the centres.

    x: (N, D) float32, centred (see ``centred``): the expansion rounds at the scale of |x|².
    """
    min_dist = np.full(len(x), np.inf, dtype=np.float32)
    if len(centres) == 0:
        return min_dist
    # One preallocated block: a fresh 256 MB array per block would be re-faulted from the OS each time.
    block = np.empty(min(ROW_BLOCK, len(x)) * min(CENTRE_BLOCK, len(centres)), dtype=np.float32)
    for c_start in range(0, len(centres), CENTRE_BLOCK):
        chosen = centres[c_start : c_start + CENTRE_BLOCK]
        c, c_sq = x[chosen], sq_norms[chosen]
        for r_start in range(0, len(x), ROW_BLOCK):
            rows = slice(r_start, r_start + ROW_BLOCK)
            d = block[: len(x[rows]) * len(chosen)].reshape(-1, len(chosen))
            np.matmul(x[rows], c.T, out=d)
            d *= -2.0
            d += sq_norms[rows, None]
            d += c_sq
            np.minimum(min_dist[rows], d.min(axis=1), out=min_dist[rows])
    # Centres can never be picked again; -inf also survives every later np.minimum.
    min_dist[centres] = -np.inf
    return min_dist


def _check(x: np.ndarray, centres: np.ndarray, budget: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, D) array, got shape {x.shape}")
    if centres.ndim != 1 or (len(centres) and not 0 <= centres.min() <= centres.max() < len(x)):
        raise ValueError(f"centres must be a 1-D array of row indices in [0, {len(x)}), got {centres!r}")
    available = len(x) - len(np.unique(centres))
    if not 0 <= budget <= available:
        raise ValueError(f"budget must be in [0, {available}] (rows that are not centres), got {budget}")


def coreset(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """k-center greedy with the labeled items as the initial centres; score = distance."""
    features = context.require("embeddings", "coreset")
    rows, dists = k_center_greedy(features, np.flatnonzero(context.labeled), budget, rng)
    return Selection(rows=rows, scores=dists)
