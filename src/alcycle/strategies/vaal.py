"""VAAL (Sinha et al. 2019) and SRAAL (Zhang et al. 2020): adversarial, task-agnostic selection.

Both train a β-VAE on every pool image and a discriminator on its latent mean that
predicts the item's state (1 = labeled), from scratch at every selection
(``alcycle.strategies.vaal_model``), and query the unlabeled items whose predicted
state is lowest, i.e. those that look least like the labeled pool.

vaal:  needs pixels and settings (``select.vaal``). Unlabeled items have state 0.
sraal: needs pixels, probs and settings. An unlabeled item's state is 1 - OUI, the
       online uncertainty indicator of the current classifier's probabilities: items
       the classifier is sure of count as nearly labeled, so the discriminator learns
       to single out the uncertain ones. With nothing labeled yet it is SRAAL's initial
       sampling: the VAE alone, then exact k-center greedy over the latent means.
       SRAAL's supervised target learner (a second latent trained to predict the
       labeled items' classes) is left out: labels are not in the ``SelectionContext``,
       and the classifier that produced ``probs`` already carries them into the OUI.

Cost: ``steps`` VAE + discriminator updates on 2·``batch_size`` images each, then one
encoder pass over the pool, O(steps·batch + N) image forwards; SRAAL's cold start
trains the VAE alone (times: docs/benchmarks.md, from ``benchmarks/vaal.py``). Memory
is one batch beyond the pixels, which may stay memmapped. With no labeled item, VAAL's discriminator has a single class to learn and
its ranking says little: start with another strategy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext, top_scores
from alcycle.strategies.coreset import k_center_greedy
from alcycle.strategies.vaal_model import encode_pool, train_adversarial_vae


def online_uncertainty(probs: np.ndarray) -> np.ndarray:
    """SRAAL's online uncertainty indicator, (N,) in [0, 1) for probabilities (N, C), C >= 2.

    OUI(p) = 1 - V_min(max p) / V(p) · max p, where V is the (population) variance of
    the C entries and V_min(m) = ((m - 1/C)² + (C-1)·((1-m)/(C-1) - 1/C)²) / C is the
    smallest variance a probability vector with largest entry m can have (the rest
    equal). A one-hot vector scores 0; for a fixed top probability, the more the rest
    concentrates on rival classes, the higher the score (several classes tied at the top
    come close to 1). The uniform vector, where both variances vanish, takes the
    ratio's limit 1 and scores 1 - 1/C.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be (N, C) with C >= 2 classes, got shape {p.shape}")
    c = p.shape[1]
    top = p.max(axis=1)
    variance = p.var(axis=1)
    least = ((top - 1 / c) ** 2 + (c - 1) * ((1 - top) / (c - 1) - 1 / c) ** 2) / c
    # V >= V_min always; where V is (numerically) zero the vector is uniform and the ratio is 1.
    flat = variance <= 1e-15
    ratio = np.where(flat, 1.0, least / np.where(flat, 1.0, variance))
    return 1.0 - np.clip(ratio, 0.0, 1.0) * top


def vaal(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """The unlabeled rows the discriminator is surest are unlabeled; score = P(unlabeled)."""
    pixels, settings = _inputs(context, "vaal")
    states = context.labeled.astype(np.float32)
    return _adversarial_selection(context, pixels, states, settings, budget, rng)


def sraal(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """VAAL with OUI-relabelled unlabeled states; k-center over latent means from an empty pool.

    Score: 1 - predicted state, or for the k-center start each pick's distance to the
    nearest earlier pick (the first: its distance to the farthest pool item).
    """
    pixels, settings = _inputs(context, "sraal")
    if not context.labeled.any():
        return _k_center_start(context, pixels, settings, budget, rng)
    states = (1.0 - online_uncertainty(context.require("probs", "sraal"))).astype(np.float32)
    states[context.labeled] = 1.0
    return _adversarial_selection(context, pixels, states, settings, budget, rng)


def _adversarial_selection(context: SelectionContext, pixels: np.ndarray, states: np.ndarray, settings: Any,
                           budget: int, rng: np.random.Generator) -> Selection:
    model = train_adversarial_vae(pixels, states, np.flatnonzero(context.labeled), context.unlabeled_rows,
                                  settings, seed=int(rng.integers(2**31)), compute=context.compute)
    _, logits = encode_pool(model, pixels)
    # P(unlabeled) = sigmoid(-logit), in float64 straight from the logit so that
    # confident scores do not round to the same 0 or 1 and tie.
    return top_scores(context, np.exp(-np.logaddexp(0.0, logits.astype(np.float64))), budget)


def _k_center_start(context: SelectionContext, pixels: np.ndarray, settings: Any, budget: int,
                    rng: np.random.Generator) -> Selection:
    """SRAAL's initial sampling: the VAE alone (no states to learn), k-center greedy over its means."""
    rows = context.unlabeled_rows
    model = train_adversarial_vae(pixels, np.zeros(len(pixels), dtype=np.float32), rows[:0], rows,
                                  settings, seed=int(rng.integers(2**31)), adversarial=False, compute=context.compute)
    means, _ = encode_pool(model, pixels)
    means = means[rows]
    picks, dists = k_center_greedy(means, np.empty(0, dtype=np.int64), budget, rng)
    # k-center gives the first pick an infinite distance (no centre yet). Score it by its
    # covering radius, the distance to the farthest item: by definition the second pick's.
    dists[0] = dists[1] if budget > 1 else float(np.linalg.norm(means - means[picks[0]], axis=1).max())
    return Selection(rows=rows[picks], scores=dists)


def _inputs(context: SelectionContext, name: str) -> tuple[np.ndarray, Any]:
    pixels = context.require("pixels", name)
    if pixels.dtype != np.uint8:
        raise ValueError(f"strategy '{name}' needs uint8 pixels (N, C, H, W), got dtype {pixels.dtype}")
    return pixels, context.require("settings", name)
