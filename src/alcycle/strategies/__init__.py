"""The query-strategy registry: one mapping from name to function, one signature.

Each entry says what the strategy reads from the ``SelectionContext``; the stages
produce an input (MC-dropout passes, a loss prediction module, images, a vision
transformer) only when the chosen strategy lists it, so the loop never names a
strategy. ``python -m alcycle.strategies`` prints the table below from the registry.
"""

from __future__ import annotations

import numpy as np

from alcycle.params import ParamsError
from alcycle.strategies.base import INPUTS, Registered, Selection, SelectionContext, Strategy

_IN = "alcycle.strategies."  # each strategy's module, imported when it runs
_PROBS = frozenset({"probs"})
_EMBEDDINGS = frozenset({"embeddings"})

STRATEGIES: dict[str, Registered] = {
    "badge": Registered(_IN + "badge:badge", _PROBS | _EMBEDDINGS,
                        "probs + embeddings; k-means++ on gradient embeddings, O(N·(C+D)) per pick, O(N) memory"),
    "bald": Registered(_IN + "bald:bald", frozenset({"mc_probs"}),
                       "T MC-dropout passes (train.dropout > 0); mutual information, O(N·T·C)"),
    "coreset": Registered(_IN + "coreset:coreset", _EMBEDDINGS,
                          "embeddings; exact k-center greedy, one GEMV per pick (O(N·D·b)), O(N) memory"),
    "entropy": Registered(_IN + "uncertainty:entropy", _PROBS, "probs; highest predictive entropy, O(N·C)"),
    "geal": Registered(_IN + "geal:geal", frozenset({"pixels", "vit", "settings"}),
                       "pixels + a ViT (pretrain-vit); one ViT pass over the pool, k-means per image, "
                       "cosine k-center over N·K clusters (O(N·K·D) per pick)", settings="geal"),
    "learning_loss": Registered(_IN + "learning_loss:learning_loss", frozenset({"predicted_loss"}),
                                "a loss prediction module, trained with the classifier; highest predicted loss, "
                                "O(N log N)"),
    "least_confidence": Registered(_IN + "uncertainty:least_confidence", _PROBS, "probs; lowest top probability, O(N·C)"),
    "margin": Registered(_IN + "uncertainty:margin", _PROBS, "probs; smallest top-two gap, O(N·C log C)"),
    "random": Registered(_IN + "random:random_strategy", frozenset(), "nothing; uniform without replacement, O(N)"),
    "sraal": Registered(_IN + "vaal:sraal", frozenset({"pixels", "probs", "settings"}),
                        "pixels + probs; VAAL with OUI-relabelled states (k-center over VAE means when nothing is "
                        "labeled); trains a VAE + discriminator, ~10 s per selection on 4,000 MNIST images",
                        settings="vaal"),
    "typiclust": Registered(_IN + "typiclust:typiclust", _EMBEDDINGS,
                            "embeddings; one k-means into (labeled + b) clusters, the most typical item of "
                            "the largest uncovered ones"),
    "vaal": Registered(_IN + "vaal:vaal", frozenset({"pixels", "settings"}),
                       "pixels; VAE + labeled/unlabeled discriminator trained per selection, least labeled-looking "
                       "first; ~10 s on 4,000 MNIST images", settings="vaal"),
}


def needs(*names: str) -> frozenset[str]:
    """Every context input the named strategies read (unknown names fail)."""
    return frozenset().union(*(_entry(name).needs for name in names))


def _entry(name: str) -> Registered:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ParamsError(f"unknown strategy '{name}'; choose one of: {', '.join(sorted(STRATEGIES))}") from None


def settings_section(name: str) -> str | None:
    """The ``params.select`` section strategy ``name`` reads as ``context.settings``, if any."""
    return _entry(name).settings


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; an unknown name lists the valid ones."""
    return _entry(name).function


def select(context: SelectionContext, name: str, budget: int, rng: np.random.Generator) -> Selection:
    """Run strategy ``name`` and check its answer: ``budget`` distinct unlabeled rows."""
    strategy = get_strategy(name)
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    available = int((~context.labeled).sum())
    if budget > available:
        raise ParamsError(f"budget {budget} exceeds the {available} unlabeled items left in the pool")
    selection = strategy(context, int(budget), rng)
    rows = selection.rows
    if len(rows) != budget or len(np.unique(rows)) != budget or context.labeled[rows].any():
        raise RuntimeError(f"strategy '{name}' broke its contract: {budget} distinct unlabeled rows expected")
    return selection


def table() -> str:
    """The registry as a Markdown table: name, what it needs and costs."""
    rows = [f"| {name} | {entry.summary} |" for name, entry in sorted(STRATEGIES.items())]
    return "\n".join(["| strategy | needs; cost |", "|---|---|", *rows])


__all__ = ["INPUTS", "STRATEGIES", "Registered", "Selection", "SelectionContext", "get_strategy", "needs",
           "select", "settings_section", "table"]
