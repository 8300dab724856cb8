"""Where every training-time random draw comes from: one seed (``params.seed``), named streams.

- the labeled and the pool loaders (SimCLR's order of the pool too): a ``torch.Generator`` seeded
  ``seed * 1000 + stream`` (``LABELED_LOADER``, ``POOL_LOADER``), so adding a stream never shifts another's draws;
- augmentation (random shifts, the ViT's random affine, SimCLR's views): a generator seeded ``seed``;
- FixMatch's weak and strong views: a generator seeded ``seed * 1000 + VIEWS``, one seed per
  batch for torchvision's transforms, which draw from the global generator inside ``seeded``;
- a GAN's latents and WGAN-GP's mixing weights: a generator seeded ``seed * 1000 + GAN``;
- MC-dropout masks at extraction: a generator seeded ``seed`` (``extract`` passes ``params.seed``);
- DeepCluster epoch ``e`` (k-means, cluster sampling, the fresh head): ``seed + e``;
- weight initialisation, training-time dropout and the loaders' base seeds: torch's global
  generator, only inside ``seeded(seed)``, which leaves it as it was, so no caller's
  randomness shifts and no caller's state leaks into training.

The integers are the ones alcycle has always used, so seeded runs reproduce earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

LABELED_LOADER = 0
POOL_LOADER = 1
VIEWS = 2  # FixMatch's views: a stream of its own, apart from the loaders'
GAN = 3  # a GAN's latents and its penalty's mixing weights


def loader_generator(seed: int, stream: int) -> torch.Generator:
    """The sampler generator of loader ``stream`` (``LABELED_LOADER``, ``POOL_LOADER``)."""
    return torch.Generator().manual_seed(seed * 1000 + stream)


def augmentation_generator(seed: int) -> torch.Generator:
    """The generator a model draws its augmentations from while it trains."""
    return torch.Generator().manual_seed(seed)


def views_generator(seed: int) -> torch.Generator:
    """The generator FixMatch's weak and strong views of the unlabeled batches draw from."""
    return torch.Generator().manual_seed(seed * 1000 + VIEWS)


def gan_generator(seed: int) -> torch.Generator:
    """The generator a GAN draws its latents (and WGAN-GP's mixing weights) from while it trains."""
    return torch.Generator().manual_seed(seed * 1000 + GAN)


def mc_dropout_generator(seed: int) -> torch.Generator:
    """The generator of the dropout masks of MC-dropout passes."""
    return torch.Generator().manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of DeepCluster epoch ``epoch`` (0-based): its k-means, sampling and new head."""
    return seed + epoch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draws from torch's global generator come from ``seed``; the generator is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield
