"""TypiClust (Hacohen et al. 2022): the most typical item of each large uncovered cluster.

Needs embeddings. k-means (faiss) into |labeled| + budget clusters; clusters holding no
labeled item are visited largest first, and from each the item with the highest
typicality (inverse mean distance to its 20 nearest neighbours in the cluster) is
taken. A low-budget strategy. Cost: one k-means, then O(s²·D) time for each chosen
cluster of size s, in row blocks of bounded memory.

With ``select.typiclust.search: ivfpq`` a cluster of more than ``EXACT_UP_TO`` items finds
its members' neighbours through ``faiss_ops.knn_l2_ivfpq`` (a compressed inverted file over
the cluster, candidates re-scored exactly): O(s·√s·D) rather than O(s²·D), for pools of 10⁷,
whose few clusters hold millions each. Smaller clusters are searched exactly either way.
"""

from __future__ import annotations

import numpy as np

from alcycle.faiss_ops import kmeans, knn_l2_ivfpq
from alcycle.strategies.base import Selection, SelectionContext

NEIGHBOURS = 20  # the paper's K for typicality
KMEANS_ITERATIONS = 20
BLOCK_ENTRIES = 1 << 24  # distances held at once in typicality (128 MB of float64)
EXACT_UP_TO = 20_000  # search: ivfpq: clusters this small or smaller are searched exactly


def typicality(features: np.ndarray, neighbours: int = NEIGHBOURS, search: str = "exact", seed: int = 0
               ) -> np.ndarray:
    """1 / mean Euclidean distance to the ``neighbours`` nearest other rows, (N,) for (N, D).

    A single row has no neighbour: its typicality is taken as 1. Distances are float64,
    computed for ``BLOCK_ENTRIES // N`` rows at a time: O(N·D + BLOCK_ENTRIES) memory, never N×N.
    With ``search`` ivfpq and more than ``EXACT_UP_TO`` rows, the neighbours are approximate
    (module docstring; ``seed`` draws the index's training sample).
    """
    if search == "ivfpq" and len(features) > EXACT_UP_TO:
        return _approximate_typicality(features, neighbours, seed)
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


def _approximate_typicality(features: np.ndarray, neighbours: int, seed: int) -> np.ndarray:
    """``typicality`` from approximate neighbours: each row's k + 1 nearest, itself dropped."""
    x = np.asarray(features, dtype=np.float32)
    squared, found = knn_l2_ivfpq(x, x, neighbours + 1, seed=seed)
    others = found != np.arange(len(x))[:, None]
    others[others.all(axis=1), -1] = False  # itself not found: drop the farthest instead
    distances = np.sqrt(np.clip(squared[others].reshape(len(x), neighbours).astype(np.float64), 0.0, None))
    return 1.0 / (distances.mean(axis=1) + 1e-12)


def typiclust(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    features = context.require("embeddings", "typiclust")
    search = context.settings.search if context.settings is not None else "exact"
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
        typical = typicality(features[members], search=search, seed=int(cluster))
        best = int(np.argmax(typical))
        rows.append(members[best])
        scores.append(typical[best])
    if len(rows) < budget:  # empty or fully labeled clusters: fill with the most typical of the rest
        rest = np.setdiff1d(context.unlabeled_rows, rows)
        extra = rest[np.argsort(-typicality(features[rest], search=search), kind="stable")[: budget - len(rows)]]
        rows.extend(extra.tolist())
        scores.extend([0.0] * len(extra))
    return Selection(rows=np.asarray(rows, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))
