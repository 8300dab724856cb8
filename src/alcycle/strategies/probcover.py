"""ProbCover (Yehuda et al. 2022): greedy maximum coverage of δ-balls in the embedding space.

Needs embeddings, probs (for the number of classes) and ``select.probcover``. Embeddings are
L2-normalised. Item x covers every item z with ‖x − z‖ < δ, itself included. Items within δ
of a labeled item are covered from the start; each pick is then the unlabeled item whose
ball holds the most uncovered items, and once everything is covered the rest of the budget
is drawn at random (as in the authors' code). A low-budget strategy, and a cold start.

δ is ``select.probcover.delta``, or, when that is 0, the largest δ whose purity is at least
``alpha``: a ball is pure when every item in it has its centre's k-means pseudo-label
(k = ``clusters``, 0 = the number of classes), so with d(x) the distance from x to the
nearest item of another cluster, purity(δ) = share of x with d(x) ≥ δ, and the largest δ is
a quantile of d, measured on up to ``PURITY_SAMPLE`` items against the whole set.

Cost: the δ-ball graph of E edges is built from blocks of inner products (numpy's BLAS,
as ``faiss_ops.knn_inner_product``): O(N²·D) time, O(E + block) memory; the greedy is
O(E + N·budget). A δ that puts a large share of the pool in every ball makes E grow as
N², so the graph stops at ``MAX_EDGES`` with an error that says what to change; on a big
pool give ProbCover ``select.candidates``.

With ``search: ivfpq`` one compressed inverted file (``faiss_ops.CompressedInnerProducts``,
N·(D/4 + 8) bytes) answers both: the purity sample's nearest other-cluster item is sought
among its ``PURITY_NEIGHBOURS`` approximate neighbours (where none of them is of another
cluster, the farthest of them stands in, a lower bound; a true neighbour missed in an
unprobed cell makes d too large instead), and the graph comes from faiss's range search on
the codes, every candidate re-scored exactly: it never holds an edge longer than δ, and loses
only those to rows in unprobed cells. The time no longer grows as N².
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from alcycle.faiss_ops import CompressedInnerProducts, kmeans, l2_normalise
from alcycle.strategies.base import Selection, SelectionContext

PURITY_SAMPLE = 5_000  # items whose nearest other-cluster distance sets δ
KMEANS_ITERATIONS = 20
KMEANS_RUNS = 3  # the best of three k-means runs: one bad start splits a class and shrinks δ to nothing
QUERY_BLOCK, DATABASE_BLOCK = 2048, 8192  # one 64 MB block of inner products at a time
MAX_EDGES = 200_000_000  # about 1.6 GB of graph with its transpose
PURITY_NEIGHBOURS = 100  # search: ivfpq: approximate neighbours searched for another cluster


def probcover(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    settings = context.require("settings", "probcover")
    x = l2_normalise(context.require("embeddings", "probcover"))
    # One draw, as before there was a choice of search, unless nothing needs a seed.
    seed = int(rng.integers(2**31 - 1)) if settings.delta <= 0 or settings.search == "ivfpq" else 0
    index = CompressedInnerProducts(x, seed=seed) if settings.search == "ivfpq" else None
    delta = settings.delta
    if delta <= 0:
        clusters = settings.clusters or context.require("probs", "probcover").shape[1]
        delta = purity_delta(x, clusters, settings.alpha, seed, rng, index)
    graph = ball_graph(x, delta, index)
    return greedy_cover(graph, context.labeled, budget, rng)


def purity_delta(x: np.ndarray, clusters: int, alpha: float, seed: int, rng: np.random.Generator,
                 index: CompressedInnerProducts | None = None) -> float:
    """The largest δ at which at least ``alpha`` of the (sampled) balls are pure on k-means labels.

    With d sorted ascending over the s sampled items and m = ⌊(1 − alpha)·s⌋, purity(δ) ≥ alpha
    exactly when δ ≤ d[m]: at most m items then have another cluster closer than δ. With an
    ``index``, d comes from each sampled item's approximate neighbours (module docstring).
    """
    clusters = min(clusters, len(x))
    _, labels = kmeans(x, clusters, KMEANS_ITERATIONS, seed, nredo=KMEANS_RUNS)
    sample = np.arange(len(x)) if len(x) <= PURITY_SAMPLE else np.sort(rng.choice(len(x), PURITY_SAMPLE, replace=False))
    if index is None:
        nearest_other = _nearest_other_cluster(x, labels, sample)
    else:
        nearest_other = _nearest_other_cluster_among_neighbours(index, labels, sample)
    distances = np.sort(np.sqrt(nearest_other))
    m = int(np.floor((1.0 - alpha) * len(distances) + 1e-9))
    delta = float(distances[min(m, len(distances) - 1)])
    # One cluster (or all others unreachable): no ball is ever impure, any radius covers all.
    return delta if np.isfinite(delta) else 2.0


def _nearest_other_cluster(x: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Squared distance (s,) from each sampled row to the nearest row of another cluster, exactly."""
    nearest_other = np.full(len(sample), np.inf)
    queries, query_labels = x[sample], labels[sample]
    for start in range(0, len(x), DATABASE_BLOCK):
        block = slice(start, start + DATABASE_BLOCK)
        squared = np.clip(2.0 - 2.0 * (queries @ x[block].T), 0.0, None)
        squared[query_labels[:, None] == labels[block][None, :]] = np.inf
        np.minimum(nearest_other, squared.min(axis=1), out=nearest_other)
    return nearest_other


