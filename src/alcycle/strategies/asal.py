"""ASAL (Mayer & Timofte, seed 002): generate the images the classifier is least sure of, then
query the real unlabeled images nearest to them.

Needs the GAN of ``pretrain-gan`` (``gan.method``), its features of every pool image, the
current classifier and ``select.asal``. For a budget b:

1. ``uncertain_latents``: c·b latent vectors (c = ``candidates``) drawn from N(0, I), moved by
   gradient ascent on the predictive entropy of classifier(generator(z)), each kept on the
   sphere of radius √d that a standard normal z concentrates on (so the generator stays where it
   was trained). Neither network's parameters change.
2. The b generated images of highest entropy, highest first, are each ``match``-ed to their
   nearest unlabeled pool item in the GAN's feature space (PCA of the pixels or the
   discriminator's features, as the seed lists), through ``faiss_ops.knn_l2`` over the unlabeled
   rows only, so a labeled or test item can never be returned; an item already matched to an
   earlier sample is passed over for that sample's next nearest.

Score: the entropy (nats) of the generated image an item was matched to. Cost: c·b·steps
generator + classifier passes, then b nearest-neighbour searches over the pool's stored
features; the classifier never scores the pool (the seed's point: a cost that hardly grows with
it). Needs a classifier, so it cannot be a cold start.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from alcycle import faiss_ops
from alcycle.strategies.base import Selection, SelectionContext


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy (B,) of softmax(logits) for logits (B, C), in nats."""
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def uncertain_latents(generator: torch.nn.Module, classifier: torch.nn.Module, z: torch.Tensor,
                      steps: int, lr: float, uncertainty: Callable[[torch.Tensor], torch.Tensor] = entropy
                      ) -> torch.Tensor:
    """``z`` (B, d) moved by ``steps`` Adam steps of rate ``lr`` towards higher ``uncertainty``
    (logits (B, C) -> (B,); the entropy by default) of classifier(generator(z)), projected back to
    the sphere of radius √d after each step. Neither network's parameters change; returns the
    new latents (detached)."""
    radius = z.shape[1] ** 0.5
    z = (z / z.norm(dim=1, keepdim=True) * radius).detach().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    frozen = [(p, p.requires_grad) for net in (generator, classifier) for p in net.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            optimiser.zero_grad()
            (-uncertainty(classifier(generator(z))).sum()).backward()
            optimiser.step()
            with torch.no_grad():
                z.mul_(radius / z.norm(dim=1, keepdim=True))
    finally:
        for p, wanted in frozen:
            p.requires_grad_(wanted)
    return z.detach()


def match(generated: np.ndarray, features: np.ndarray, unlabeled: np.ndarray, neighbours: int = 8) -> np.ndarray:
    """One distinct unlabeled row per generated sample: its nearest in ``features`` not matched before.

    generated (G, D) and features (N, D) live in one feature space; ``unlabeled`` (M,) the rows
    of ``features`` that may be queried (unlabeled pool items). Samples are matched in order;
    each takes the nearest of its ``neighbours`` nearest rows that no earlier sample took, or,
    when an earlier sample took them all, the nearest row still free. Returns (min(G, M),) rows.
    """
    unlabeled = np.asarray(unlabeled, dtype=np.int64)
    count = min(len(generated), len(unlabeled))
    _, positions = faiss_ops.knn_l2(generated, features, min(neighbours, len(unlabeled)), rows=unlabeled)
    taken = np.zeros(len(unlabeled), dtype=bool)
    picks = []
    for i in range(count):
        free = [p for p in positions[i] if p >= 0 and not taken[p]]
        if not free:  # every near one is taken: search the rows still free
            rest = np.flatnonzero(~taken)
            _, nearest = faiss_ops.knn_l2(generated[i : i + 1], features, 1, rows=unlabeled[rest])
            free = [rest[nearest[0, 0]]]
        taken[free[0]] = True
        picks.append(unlabeled[free[0]])
    return np.asarray(picks, dtype=np.int64)


def asal(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """The unlabeled rows nearest to the ``budget`` most uncertain generated images; score = their entropy."""
    gan = context.require("gan", "asal")
    model = context.require("model", "asal")
    features = context.require("gan_features", "asal")
    settings = context.require("settings", "asal")
    # The classifier on images in [-1, 1] (the generator's range, the classifier's input), without dropout.
    classifier = nn.Sequential(model.backbone, model.head).eval()
    draws = torch.Generator().manual_seed(int(rng.integers(2**63)))
    z = torch.randn(settings.candidates * budget, gan.shape.latent_dim, generator=draws)
    z = uncertain_latents(gan.generator, classifier, z, settings.steps, settings.lr)
    with torch.no_grad():
        images = gan.generator(z)
        uncertainty = entropy(classifier(images)).double().numpy()
    # Most uncertain first; a stable sort keeps the draw order among ties.
    best = np.argsort(-uncertainty, kind="stable")[:budget]
    rows = match(gan.features(images[torch.from_numpy(best)]), np.asarray(features, dtype=np.float32),
                 context.unlabeled_rows)
    return Selection(rows=rows, scores=uncertainty[best][: len(rows)])
