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
    "asal": Registered(_IN + "asal:asal", frozenset({"gan", "gan_features", "model", "settings"}),
                       "a GAN (pretrain-gan, gan.method) + the classifier (select.asal); entropy ascent in the "
                       "GAN's latent space, each generated image's nearest unlabeled item in the GAN's feature "
                       "space (Mayer & Timofte, seed 002); not a cold start; O(c·b·steps) generator and "
                       "classifier passes + b nearest-neighbour searches, no pass over the pool", settings="asal"),
    "badge": Registered(_IN + "badge:badge", _PROBS | _EMBEDDINGS,
                        "probs + embeddings; k-means++ seeding over last-layer gradient embeddings, without "
                        "forming them (Ash et al. 2020); O(N·(C+D)) per pick, O(N) memory"),
    "bald": Registered(_IN + "bald:bald", frozenset({"mc_probs"}),
                       "T MC-dropout passes (train.dropout > 0, extract.mc_samples); highest mutual information "
                       "between prediction and weights (Gal et al. 2017); O(N·T·C), the T passes share one "
                       "backbone pass (dropout sits before the head)"),
    "coreset": Registered(_IN + "coreset:coreset", _EMBEDDINGS,
                          "embeddings; exact k-center greedy from the labeled items (Sener & Savarese 2018), on "
                          "embeddings centred on their mean so float32 distances stay exact; one GEMV per pick, "
                          "O(N·D) per pick (O(N·D·b) in all), never an N×N matrix, O(N) memory beyond one "
                          "float32 copy"),
    "entropy": Registered(_IN + "uncertainty:entropy", _PROBS, "probs; highest predictive entropy, O(N·C)"),
    "gaal": Registered(_IN + "gaal:gaal", frozenset({"gan", "model", "settings"}),
                       "a GAN (pretrain-gan, gan.method) + the classifier (select.gaal); query synthesis: the "
                       "generated images of smallest margin (or highest entropy) after gradient ascent in the "
                       "latent space are the queries themselves, new items with their own ids, which the "
                       "annotator may call unrecognisable (Zhu & Bento, seed 002); not a cold start; "
                       "O(c·b·steps) generator and classifier passes, no pass over the pool",
                       settings="gaal", synthesises=True),
    "geal": Registered(_IN + "geal:geal", frozenset({"pixels", "vit", "settings"}),
                       "pixels + a ViT (pretrain_vit, select.geal); one pass, no classifier: attention-filtered "
                       "patch features, k-means per image into K knowledge clusters, cosine k-center over all "
                       "N·K clusters (Xie et al., seed 001); also a cold start; O(N·K·D) per pick", settings="geal"),
    "learning_loss": Registered(_IN + "learning_loss:learning_loss", frozenset({"predicted_loss"}),
                                "a loss prediction module, which train fits beside the classifier with "
                                "train.loss_prediction.fit: true; highest predicted loss (Yoo & Kweon 2019), "
                                "O(N log N)"),
    "least_confidence": Registered(_IN + "uncertainty:least_confidence", _PROBS,
                                   "probs; lowest top-class probability, O(N·C)"),
    "margin": Registered(_IN + "uncertainty:margin", _PROBS,
                         "probs; smallest gap between the two most probable classes, O(N·C log C)"),
    "probcover": Registered(_IN + "probcover:probcover", _PROBS | _EMBEDDINGS | {"settings"},
                            "embeddings + probs (select.probcover); greedy maximum coverage of δ-balls on "
                            "L2-normalised embeddings, δ the largest radius with k-means purity ≥ alpha "
                            "(Yehuda et al. 2022); also a cold start; O(N²·D) to build the graph (or an IVF-PQ range "
                            "search: search: ivfpq), O(E) memory for its E edges: give it select.candidates on a "
                            "big pool", settings="probcover"),
    "random": Registered(_IN + "random:random_strategy", frozenset(),
                         "nothing; uniformly at random, without replacement, O(N)"),
    "sraal": Registered(_IN + "vaal:sraal", frozenset({"pixels", "probs", "settings", "compute"}),
                        "pixels + probs (select.vaal); VAAL with the unlabeled state relabelled by the online "
                        "uncertainty indicator (Zhang et al. 2020); with nothing labeled, k-center greedy over "
                        "the VAE's latent means (its initial-pool rule); trains a VAE + discriminator at every "
                        "selection", settings="vaal"),
    "typiclust": Registered(_IN + "typiclust:typiclust", _EMBEDDINGS | {"settings"},
                            "embeddings (select.typiclust); one k-means into (labeled + b) clusters, the most "
                            "typical item of each of the largest clusters holding no label (Hacohen et al. 2022); "
                            "a low-budget strategy; O(s²·D) for a chosen cluster of s items (O(s·√s·D) with "
                            "search: ivfpq)", settings="typiclust"),
    "vaal": Registered(_IN + "vaal:vaal", frozenset({"pixels", "settings", "compute"}),
                       "pixels (select.vaal); a VAE over the pool and a labeled/unlabeled discriminator on its "
                       "latent, the items it is surest are unlabeled first (Sinha et al. 2019); trains both at "
                       "every selection", settings="vaal"),
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


def synthesises(name: str) -> bool:
    """Whether strategy ``name`` answers with new images (``Selection.images``) rather than pool rows."""
    return _entry(name).synthesises


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; an unknown name lists the valid ones."""
    return _entry(name).function


def select(context: SelectionContext, name: str, budget: int, rng: np.random.Generator) -> Selection:
    """Run strategy ``name`` and check its answer: ``budget`` distinct unlabeled rows, or, from a
    strategy that synthesises its queries, ``budget`` distinct uint8 images shaped like the pool's."""
    strategy = get_strategy(name)
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    if synthesises(name):
        selection = strategy(context, int(budget), rng)
        images = selection.images
        if (images is None or len(images) != budget or images.dtype != np.uint8 or images.ndim != 4
                or len(selection.rows) or selection.scores.shape != (budget,)
                or len({image.tobytes() for image in images}) != budget):
            raise RuntimeError(f"strategy '{name}' broke its contract: {budget} distinct uint8 images expected")
        return selection
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
           "select", "settings_section", "synthesises", "table"]
