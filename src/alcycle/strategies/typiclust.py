"""TypiClust (Hacohen et al. 2022): the most typical item of each large uncovered cluster.

Needs embeddings. k-means (faiss) into |labeled| + budget clusters; clusters holding no
labeled item are visited largest first, and from each the item with the highest
typicality (inverse mean distance to its 20 nearest neighbours in the cluster) is
taken. A low-budget strategy. Cost: one k-means, then O(s²·D) for each chosen cluster
of size s.
"""

from __future__ import annotations

import numpy as np

from alcycle.faiss_ops import kmeans
from alcycle.strategies.base import Selection, SelectionContext

NEIGHBOURS = 20  # the paper's K for typicality
KMEANS_ITERATIONS = 20


def typicality(features: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """1 / mean Euclidean distance to the ``neighbours`` nearest other rows, (N,) for (N, D).

    A single row has no neighbour: its typicality is taken as 1.
    """
    x = np.asarray(features, dtype=np.float64)
    if len(x) == 1:
        return np.ones(1)
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None))
    np.fill_diagonal(dist, np.inf)
    k = min(neighbours, len(x) - 1)
    nearest = np.partition(dist, k - 1, axis=1)[:, :k]
    return 1.0 / (nearest.mean(axis=1) + 1e-12)


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