def _nearest_other_cluster_among_neighbours(index: CompressedInnerProducts, labels: np.ndarray,
                                            sample: np.ndarray) -> np.ndarray:
    """``_nearest_other_cluster`` over each sampled row's approximate neighbours; where all are of
    its own cluster, the squared distance to the farthest of them (a lower bound)."""
    similarities, found = index.knn(index.x[sample], min(PURITY_NEIGHBOURS, len(labels)))
    valid = found >= 0
    other = valid & (labels[np.where(valid, found, 0)] != labels[sample][:, None])
    squared = np.clip(2.0 - 2.0 * similarities.astype(np.float64), 0.0, None)
    nearest = np.where(other, squared, np.inf).min(axis=1)
    farthest = np.where(valid, squared, -np.inf).max(axis=1)
    return np.where(np.isfinite(nearest), nearest, np.where(np.isfinite(farthest), farthest, np.inf))


def ball_graph(x: np.ndarray, delta: float, index: CompressedInnerProducts | None = None) -> sparse.csr_matrix:
    """The δ-ball graph of unit rows ``x`` (N, D): row i holds every j with ‖x_i − x_j‖ < δ, i itself
    too; exact, or with an ``index`` from its range search (module docstring)."""
    n = len(x)
    threshold = 1.0 - delta * delta / 2.0  # ‖a − b‖² = 2 − 2⟨a, b⟩ for unit rows
    rows, cols, edges = [], [], 0
    for r, c in _pairs_above(x, threshold) if index is None else index.pairs_above(threshold):
        edges += len(r)
        if edges > MAX_EDGES:
            raise ValueError(f"probcover: δ = {delta:.4g} puts more than {MAX_EDGES:,} pairs of the {n:,} "
                             f"items within reach of each other; set select.probcover.delta smaller (or "
                             f"alpha higher), or score a subset with select.candidates")
        rows.append(r.astype(np.int32 if n < 2**31 else np.int64))
        cols.append(c.astype(np.int32 if n < 2**31 else np.int64))
    # Every item covers itself, even where rounding put ⟨x, x⟩ below the threshold.
    itself = np.arange(n, dtype=rows[0].dtype if rows else np.int64)
    r, c = np.concatenate([*rows, itself]), np.concatenate([*cols, itself])
    graph = sparse.csr_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    graph.data[:] = 1  # the diagonal was given twice where the blocks found it too
    return graph


def _pairs_above(x: np.ndarray, threshold: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (i, j) with ⟨x_i, x_j⟩ > ``threshold``, from blocks of exact inner products."""
    for i in range(0, len(x), QUERY_BLOCK):
        queries = x[i : i + QUERY_BLOCK]
        for j in range(0, len(x), DATABASE_BLOCK):
            r, c = np.nonzero(queries @ x[j : j + DATABASE_BLOCK].T > threshold)
            yield r + i, c + j


def greedy_cover(graph: sparse.csr_matrix, labeled: np.ndarray, budget: int, rng: np.random.Generator) -> Selection:
    """Greedy maximum coverage: ``budget`` unlabeled rows, each the one covering the most uncovered
    rows at its turn (ties to the lower row); then random picks once all is covered.

    scores: how many rows each pick newly covered (0 for the random ones).
    """
    n = graph.shape[0]
    covers = graph.tocsr()  # row x: the rows x covers
    covered_by = graph.T.tocsr()  # row z: the rows that cover z
    covered = np.zeros(n, dtype=bool)
    covered[_neighbours(covers, np.flatnonzero(labeled))] = True
    degree = _uncovered_degree(covers, covered)
    available = ~labeled
    rows: list[int] = []
    scores: list[float] = []
    while len(rows) < budget:
        best = int(np.argmax(np.where(available, degree, -1)))
        if degree[best] <= 0:  # everything is covered: the rest at random, as the authors' code does
            rest = rng.permutation(np.flatnonzero(available))[: budget - len(rows)]
            rows += rest.tolist()
            scores += [0.0] * len(rest)
            break
        rows.append(best)
        scores.append(float(degree[best]))
        available[best] = False
        newly = covers.indices[covers.indptr[best] : covers.indptr[best + 1]]
        newly = newly[~covered[newly]]
        covered[newly] = True
        degree -= np.bincount(_neighbours(covered_by, newly, unique=False), minlength=n)
    return Selection(rows=np.asarray(rows, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))


def _uncovered_degree(covers: sparse.csr_matrix, covered: np.ndarray) -> np.ndarray:
    """Per row, how many of the rows it covers are not yet covered (N,) int64."""
    return np.asarray(covers @ (~covered).astype(np.int64)).ravel()


def _neighbours(graph: sparse.csr_matrix, rows: np.ndarray, unique: bool = True) -> np.ndarray:
    """The column indices of ``rows`` of a CSR graph, concatenated (deduplicated when ``unique``)."""
    found = graph[rows].indices if len(rows) else np.empty(0, dtype=np.int64)
    return np.unique(found) if unique else found
