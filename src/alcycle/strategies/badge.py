"""BADGE (Ash et al. 2020): k-means++ seeding over last-layer gradient embeddings.

Needs probabilities and embeddings. The gradient embedding of item i is
g_i = (p_i − onehot(ŷ_i)) ⊗ h_i (C·D numbers); it is never formed for the pool:
⟨g_i, g_j⟩ = ⟨a_i, a_j⟩·⟨h_i, h_j⟩ with a = p − onehot(ŷ), so each pick costs two
matrix-vector products, O(N·(C + D)); memory: the candidates' embeddings in
their own dtype (float32 from extract) and O(N) float64 besides.
"""

from __future__ import annotations

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext


def gradient_embedding(probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Explicit gradient embeddings (N, C·D) of the cross-entropy at the predicted class.

    For small inputs and tests; selection uses the same geometry without forming it.
    """
    a = _residual(probs)
    return (a[:, :, None] * np.asarray(embeddings, dtype=np.float64)[:, None, :]).reshape(len(a), -1)


def _residual(probs: np.ndarray) -> np.ndarray:
    """p − onehot(argmax p), (N, C) float64: the loss gradient with respect to the logits."""
    a = np.array(probs, dtype=np.float64)
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1.0
    return a


def kmeans_pp_gradient(
    probs: np.ndarray, embeddings: np.ndarray, candidates: np.ndarray, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding among ``candidates`` rows; returns picks (budget,) and each pick's D².

    The first pick is the largest gradient norm (as in BADGE's code), later ones are
    drawn with probability proportional to the squared distance to the nearest pick.
    """
    a = _residual(probs[candidates])  # (n, C) float64: C is small
    # The embeddings keep their dtype: float32 from extract, so no (n, D) float64 copy at 10⁶ items.
    h = np.asarray(embeddings[candidates])
    sq_a, sq_h = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", h, h).astype(np.float64)
    sq_norm = sq_a * sq_h  # |g_i|²
    min_dist = np.full(len(candidates), np.inf)
    picks, gaps = np.empty(budget, dtype=np.int64), np.empty(budget)
    for step in range(budget):
        if step == 0:
            pick = int(np.argmax(sq_norm))
            gap = float(sq_norm[pick])
        else:
            weights = np.clip(min_dist, 0.0, None)
            total = weights.sum()
            # All remaining items coincide with a pick: any of them is as good as another.
            pick = int(rng.choice(len(weights), p=weights / total)) if total > 0 else int(np.argmax(weights))
            gap = float(weights[pick])
        picks[step], gaps[step] = pick, gap
        dist = sq_norm + sq_norm[pick] - 2.0 * (a @ a[pick]) * (h @ h[pick])
        np.minimum(min_dist, dist, out=min_dist)
        min_dist[picks[: step + 1]] = -np.inf  # never drawn again
    return candidates[picks], gaps


def badge(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    probs = context.require("probs", "badge")
    embeddings = context.require("embeddings", "badge")
    rows, gaps = kmeans_pp_gradient(probs, embeddings, context.unlabeled_rows, budget, rng)
    return Selection(rows=rows, scores=gaps)
