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

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from alcycle.errors import AlcycleError, BadFileError


class StreamError(AlcycleError, ValueError):
    """The stream cannot go on as set: it has ended, or its arrival times do not sort."""


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


@dataclass(frozen=True)
class Window:
    """One cycle's stretch of the stream: the rows to label, where the next stretch starts, the state after."""

    picked: np.ndarray  # (k,) int64 rows, in arrival order
    end: int  # position in the arrival order after the last item met
    state: StreamState


def next_window(order: np.ndarray, labeled: np.ndarray, confidence: np.ndarray, start: int, window: int,
                state: StreamState, budget: float, step: float, random_share: float,
                rng: np.random.Generator) -> Window:
    """Meet the next ``window`` unlabeled arrivals from position ``start`` of ``order`` (rows of the
    pool in arrival order) and decide each at once; items labeled already pass by unmet.

    A window that labels nothing goes on, an arrival at a time, until one is labeled (θ grows
    with each item let go, and the budget with each item seen, so one soon is) or the stream
    ends: a cycle always has something to ask, and its annotation batch is what starts the
    next one. confidence: (N,) each row's top-class probability. Raises when no arrival is left.
    """
    rest = order[start:]
    arriving = np.flatnonzero(~labeled[rest])
    if len(arriving) == 0:
        raise StreamError(f"the stream has no unlabeled arrival left after position {start} of {len(order)}: "
                          f"every pool item has been met; add images to the pool (prepare) or set "
                          f"select.stream.window: 0 to select from the pool")
    met = arriving[:window]
    picked, state = decide(confidence[rest[met]], state, budget, step, random_share, rng)
    rows, last = list(rest[met[picked]]), int(met[-1])
    for position in arriving[window:]:
        if rows:
            break
        one, state = decide(confidence[rest[position : position + 1]], state, budget, step, random_share, rng)
        last = int(position)
        if one[0]:
            rows.append(rest[position])
    return Window(np.asarray(rows, dtype=np.int64), start + last + 1, state)


def arrival_order(manifest_times: np.ndarray | None, count: int, ids: np.ndarray | None = None,
                  shuffle_seed: int | None = None) -> np.ndarray:
    """Positions 0..count-1 in arrival order: as given; sorted by ``manifest_times`` (numbers or
    ISO 8601 timestamps, as strings), ties in the given order; or, with ``shuffle_seed``, one
    shuffle drawn from it (the same every call). ``ids`` name the items in errors."""
    if shuffle_seed is not None:
        return np.random.default_rng(shuffle_seed).permutation(count)
    if manifest_times is None:
        return np.arange(count)
    keys = _time_keys(manifest_times, ids)
    return np.argsort(keys, kind="stable")


def _time_keys(values: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
    """Sortable keys (float64) of time strings: all numbers, or all ISO 8601 timestamps."""
    import pandas as pd

    text = pd.Series(values, dtype=str)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=np.float64)
    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    bad = stamps.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        item = f"item {ids[first]}" if ids is not None else f"position {first}"
        raise StreamError(f"time {text.iloc[first]!r} of {item} is neither a number nor an ISO 8601 timestamp; "
                          f"every time must be one kind")
    return stamps.astype("int64").to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class Position:
    """Where the stream stands after a cycle: the next arrival's position, and the decision state."""

    position: int
    state: StreamState


START = Position(0, StreamState(seen=0, labeled=0, threshold=1.0))  # θ starts at 1, as in the paper


def load_states(path: Path) -> dict[int, Position]:
    """The state after each cycle, from ``data/stream.json`` (absent: none yet)."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(cycle): Position(entry["position"], StreamState(entry["seen"], entry["labeled"],
                                                                    entry["threshold"]))
                for cycle, entry in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadFileError(f"{path}: not a stream state file ({error}); expected, per cycle, position, seen, "
                           f"labeled and threshold") from None


def dump_states(states: dict[int, Position]) -> str:
    """``data/stream.json``'s text: one entry per cycle, in cycle order."""
    entries = {str(cycle): {"position": p.position, "seen": p.state.seen, "labeled": p.state.labeled,
                            "threshold": p.state.threshold} for cycle, p in sorted(states.items())}
    return json.dumps(entries, indent=1) + "\n"
