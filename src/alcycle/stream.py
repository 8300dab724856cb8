"""Stream-based selective sampling: each arriving item is labeled or let go at once, under a budget.

Uncertainty with a variable threshold (Žliobaitė, Bifet, Pfahringer & Holmes 2014, "Active
learning with drifting streaming data", the *Variable uncertainty* and *Split* strategies):
an item whose top-class probability is below the threshold θ is labeled and θ shrinks by the
step s (θ ← θ·(1 − s)); one that is let go makes θ grow (θ ← θ·(1 + s)), so the labeled share
follows the budget whatever the model's confidence. *Split* first labels a ``random_share`` of
the arrivals at random (θ untouched), which keeps labeling where the model is confidently
wrong.

The budget is a share b of the items seen. The paper estimates the spending over a sliding
window; here it is counted, as scikit-activeml's density-based split budget does: an item
may be labeled only while labeled + 1 ≤ b · seen, so at every point of the stream at most
⌊b · seen⌋ items are labeled, a hard bound. An item met with the budget spent is let go
and leaves θ as it was. The state (seen, labeled, θ) carries from one stretch of the stream
to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class StreamState:
    seen: int  # items that arrived so far
    labeled: int  # of which were labeled
    threshold: float  # θ: an item whose top-class probability is below it is labeled

    def __post_init__(self) -> None:
        if not (0 <= self.labeled <= self.seen) or self.threshold <= 0:
            raise ValueError(f"a stream state needs 0 <= labeled ({self.labeled}) <= seen ({self.seen}) "
                             f"and a threshold > 0 (got {self.threshold})")


def decide(confidence: np.ndarray, state: StreamState, budget: float, step: float,
           random_share: float = 0.0, rng: np.random.Generator | None = None
           ) -> tuple[np.ndarray, StreamState]:
    """Which of the arriving items to label, in arrival order, and the state after them.

    confidence: (n,) each item's top-class probability under the current model, in the order
    the items arrive. budget: the share of the items seen that may be labeled, 0 < b ≤ 1.
    step: s, 0 < s < 1. random_share: with Split, the share of arrivals labeled at random
    (drawn from ``rng``; 0 is Variable uncertainty). Returns a boolean mask (n,) of the items
    to label and the new state.
    """
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"the stream's budget is a share of the items seen, 0 < b <= 1; got {budget}")
    if not 0.0 < step < 1.0:
        raise ValueError(f"the threshold's step must be in (0, 1); got {step}")
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"the random share must be in [0, 1]; got {random_share}")
    if random_share > 0 and rng is None:
        raise ValueError("Split labels a random share of the arrivals: it needs a random generator")
    confidence = np.asarray(confidence, dtype=np.float64)
    draws = rng.random(len(confidence)) if random_share > 0 and rng is not None else np.ones(len(confidence))
    picked = np.zeros(len(confidence), dtype=bool)
    seen, labeled, threshold = state.seen, state.labeled, state.threshold
    for i, p in enumerate(confidence):
        seen += 1
        if labeled + 1 > budget * seen + 1e-9:
            continue  # the budget is spent: let go, θ unchanged
        if draws[i] < random_share:
            picked[i] = True  # Split's random part
        elif p < threshold:
            picked[i] = True
            threshold *= 1.0 - step
        else:
            threshold *= 1.0 + step
        labeled += int(picked[i])
    return picked, replace(state, seen=seen, labeled=labeled, threshold=threshold)
