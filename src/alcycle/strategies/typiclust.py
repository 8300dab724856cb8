"""TypiClust (Hacohen et al. 2022): the most typical item of each large uncovered cluster.

Needs embeddings. k-means (faiss) into |labeled| + budget clusters; clusters holding no
labeled item are visited largest first, and from each the item with the highest
typicality (inverse mean distance to its 20 nearest neighbours in the cluster) is
taken. A low-budget strategy. Cost: one k-means, then O(s²·D) time for each chosen
cluster of size s, in row blocks of bounded memory.
"""

from __future__ import annotations

import numpy as np

from alcycle.faiss_ops import kmeans
from alcycle.strategies.base import Selection, SelectionContext

NEIGHBOURS = 20  # the paper's K for typicality
KMEANS_ITERATIONS = 20
BLOCK_ENTRIES = 1 << 24  # distances held at once in typicality (128 MB of float64)


def typicality(features: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """1 / mean Euclidean distance to the ``neighbours`` nearest other rows, (N,) for (N, D).

    A single row has no neighbour: its typicality is taken as 1. Distances are float64,
    computed for ``BLOCK_ENTRIES // N`` rows at a time: O(N·D + BLOCK_ENTRIES) memory, never N×N.
    """
    x = np.asarray(features, dtype=np.float64)
    if len(x) == 1:
        return np.ones(1)
    sq = np.einsum("ij,ij->i", x, x)
    k = min(neighbours, len(x) - 1)
    step = max(1, BLOCK_ENTRIES // len(x))
    mean_distance = np.empty(len(x))
    for start in range(0, len(x), step):
        block = slice(start, min(start + step, len(x)))
        dist = np.sqrt(np.clip(sq[block, None] + sq[None, :] - 2.0 * x[block] @ x.T, 0.0, None))
        dist[np.arange(dist.shape[0]), np.arange(block.start, block.stop)] = np.inf  # not its own neighbour
        mean_distance[block] = np.partition(dist, k - 1, axis=1)[:, :k].mean(axis=1)
    return 1.0 / (mean_distance + 1e-12)


def typiclust(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    features = context.require("embeddings", "typiclust")
    n_clusters = min(int(context.labeled.sum()) + budget, len(features))
    _, assignment = kmeans(features, n_clusters, KMEANS_ITERATIONS, seed=int(rng.integers(2**31 - 1)))
    sizes = np.bincount(assignment, minlength=n_clusters)
    covered = np.zeros(n_clusters, dtype=bool)
    covered[assignment[context.labeled]] = True
    # Largest uncovered clusters first; ties go to the lower cluster id.
    order = [c for c in np.argsort(-sizes, kind="stable") if not covered[c]]
    rows, scores = [], []
    for cluster in order[:budget]:
        members = np.flatnonzero((assignment == cluster) & ~context.labeled)
        typical = typicality(features[members])
        best = int(np.argmax(typical))
        rows.append(members[best])
        scores.append(typical[best])
    if len(rows) < budget:  # empty or fully labeled clusters: fill with the most typical of the rest
        rest = np.setdiff1d(context.unlabeled_rows, rows)
        extra = rest[np.argsort(-typicality(features[rest]), kind="stable")[: budget - len(rows)]]
        rows.extend(extra.tolist())
        scores.extend([0.0] * len(extra))
    return Selection(rows=np.asarray(rows, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))
