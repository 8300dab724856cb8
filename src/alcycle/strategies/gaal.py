"""GAAL (Zhu & Bento, seed 002): query synthesis. The queries are new images, made by the GAN's
generator where the current classifier is least sure, not items of the pool.

Needs the GAN of ``pretrain-gan`` (``gan.method``), the current classifier and ``select.gaal``.
For a budget b: c·b latent vectors (c = ``candidates``) drawn from N(0, I) are moved by gradient
ascent on the classifier's uncertainty about generator(z) (``asal.uncertain_latents``, on the
sphere √d), with ``objective`` margin (1 − (p₁ − p₂): the seed's minimum distance to the decision
boundary, for two classes or many) or entropy (the seed's choice for many classes); the b images
of highest uncertainty, as uint8 pixels, are the queries. Score: that uncertainty, of the
stored (uint8) image.

The pool is never scored, so the cost does not grow with it; the labeled mask is not read (a
synthesised image is new), so the budget is not bounded by the unlabeled pool. select gives
each image its id (``alcycle.synthesised``) and writes it with the batch; the annotator may
answer ``unrecognisable``. Needs a classifier, so it cannot be a cold start.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from alcycle.strategies.asal import entropy, uncertain_latents
from alcycle.strategies.base import Selection, SelectionContext


def margin_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """1 − (p₁ − p₂) (B,): one minus the gap between the two most probable classes of softmax(logits)."""
    top = torch.softmax(logits, dim=1).topk(2, dim=1).values
    return 1.0 - (top[:, 0] - top[:, 1])


OBJECTIVES = {"margin": margin_uncertainty, "entropy": entropy}


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] (B, C, H, W) -> uint8 pixels, the inverse of ``Classifier.to_input``."""
    return images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def gaal(context: SelectionContext, budget: int, rng: np.random.Generator) -> Selection:
    """``budget`` synthesised images, most uncertain first, as ``Selection.images``; no pool row."""
    gan = context.require("gan", "gaal")
    model = context.require("model", "gaal")
    settings = context.require("settings", "gaal")
    uncertainty = OBJECTIVES[settings.objective]
    classifier = nn.Sequential(model.backbone, model.head).eval()  # on [-1, 1] images, without dropout
    draws = torch.Generator().manual_seed(int(rng.integers(2**63)))
    z = torch.randn(settings.candidates * budget, gan.shape.latent_dim, generator=draws)
    z = uncertain_latents(gan.generator, classifier, z, settings.steps, settings.lr, uncertainty)
    with torch.no_grad():
        pixels = to_pixels(gan.generator(z))
        # Scored as stored: the uint8 image the annotator sees and train reads.
        scores = uncertainty(classifier(model.to_input(pixels))).double().numpy()
    order = np.argsort(-scores, kind="stable")  # a stable sort keeps the draw order among ties
    # Two latents may end on the same uint8 image; an image is asked once (its id is its content).
    best = np.asarray(list({pixels[i].numpy().tobytes(): i for i in order[::-1]}.values())[::-1][:budget])
    return Selection(rows=np.empty(0, dtype=np.int64), scores=scores[best],
                     images=pixels[torch.from_numpy(best)].numpy())
