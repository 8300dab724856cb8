"""BGADL's generative augmentation (Tran et al. 2019, seed 003): a VAE-ACGAN learned each cycle
from the labeled images, whose class-conditional variants of them join the classifier's training.

The model: an encoder q(z | x) = N(μ(x), σ²(x)), a generator G(z, y) (``gan.Generator`` fed z
and the one-hot class), and a discriminator with an auxiliary classifier (ACGAN: a real/fake
score and class logits from ``gan.Discriminator``'s body). Each step, on a batch (x, y) of
labeled images:

- the discriminator learns real x from the reconstructions G(z ~ q(z | x), y) and from
  samples G(z ~ N(0, I), y), and to name the class of the real images;
- the encoder and generator learn to fool it, to have both kinds of image named y, to
  reconstruct x (mean squared error, weight ``reconstruction_weight``) and to keep q close to
  N(0, I) (KL, weight ``kl_weight``).

After training, each labeled image (x, y) gives ``variants`` images G(μ(x) + σ(x)·ε, y), ε ~ N(0, I),
labeled y: the "variants of the acquired samples" that BGADL adds to the training set. With BALD
as the strategy (``select.strategy: bald``) that is BGADL; with any other strategy, the same
augmentation. Randomness: weights under ``rng.seeded``, batches from the labeled loader's
stream, latents from ``rng.gan_generator``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from alcycle import rng
from alcycle.classifier import Classifier
from alcycle.compute import PerProcess
from alcycle.gan import BETAS, Discriminator, GanShape, Generator
from alcycle.training import lightning_fit


class Encoder(nn.Module):
    """Images (B, C, size, size) in [-1, 1] -> (μ, log σ²), each (B, d): the discriminator's body, two heads."""

    def __init__(self, shape: GanShape, latent_dim: int) -> None:
        super().__init__()
        self.body = Discriminator(shape).body
        side = (shape.size // 2) // 2
        self.mean = nn.Linear(2 * shape.width * side * side, latent_dim)
        self.log_variance = nn.Linear(2 * shape.width * side * side, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)
        return self.mean(h), self.log_variance(h)


class AuxiliaryDiscriminator(Discriminator):
    """ACGAN's discriminator: a real/fake logit (B,) and class logits (B, classes)."""

    def __init__(self, shape: GanShape, classes: int) -> None:
        super().__init__(shape)
        self.classes = nn.Linear(self.score.in_features, classes)

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)
        return self.score(h).squeeze(1), self.classes(h)


@dataclasses.dataclass(frozen=True)
class VaeAcganSettings:
    classes: int
    latent_dim: int
    width: int
    lr: float
    kl_weight: float
    reconstruction_weight: float
    seed: int


class VaeAcgan(pl.LightningModule):
    """Encoder, class-conditional generator and auxiliary discriminator, trained together
    (manual optimisation: the discriminator, then encoder + generator, each step).

    Batches are (uint8 pixels (B, C, H, W), class indices (B,))."""

    def __init__(self, channels: int, size: int, settings: VaeAcganSettings) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.settings = settings
        d, c = settings.latent_dim, settings.classes
        self.generator = Generator(GanShape("dcgan", d + c, settings.width, channels, size))
        self.encoder = Encoder(GanShape("dcgan", d, settings.width, channels, size), d)
        self.discriminator = AuxiliaryDiscriminator(GanShape("dcgan", d, settings.width, channels, size), c)
        self._draws = rng.gan_generator(settings.seed)

    def decode(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.cat([z, F.one_hot(targets, self.settings.classes).float()], dim=1))

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self._draws)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        s = self.settings
        x, y = Classifier.to_input(batch[0]), batch[1]
        g_optimiser, d_optimiser = self.optimizers()  # type: ignore[misc, attr-defined]
        mean, log_variance = self.encoder(x)
        reconstructed = self.decode(mean + (0.5 * log_variance).exp() * self.noise(mean), y)
        sampled = self.decode(self.noise(mean), y)

        real_score, real_classes = self.discriminator.both(x)
        fake_scores = [self.discriminator.both(image.detach())[0] for image in (reconstructed, sampled)]
        d_loss = (F.softplus(-real_score).mean() + sum(F.softplus(f).mean() for f in fake_scores) / 2
                  + F.cross_entropy(real_classes, y))
        d_optimiser.zero_grad()
        self.manual_backward(d_loss)
        d_optimiser.step()

        g_loss = torch.zeros(())
        for image in (reconstructed, sampled):
            score, classes = self.discriminator.both(image)
            g_loss = g_loss + F.softplus(-score).mean() / 2 + F.cross_entropy(classes, y)
        kl = -0.5 * (1 + log_variance - mean**2 - log_variance.exp()).sum(dim=1).mean()
        g_loss = g_loss + s.reconstruction_weight * F.mse_loss(reconstructed, x) + s.kl_weight * kl
        g_optimiser.zero_grad()
        self.manual_backward(g_loss)
        g_optimiser.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=False)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = BETAS["dcgan"]
        encoder_generator = [*self.encoder.parameters(), *self.generator.parameters()]
        return [torch.optim.Adam(encoder_generator, lr=self.settings.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.settings.lr, betas=betas)]

    @torch.no_grad()
    def variants(self, pixels: np.ndarray, targets: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` generated variants of each labeled image, uint8 (count·n, C, H, W), and their classes."""
        self.eval()
        x = Classifier.to_input(torch.from_numpy(np.array(pixels)))
        y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        mean, log_variance = self.encoder(x)
        images, classes = [], []
        for _ in range(count):
            z = mean + (0.5 * log_variance).exp() * self.noise(mean)
            images.append(((self.decode(z, y) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
            classes.append(y)
        return torch.cat(images).numpy(), torch.cat(classes).numpy()


def augment(pixels: np.ndarray, targets: np.ndarray, settings: Any, classes: int, seed: int,
            compute: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The labeled images (n, C, H, W) and targets (n,) followed by ``settings.variants`` generated
    variants of each (``train.bgadl``); unchanged when ``variants`` is 0. Call under ``rng.seeded``."""
    if settings.variants == 0 or len(pixels) == 0:
        return pixels, targets
    _, channels, height, width = pixels.shape
    model = VaeAcgan(channels, height, VaeAcganSettings(classes, settings.latent_dim, settings.width, settings.lr,
                                                        settings.kl_weight, settings.reconstruction_weight, seed))
    data = TensorDataset(torch.from_numpy(np.array(pixels)), torch.from_numpy(np.asarray(targets, dtype=np.int64)))
    generator = rng.loader_generator(seed, rng.LABELED_LOADER)
    batch = settings.batch_size
    sampler = PerProcess(lambda world: RandomSampler(data, replacement=True, num_samples=world * settings.steps * batch,
                                                     generator=generator))
    lightning_fit(model, DataLoader(data, batch_size=batch, sampler=sampler), compute=compute)
    images, labels = model.variants(pixels, targets, settings.variants)
    print(f"train: BGADL's VAE-ACGAN added {len(images)} generated variants of the {len(pixels)} labeled images")
    return np.concatenate([np.asarray(pixels), images]), np.concatenate([targets, labels.astype(targets.dtype)])
