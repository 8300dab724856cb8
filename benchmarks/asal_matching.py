"""Benchmark: how uncertain are the real images ASAL queries, against the generated images they match?

    python benchmarks/asal_matching.py [--campaign campaigns/generative] [--labels 50 100] [--budget 50]

Reads a campaign folder whose pretrain-gan stage has run (its prepared MNIST-5k, truth and
``models/gan``). For each label count, a classifier is trained (the campaign's ``train``
settings) on that many pool images drawn with seed 0; then one ASAL selection of ``--budget``
prints the mean predictive entropy (nats; ln 10 = 2.30 at most) of the generated images and of
the real items matched to them, in the GAN's own feature space and in its discriminator's,
beside entropy's and random's picks and the unlabeled pool's mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alcycle import rng
from alcycle.gan import load_gan
from alcycle.inference import predict_all
from alcycle.params import load_params
from alcycle.stages.train import build_classifier, fit
from alcycle.strategies import SelectionContext, select


@dataclasses.dataclass
class CampaignPool:
    """A campaign folder's params, pool split (pixels, ids, truth) and DCGAN, as the benchmarks read them."""

    params: Any
    pixels: np.ndarray
    pool: np.ndarray  # manifest rows of the pool split
    ids: np.ndarray  # their ids
    truth: pd.Series  # id -> label
    gan: Any
    features: np.ndarray  # pretrain-gan's features of the pool rows

    @classmethod
    def load(cls, root: Path) -> CampaignPool:
        manifest = pd.read_csv(root / "data/prepared/manifest.csv", dtype=str)
        pool = np.flatnonzero(manifest["split"].to_numpy() == "pool")
        return cls(load_params(root / "params.yaml"), np.load(root / "data/prepared/pixels.npy", mmap_mode="r"),
                   pool, manifest["id"].to_numpy()[pool],
                   pd.read_csv(root / "data/truth/labels.csv", dtype=str).set_index("id")["label"],
                   load_gan(root / "models/gan/gan.pt"), np.load(root / "models/gan/features.npy")[pool])

    def classifier_on(self, count: int) -> tuple[Any, np.ndarray]:
        """A classifier (the campaign's train settings) on ``count`` pool labels drawn with seed 0; its labeled mask."""
        labeled = np.zeros(len(self.pool), dtype=bool)
        labeled[np.random.default_rng(0).choice(len(self.pool), count, replace=False)] = True
        targets = self.truth.loc[self.ids[labeled]].astype(int).to_numpy()
        with rng.seeded(self.params.seed):
            model = build_classifier(self.params, self.pixels.shape[1])
            fit(model, self.pixels[self.pool[labeled]], targets, self.params)
        return model, labeled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, default=Path("campaigns/generative"))
    parser.add_argument("--labels", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--budget", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    data = CampaignPool.load(args.campaign)
    params, pixels, pool, ids, gan, features = data.params, data.pixels, data.pool, data.ids, data.gan, data.features
    critic = dataclasses.replace(gan, features_kind="discriminator", projection=None)
    critic_features = critic.pool_features(pixels[pool])
    print("| labels | generated images | ASAL's real picks | ASAL's real picks (discriminator features) | "
          "entropy's picks | random picks | unlabeled pool |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.labels:
        model, labeled = data.classifier_on(count)
        probs = predict_all(model, pixels[pool], params.extract.batch_size)["probs"]
        entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(axis=1)
        context = SelectionContext(ids=ids, labeled=labeled, probs=probs, model=model, gan=gan, gan_features=features,
                                   settings=params.select.asal)

        def picks(name: str, ctx: SelectionContext = context):
            return select(ctx, name, args.budget, np.random.default_rng(1))
        asal = picks("asal")
        by_critic = picks("asal", dataclasses.replace(context, gan=critic, gan_features=critic_features))
        print(f"| {count} | {asal.scores.mean():.2f} | {entropy[asal.rows].mean():.2f} | "
              f"{entropy[by_critic.rows].mean():.2f} | {entropy[picks('entropy').rows].mean():.2f} | "
              f"{entropy[picks('random').rows].mean():.2f} | {entropy[~labeled].mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
