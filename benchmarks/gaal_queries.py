"""Benchmark: what GAAL's synthesised queries are: their classes, how sure the reference is, how far from real images.

    python benchmarks/gaal_queries.py [--campaign campaigns/gaal] [--labels 50 100] [--budget 100] [--grid FILE]

Reads a campaign folder whose pretrain-gan stage has run (its prepared MNIST-5k, truth and
``models/gan``). For each label count, a classifier is trained (the campaign's ``train``
settings) on that many pool images drawn with seed 0; then one GAAL selection of ``--budget``
per objective (margin, entropy) and, for comparison, random and entropy picks from the pool.
Printed per selection: the classes the queries hold (for synthesised images: the oracle's
reference classifier's answers; for pool images: the truth) as the number of classes and the
largest class's share; the share the reference answers with confidence below 0.5; how often
the current classifier already predicts the answer; and the mean distance from each query to
its nearest real pool image in the GAN's PCA features, beside the same for pool images (their
nearest other pool image). ``--grid`` writes the first 64 margin queries at the first label
count as one PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from alcycle import faiss_ops
from alcycle.inference import predict_all
from alcycle.layout import Layout
from alcycle.oracle import reference_classifier
from alcycle.strategies import SelectionContext, select
from asal_matching import CampaignPool  # the benchmark beside this one: a campaign's pool and a classifier on it


def nearest_real(features: np.ndarray, pool_features: np.ndarray, skip_self: bool) -> float:
    """Mean L2 distance from each row of ``features`` to its nearest ``pool_features`` row (not itself)."""
    k = 2 if skip_self else 1
    distances, _ = faiss_ops.knn_l2(features, pool_features, k)
    return float(np.sqrt(np.maximum(distances[:, k - 1], 0)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, default=Path("campaigns/gaal"))
    parser.add_argument("--labels", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--grid", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    root = args.campaign
    data = CampaignPool.load(root)
    params, pixels, pool, ids, truth, gan, pool_features = (data.params, data.pixels, data.pool, data.ids, data.truth,
                                                            data.gan, data.features)
    reference = reference_classifier(Layout(root), params, root / "work" / ".oracle")
    print(f"reference classifier: {reference.trained_on} pool truth labels, test accuracy "
          f"{reference.test_accuracy:.4f}")
    print("| labels | queries | classes | largest class | reference confidence < 0.5 | classifier already "
          "predicts the answer | distance to the nearest real image |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for count in args.labels:
        model, labeled = data.classifier_on(count)
        probs = predict_all(model, pixels[pool], params.extract.batch_size)["probs"]
        context = SelectionContext(ids=ids, labeled=labeled, probs=probs, model=model, gan=gan)
        rows = {}
        for objective in ("margin", "entropy"):
            settings = dataclasses.replace(params.select.gaal, objective=objective)
            made = select(SelectionContext(ids=ids, labeled=labeled, model=model, gan=gan, settings=settings),
                          "gaal", args.budget, np.random.default_rng(1)).images
            assert made is not None
            answer = predict_all(reference.model, made, 256)["probs"]
            guess = predict_all(model, made, 256)["probs"].argmax(axis=1)
            features = gan.features(model.to_input(torch.from_numpy(made)))
            rows[f"gaal ({objective})"] = (answer.argmax(axis=1), (answer.max(axis=1) < 0.5).mean(),
                                           (guess == answer.argmax(axis=1)).mean(),
                                           nearest_real(features, pool_features, skip_self=False))
            if args.grid is not None and objective == "margin" and count == args.labels[0]:
                from torchvision.utils import save_image

                save_image(torch.from_numpy(made[:64]).float() / 255, str(args.grid), nrow=8, padding=1)
        for name in ("random", "entropy"):
            picked = select(context, name, args.budget, np.random.default_rng(1)).rows
            answer = truth.loc[ids[picked]].astype(int).to_numpy()
            rows[f"{name} (pool)"] = (answer, float("nan"), (probs[picked].argmax(axis=1) == answer).mean(),
                                      nearest_real(pool_features[picked], pool_features, skip_self=True))
        for name, (answers, unsure, agree, distance) in rows.items():
            share = np.bincount(answers, minlength=len(params.classes)).max() / len(answers)
            unsure_text = "" if np.isnan(unsure) else f"{unsure:.0%}"
            print(f"| {count} | {name} | {len(np.unique(answers))} | {share:.0%} | {unsure_text} | {agree:.0%} | "
                  f"{distance:.2f} |", flush=True)


if __name__ == "__main__":
    main()
