"""GEAL (Xie, Tomizuka, Zhan 2021; "FreeSel", NeurIPS 2023): one transformer pass, no training.

Needs pixels, a vision transformer (``alcycle.vit``, from the pretrain-vit stage) and the
``select.geal`` settings. Cost: one forward pass over the whole pool (labeled images
too: their clusters are the initial centres), a k-means of at most P patch features per
image, then O(M·D·K) per pick over the M ≈ N·K knowledge clusters. Memory: the M × D
cluster centres; patch features are held for one batch of images at a time.

For every image, the last block's CLS→patch attention, averaged over heads, keeps the
top patches holding ``tau`` of the attention mass; their features (the second-to-last
block's patch tokens) are clustered by k-means into K = min(clusters, kept patches)
"knowledge clusters". k-center greedy with cosine distance then runs over all images'
cluster centres: the cluster farthest from every centre so far brings in its image, and
all of that image's clusters become centres.

Start: the labeled images' clusters are the initial centres. With nothing labeled, the
first pick is the cluster farthest from the mean direction of all clusters (the paper
draws a random image): the same farthest-first rule with the pool's centroid as the one
centre, so the start depends only on the features. That centroid is dropped after the
first pick: it is no image, and must not make the images near it look covered.
"""

from __future__ import annotations

import numpy as np

from alcycle.faiss_ops import kmeans_each, l2_normalise
from alcycle.params import GealParams, ParamsError
from alcycle.strategies.base import Selection, SelectionContext
from alcycle.strategies.coreset import CENTRE_BLOCK, ROW_BLOCK
from alcycle.vit import Vit, attention_and_features

KMEANS_ITERATIONS = 20
# Rounding in a running sum of attention must not keep one more patch than tau asks for
# (tau = 1 would otherwise keep patches of zero attention).
SHARE_TOLERANCE = 1e-9


def keep_patches(attention: np.ndarray, tau: float) -> np.ndarray:
    """The top patches holding ``tau`` of each image's attention mass: (N, P) bool.

    attention: (N, P) non-negative CLS→patch attention. Per row, patches are sorted by
    attention, highest first (equal values in patch order), and the shortest prefix whose
    share of the row's total reaches ``tau`` is kept; at least one patch always is.
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"attention must be a 2-D (N, P) array with P >= 1, got shape {a.shape}")
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    total = a.sum(axis=1, keepdims=True)
    if (a < 0).any() or not (total > 0).all():
        raise ValueError("attention must be non-negative with a positive total in every row")
    order = np.argsort(-a, axis=1, kind="stable")
    share = np.cumsum(np.take_along_axis(a, order, axis=1), axis=1) / total
    count = np.minimum((share < tau - SHARE_TOLERANCE).sum(axis=1) + 1, a.shape[1])
    keep = np.zeros(a.shape, dtype=bool)
    np.put_along_axis(keep, order, np.arange(a.shape[1]) < count[:, None], axis=1)
    return keep


def knowledge_clusters(
    features: np.ndarray, keep: np.ndarray, clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means of each image's kept patch features into K = min(clusters, kept patches).

    features: (N, P, D); keep: (N, P) bool with a kept patch in every row. Returns the
    centres (M, D) float32, grouped by image in row order, and owner (M,) int64, the
    image each centre belongs to. faiss runs each image's k-means on one thread; that
    costs well under a millisecond an image (docs/benchmarks.md, "Small k-means and one
    thread"), so a hand-vectorised batched k-means would buy little.
    """
    if features.ndim != 3 or keep.shape != features.shape[:2]:
        raise ValueError(f"features (N, P, D) and keep (N, P) disagree: {features.shape} and {keep.shape}")
    if clusters < 1:
        raise ValueError(f"clusters must be at least 1, got {clusters}")
    kept = keep.sum(axis=1)
    if (kept == 0).any():
        raise ValueError(f"images {np.flatnonzero(kept == 0)[:5].tolist()} keep no patch")
    ks = np.minimum(kept, clusters)
    centres = kmeans_each([f[k] for f, k in zip(features, keep)], ks.tolist(), KMEANS_ITERATIONS, seed)
    return np.concatenate(centres), np.repeat(np.arange(len(features), dtype=np.int64), ks)


