"""ASAL's two steps after the GAN (Mayer & Timofte, seed 002): search the generator's latent
space for samples the classifier is least sure of, then query the real unlabeled images
nearest to them.

``uncertain_latents``: gradient ascent on the predictive entropy of classifier(generator(z))
over a batch of latent vectors, each kept on the sphere of radius √d that a standard normal
z concentrates on (so the generator stays where it was trained). ``match``: each generated
sample's nearest unlabeled pool item in a feature space (PCA of the pixels, an autoencoder's
code or the discriminator's features, as the seed lists), through ``faiss_ops.knn_l2`` over
the unlabeled rows only, so a labeled or test item can never be returned; an item already
matched to an earlier sample is passed over for that sample's next nearest.
"""

from __future__ import annotations

import numpy as np
import torch

from alcycle import faiss_ops


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy (B,) of softmax(logits) for logits (B, C), in nats."""
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def uncertain_latents(generator: torch.nn.Module, classifier: torch.nn.Module, z: torch.Tensor,
                      steps: int, lr: float) -> torch.Tensor:
    """``z`` (B, d) moved by ``steps`` Adam steps of rate ``lr`` towards higher entropy of
    classifier(generator(z)), projected back to the sphere of radius √d after each step.
    Neither network's parameters change; returns the new latents (detached)."""
    radius = z.shape[1] ** 0.5
    z = (z / z.norm(dim=1, keepdim=True) * radius).detach().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    frozen = [(p, p.requires_grad) for net in (generator, classifier) for p in net.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            optimiser.zero_grad()
            (-entropy(classifier(generator(z))).sum()).backward()
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
