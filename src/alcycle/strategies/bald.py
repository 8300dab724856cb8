"""BALD (Houlsby et al. 2011; Gal et al. 2017, as BGADL acquires): mutual information between
the prediction and the model's weights, estimated from T MC-dropout passes.

Needs ``mc_probs`` (N, T, C), which extract writes when the classifier has dropout
(``train.dropout`` > 0). Cost O(N·T·C). Top-b scores: no batch diversity (BatchBALD is not here).
"""

from __future__ import annotations

import numpy as np

from alcycle.strategies.base import Selection, SelectionContext, top_scores
from alcycle.strategies.uncertainty import entropy_scores


CHUNK = 16_384  # items per block: T·C float64 numbers each, a few tens of MB in all


def mutual_information(mc_probs: np.ndarray) -> np.ndarray:
    """I[y; w] = H[mean_t p_t] − mean_t H[p_t] (nats), for ``mc_probs`` (N, T, C) -> (N,).

    High when the passes are each confident but disagree: the model's uncertainty,
    not the data's. Never negative (entropy is concave), up to rounding. Computed in
    float64 one block of ``CHUNK`` items at a time (``mc_probs`` may be a memory map):
    O(N) memory beyond the input, not O(N·T·C).
    """
    n, t, c = mc_probs.shape
    scores = np.empty(n)
    for start in range(0, n, CHUNK):
        p = np.asarray(mc_probs[start : start + CHUNK], dtype=np.float64)
        expected_entropy = entropy_scores(p.reshape(-1, c)).reshape(len(p), t).mean(axis=1)
        scores[start : start + len(p)] = np.maximum(entropy_scores(p.mean(axis=1)) - expected_entropy, 0.0)
    return scores


def bald(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    return top_scores(context, mutual_information(context.require("mc_probs", "bald")), budget)
