"""Label propagation over a kNN graph (Iscen et al., CVPR 2019, "LP-DeepSSL").

Used by Siméoni et al. to pseudo-label the unlabeled pool. The recipe: L2-normalised
features, exact kNN by inner product (self dropped), weights ``max(sim, 0) ** gamma``,
a symmetric graph ``Wn = D^-1/2 W D^-1/2``, then ``(I - alpha Wn) Z = Y`` solved by
conjugate gradient for a fixed number of steps. Scores are ``Z`` clipped at 0 and
L1-normalised per row; an item's weight is its certainty ``1 - H(z) / log C``.

Cost: the kNN search is O(N²·D) and dominates; the graph is O(N·k) and each CG step
is one sparse (N, N) @ dense (N, C) product, O(N·k·C).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse

from alcycle import faiss_ops

# A column counts as solved once ||r|| < CG_RTOL·||b|| (scipy's ``cg`` criterion). This
# only stops steps that can no longer improve the answer: at alpha = 0.99 the published
# tol = 1e-6 is never reached within 20 steps on real data, and on a small graph
# solved to convergence a looser stop would leave the answer visibly short.
CG_RTOL = 1e-10


@dataclass(frozen=True)
class Propagation:
    """Propagated labels; row i of every (N, ...) array is item i.

    scores:        (N, C) float32, Z clipped at 0 and L1-normalised per row (zero rows stay zero)
    pseudo_labels: (N,) int64, argmax of scores; labeled items keep their given label
    weights:       (N,) float32 in [0, 1], certainty 1 - H(z)/log C scaled by its max over
                   unlabeled items; labeled items 1
    class_weights: (C,) float32, (N / C) / |{i : pseudo_label_i = c}|, 0 for a class no item gets
    """

    scores: np.ndarray
    pseudo_labels: np.ndarray
    weights: np.ndarray
    class_weights: np.ndarray


@dataclass(frozen=True)
class Search:
    """How the kNN graph finds neighbours: ``exact``, ``ivf`` (approximate, faiss's inverted
    file with ``nlist`` cells, 0 = 4·√N, searching ``nprobe`` of them) or ``ivfpq`` (the same
    over codes of ``pq_m`` bytes an item, 0 = D/4, for pools whose float copy would not fit;
    the similarities it keeps are exact). The k-means draws from ``seed`` (a fixed 0 by
    default), so the graph depends on the embeddings alone."""

    method: str = "exact"
    nlist: int = 0
    nprobe: int = 16
    seed: int = 0
    pq_m: int = 0

    def neighbours(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sims, ids), each (N, k), of the unit rows ``x`` (N, D); see ``faiss_ops``."""
        if self.method == "exact":
            return faiss_ops.knn_inner_product(x, k)
        nlist, m = faiss_ops.ivf_shape(len(x), x.shape[1], self.nlist, self.pq_m)
        if self.method == "ivf":
            return faiss_ops.knn_inner_product_ivf(x, k, nlist, min(self.nprobe, nlist), self.seed)
        if self.method == "ivfpq":
            return faiss_ops.knn_inner_product_ivfpq(x, k, nlist, min(self.nprobe, nlist), m, self.seed)
        raise ValueError(f"unknown kNN search {self.method!r}; choose exact, ivf or ivfpq")