def cluster_k_center(
    centres: np.ndarray, owner: np.ndarray, labeled: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy over knowledge clusters with cosine distance; a pick takes a whole image.

    centres: (M, D); owner: (M,) int, the image in [0, N) of each centre; labeled: (N,)
    bool. Each step takes the cluster farthest (1 − cosine) from its nearest centre,
    selects its image and makes all of that image's clusters centres. Returns the picked
    images (budget,) int64 and each pick's distance at pick time (budget,) float64; ties
    go to the lower cluster index.
    """
    x = l2_normalise(centres)
    owner = np.asarray(owner, dtype=np.int64)
    labeled = np.asarray(labeled, dtype=bool)
    _check(x, owner, labeled, budget)
    by_image = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[by_image], np.arange(len(labeled) + 1))
    taken = labeled[owner]
    min_dist = _nearest_distance(x, x[taken])
    min_dist[taken] = -np.inf  # centres are never picked; -inf survives every np.minimum
    rows, scores = np.empty(budget, dtype=np.int64), np.empty(budget, dtype=np.float64)
    for step in range(budget):
        if step == 0 and not taken.any():
            mean = l2_normalise(x.mean(axis=0, keepdims=True))[0]
            distance = 1.0 - x @ mean
        else:
            distance = min_dist
        pick = int(np.argmax(distance))
        image = owner[pick]
        rows[step], scores[step] = image, max(float(distance[pick]), 0.0)
        new = by_image[bounds[image] : bounds[image + 1]]
        np.minimum(min_dist, 1.0 - (x @ x[new].T).max(axis=1), out=min_dist)
        min_dist[new] = -np.inf
    return rows, scores


def _nearest_distance(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(M,) float32 cosine distance of every unit row to its nearest unit centre; inf without centres."""
    min_dist = np.full(len(x), np.inf, dtype=np.float32)
    # Blocks of rows × centres keep the temporary under 256 MB, whatever the pool size.
    for c_start in range(0, len(centres), CENTRE_BLOCK):
        block = centres[c_start : c_start + CENTRE_BLOCK]
        for r_start in range(0, len(x), ROW_BLOCK):
            rows = slice(r_start, r_start + ROW_BLOCK)
            np.minimum(min_dist[rows], 1.0 - (x[rows] @ block.T).max(axis=1), out=min_dist[rows])
    return min_dist


def _check(x: np.ndarray, owner: np.ndarray, labeled: np.ndarray, budget: int) -> None:
    if owner.shape != (len(x),):
        raise ValueError(f"owner must name the image of each of the {len(x)} centres, got shape {owner.shape}")
    if len(owner) and not 0 <= owner.min() <= owner.max() < len(labeled):
        raise ValueError(f"owner must hold image indices in [0, {len(labeled)})")
    available = len(np.unique(owner[~labeled[owner]]))
    if not 0 <= budget <= available:
        raise ValueError(f"budget must be in [0, {available}] (unlabeled images with clusters), got {budget}")


def pool_clusters(vit: Vit, pixels: np.ndarray, settings: GealParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Knowledge clusters (M, D) of every image of uint8 ``pixels`` (N, C, H, W) and their owner (M,)."""
    if settings.batch_size < 1:
        raise ParamsError(f"select.geal.batch_size must be at least 1, got {settings.batch_size}")
    centres, owners = [], []
    for start in range(0, len(pixels), settings.batch_size):
        attention, features = attention_and_features(vit, pixels[start : start + settings.batch_size])
        batch_centres, batch_owner = knowledge_clusters(features, keep_patches(attention, settings.tau),
                                                        settings.clusters, seed)
        centres.append(batch_centres)
        owners.append(batch_owner + start)
    return np.concatenate(centres), np.concatenate(owners)


def geal(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """k-center greedy over knowledge clusters; score = the picked cluster's cosine distance."""
    pixels = context.require("pixels", "geal")
    vit = context.require("vit", "geal")
    settings = context.require("settings", "geal")
    # The only randomness: where each image's k-means starts.
    centres, owner = pool_clusters(vit, pixels, settings, seed=int(rng.integers(2**31)))
    rows, scores = cluster_k_center(centres, owner, context.labeled, budget)
    return Selection(rows=rows, scores=scores)
