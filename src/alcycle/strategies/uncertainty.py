"""Uncertainty sampling (CEAL's three criteria). Needs class probabilities; O(N·C).

Each score is a pure function of a probability matrix, higher meaning more uncertain.
"""

from __future__ import annotations

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext, top_scores


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``probs`` (N, C) -> (N,)."""
    p = np.asarray(probs, dtype=np.float64)
    # 0 · log 0 is taken as 0: clipping only affects terms that are multiplied by ~0.
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """Negated gap between the two most probable classes (N, C) -> (N,): small gap, high score."""
    top2 = np.sort(np.asarray(probs, dtype=np.float64), axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """One minus the top class probability (N, C) -> (N,)."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)


def entropy(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    return top_scores(context, entropy_scores(context.require("probs", "entropy")), budget)


def margin(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    return top_scores(context, margin_scores(context.require("probs", "margin")), budget)


def least_confidence(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    probs = context.require("probs", "least_confidence")
    return top_scores(context, least_confidence_scores(probs), budget)