def affinity(features: np.ndarray, k: int, gamma: float, reciprocal: bool,
             search: Search | None = None) -> scipy.sparse.csr_matrix:
    """The normalised kNN graph Wn = D^-1/2 W D^-1/2, (N, N) float64 CSR, symmetric.

    features: (N, D). Each item links to its k nearest neighbours by cosine similarity
    with weight max(sim, 0) ** gamma. ``reciprocal=False`` gives W + Wᵀ (an edge found
    from both ends counts twice, as in the paper); ``reciprocal=True`` keeps only edges
    found from both ends, with their single weight. An item with no edge keeps a zero
    row and column. ``search`` finds the neighbours (exact by default).
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    x = faiss_ops.l2_normalise(features)
    n = len(x)
    sims, ids = (search or Search()).neighbours(x, k)
    # An approximate search may find fewer than k: a missing neighbour (-1) becomes a
    # zero-weight self edge, which the diagonal rule below drops.
    missing = ids < 0
    ids[missing] = np.nonzero(missing)[0]
    sims[missing] = 0.0
    # Row i's k neighbours are contiguous, so with each row sorted by column the CSR
    # arrays are the kNN arrays themselves: no COO sort, and canonical CSR lets scipy
    # take its fast path for W + Wᵀ.
    order = np.argsort(ids, axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    weights = np.maximum(np.take_along_axis(sims, order, axis=1).astype(np.float64), 0.0) ** gamma
    # knn_inner_product already drops each row itself; this keeps the diagonal zero
    # whatever it returns.
    weights[ids == np.arange(n)[:, None]] = 0.0
    knn = scipy.sparse.csr_matrix((weights.ravel(), ids.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    knn.eliminate_zeros()
    transposed = knn.T.tocsr()
    graph = knn.minimum(transposed) if reciprocal else knn + transposed
    degree = np.asarray(graph.sum(axis=1)).ravel()
    # An isolated item has degree 0: its scale is 0 rather than 1/0, and its row and
    # column (already empty) stay empty.
    scale = np.zeros(n)
    np.divide(1.0, np.sqrt(degree), out=scale, where=degree > 0)
    rows = np.repeat(np.arange(n), np.diff(graph.indptr))
    # scale[i]·scale[j] is one product for both (i, j) and (j, i), so Wn stays exactly symmetric.
    graph.data *= scale[rows] * scale[graph.indices]
    return graph


def block_cg(
    matmul: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, iterations: int, rtol: float = CG_RTOL
) -> np.ndarray:
    """Conjugate gradient on A X = B for every column of B at once, starting from X = 0.

    matmul: P (N, C) -> A @ P for a symmetric positive definite A (N, N).
    rhs:    (N, C). Returns X (N, C) float64.

    Each column runs its own CG (its own step and direction scalars), exactly as
    ``scipy.sparse.linalg.cg`` would on it alone, but the C products with A share one
    call: for a sparse A that is one pass over the matrix instead of C. A column stops
    once ||r|| < rtol·||b|| (a zero column never starts), so that exact convergence
    never divides 0 by 0.
    """
    rhs = np.asarray(rhs, dtype=np.float64)
    solution = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    rho = np.einsum("ij,ij->j", residual, residual)
    stop = rtol**2 * rho
    active = (rho > 0) & (rho >= stop)
    for _ in range(iterations):
        if not active.any():
            break
        product = matmul(direction)
        curvature = np.einsum("ij,ij->j", direction, product)
        step = np.divide(rho, curvature, out=np.zeros_like(rho), where=active)
        solution += step * direction
        residual -= step * product
        rho_next = np.einsum("ij,ij->j", residual, residual)
        beta = np.divide(rho_next, rho, out=np.zeros_like(rho), where=active)
        direction = residual + beta * direction
        rho = rho_next
        active &= (rho > 0) & (rho >= stop)
    return solution


def propagate(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    k: int = 50,
    gamma: float = 3.0,
    alpha: float = 0.99,
    reciprocal: bool = False,
    iterations: int = 20,
    search: Search | None = None,
) -> Propagation:
    """Propagate the given labels over the kNN graph of ``features``.

    features: (N, D) embeddings. labels: (N,) int, a class in [0, num_classes) or -1
    for unlabeled. Solves (I - alpha Wn) Z = Y with ``iterations`` CG steps, where
    Y[:, c] = 1/|L_c| on the labeled items of class c (a class with no label gets a
    zero column, hence zero scores). ``search``: exact or approximate kNN (``Search``).
    """
    labels = _check(features, labels, num_classes, k, alpha, iterations)
    graph = affinity(features, k, gamma, reciprocal, search)
    z = block_cg(lambda p: p - alpha * (graph @ p), _seed_matrix(labels, num_classes), iterations)
    scores = np.maximum(z, 0.0)  # CG stopped early can dip below 0; the paper clips
    totals = scores.sum(axis=1, keepdims=True)
    np.divide(scores, totals, out=scores, where=totals > 0)
    labeled = labels >= 0
    pseudo_labels = np.where(labeled, labels, scores.argmax(axis=1))
    weights = _certainty(scores, labeled, num_classes)
    counts = np.bincount(pseudo_labels, minlength=num_classes)
    class_weights = np.divide(len(labels) / num_classes, counts, out=np.zeros(num_classes), where=counts > 0)
    return Propagation(
        scores=scores.astype(np.float32),
        pseudo_labels=pseudo_labels.astype(np.int64),
        weights=weights.astype(np.float32),
        class_weights=class_weights.astype(np.float32),
    )


def _seed_matrix(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Y (N, C): 1/|L_c| on the labeled items of class c, so every class seeds equal mass."""
    seeds = np.zeros((len(labels), num_classes))
    rows = np.flatnonzero(labels >= 0)
    counts = np.bincount(labels[rows], minlength=num_classes)
    seeds[rows, labels[rows]] = 1.0 / counts[labels[rows]]
    return seeds


def _certainty(scores: np.ndarray, labeled: np.ndarray, num_classes: int) -> np.ndarray:
    """ω (N,) = 1 - H(z)/log C, scaled by its max over unlabeled items; labeled items 1.

    A zero row (an item no label reaches) carries no evidence: ω = 0.
    """
    logs = np.log(scores, out=np.zeros_like(scores), where=scores > 0)  # 0·log 0 = 0
    entropy = -(scores * logs).sum(axis=1)
    reached = scores.sum(axis=1) > 0
    # A uniform row can round to H a hair above log C; clip so ω stays in [0, 1].
    weights = np.where(reached, np.clip(1.0 - entropy / np.log(num_classes), 0.0, 1.0), 0.0)
    top = weights[~labeled].max(initial=0.0)
    if top > 0:
        weights /= top
    weights[labeled] = 1.0
    return weights


def _check(
    features: np.ndarray, labels: np.ndarray, num_classes: int, k: int, alpha: float, iterations: int
) -> np.ndarray:
    """Refuse bad inputs with what was wrong and what is allowed; labels as int64 (N,)."""
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got shape {features.shape}")
    n = len(features)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match features, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers (-1 for unlabeled), got dtype {labels.dtype}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    bad = labels[(labels < -1) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(f"labels must be -1 or in [0, {num_classes - 1}], got {bad[0]}")
    if not (labels >= 0).any():
        raise ValueError("at least one item must be labeled to propagate from")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} items, got {k}")
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1) so that I - alpha·Wn is positive definite, got {alpha}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not np.isfinite(features).all():
        raise ValueError("features must be finite (no NaN or inf)")
    return labels.astype(np.int64)
