"""A small image GAN learned from every pool image with no label: DCGAN, or WGAN-GP as an option.

ASAL (``strategies/asal.py``) searches its generator's latent space for images the current
classifier is least sure of and queries the real images nearest to them, in a feature space
fixed here once: ``pca`` (the top principal components of the pixels) or ``discriminator``
(the discriminator's last convolutional features, pooled to 2 × 2). Nothing here reads a
label, so the ``pretrain-gan`` stage runs once and new labels never re-run it.

Networks (Radford et al. 2016's DCGAN, sized for small images): the generator maps z (d,) to
a (C, 4s, 4s) image in [-1, 1] through one linear layer to (4w, s, s) and two stride-2
transposed convolutions, s = ⌈size / 4⌉, cropped to (C, size, size); the discriminator
mirrors it with two stride-2 convolutions and a linear score. ``dcgan``: non-saturating loss,
batch norm in both, Adam(2e-4, β = (0.5, 0.999)) unless ``gan.lr`` says otherwise; one
discriminator and one generator update per step. ``wgan_gp`` (Gulrajani et al. 2017): a critic
without batch norm, Wasserstein loss with gradient penalty λ = 10 and Adam(β = (0, 0.9)), five
critic updates per generator update. ``gan.steps`` counts discriminator (critic) updates.

Randomness follows ``rng.py``: weights under ``rng.seeded(seed)``, the image order from the pool
loader's stream, latents and the penalty's mixing weights from ``rng.gan_generator(seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from alcycle import faiss_ops, rng
from alcycle.classifier import Classifier
from alcycle.compute import PerProcess
from alcycle.errors import MissingInputError, ParamsError
from alcycle.training import lightning_fit

PENALTY = 10.0  # WGAN-GP's λ
CRITIC_UPDATES = 5  # WGAN-GP's critic updates per generator update
BETAS = {"dcgan": (0.5, 0.999), "wgan_gp": (0.0, 0.9)}
PCA_SAMPLE = 10_000  # images the principal components are fitted on


@dataclass(frozen=True)
class GanShape:
    """What both networks are built from; stored with the weights."""

    method: str  # dcgan | wgan_gp
    latent_dim: int
    width: int  # w: the discriminator's first convolution has w channels, the generator's start 4w
    channels: int
    size: int  # square images, size × size


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution and linear weights N(0, 0.02), batch norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, d) -> images (B, C, size, size) in [-1, 1]."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        w, self.start, self.size = shape.width, math.ceil(shape.size / 4), shape.size
        self.project = nn.Sequential(nn.Linear(shape.latent_dim, 4 * w * self.start**2, bias=False),
                                     nn.BatchNorm1d(4 * w * self.start**2), nn.ReLU(True))
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, shape.channels, 4, 2, 1), nn.Tanh())
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(len(z), -1, self.start, self.start)
        return self.body(x)[..., : self.size, : self.size]


class Discriminator(nn.Module):
    """Images (B, C, size, size) in [-1, 1] -> scores (B,): a logit (dcgan) or a critic value (wgan_gp)."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        w, norm = shape.width, shape.method == "dcgan"  # a gradient penalty needs no batch statistics
        self.body = nn.Sequential(
            nn.Conv2d(shape.channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=not norm), nn.BatchNorm2d(2 * w) if norm else nn.Identity(),
            nn.LeakyReLU(0.2, True))
        side = (shape.size // 2) // 2  # two stride-2 convolutions of kernel 4, padding 1
        self.score = nn.Linear(2 * w * side * side, 1)
        self.apply(_dcgan_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 8w): the last convolutional maps, average-pooled to 2 × 2 (ASAL's discriminator features)."""
        return F.adaptive_avg_pool2d(self.body(x), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.body(x).flatten(1)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty: mean (‖∇ critic(x̂)‖ − 1)² at x̂ = mix·real + (1 − mix)·fake, mix (B,) in [0, 1]."""
    between = (mix.view(-1, 1, 1, 1) * real + (1 - mix.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class GAN(pl.LightningModule):
    """Both networks and their alternating updates (manual optimisation: two optimisers per step).

    Batches are (uint8 pixels (B, C, H, W), pool rows); the rows are not used.
    """

    def __init__(self, shape: GanShape, lr: float, seed: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters({"method": shape.method, "latent_dim": shape.latent_dim, "width": shape.width,
                                   "lr": lr, "seed": seed})
        self.shape, self.lr = shape, lr
        self.generator = Generator(shape)
        self.discriminator = Discriminator(shape)
        self._draws = rng.gan_generator(seed)

    def latents(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.shape.latent_dim, generator=self._draws)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        real = Classifier.to_input(batch[0])
        g_optimiser, d_optimiser = self.optimizers()  # type: ignore[misc, attr-defined]
        fake = self.generator(self.latents(len(real)))
        real_score, fake_score = self.discriminator(real), self.discriminator(fake.detach())
        if self.shape.method == "wgan_gp":
            mix = torch.rand(len(real), generator=self._draws)
            d_loss = (fake_score.mean() - real_score.mean()
                      + PENALTY * gradient_penalty(self.discriminator, real, fake.detach(), mix))
        else:
            d_loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        d_optimiser.zero_grad()
        self.manual_backward(d_loss)
        d_optimiser.step()
        self.log("d_loss", d_loss, prog_bar=False)
        if self.shape.method == "wgan_gp" and (batch_idx + 1) % CRITIC_UPDATES:
            return
        score = self.discriminator(fake)
        g_loss = -score.mean() if self.shape.method == "wgan_gp" else F.softplus(-score).mean()
        g_optimiser.zero_grad()
        self.manual_backward(g_loss)
        g_optimiser.step()
        self.log("g_loss", g_loss, prog_bar=False)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = BETAS[self.shape.method]
        return [torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=betas)]


class StepProgress(pl.Callback):
    """Prints both losses every ``every`` steps."""

    def __init__(self, every: int, steps: int) -> None:
        self.every, self.steps = every, steps

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % self.every == 0 or batch_idx + 1 == self.steps:
            metrics = trainer.callback_metrics
            print(f"pretrain-gan: step {batch_idx + 1}/{self.steps}, discriminator loss "
                  f"{float(metrics['d_loss']):.3f}, generator loss {float(metrics.get('g_loss', float('nan'))):.3f}",
                  flush=True)


@dataclass
class TrainedGan:
    """A generator, its discriminator and the feature map ASAL matches in, all in eval mode.

    ``projection``: for ``features: pca``, (A (k, F), b (k,)) with features = A·x + b for a
    flattened image x in [-1, 1] (faiss's ``PCAMatrix``); None for ``discriminator``.
    """

    shape: GanShape
    generator: Generator
    discriminator: Discriminator
    features_kind: str
    projection: tuple[torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """(B, k) float32 matching features of images (B, C, H, W) in [-1, 1]."""
        if self.projection is not None:
            a, b = self.projection
            return (images.flatten(1) @ a.T + b).numpy().astype(np.float32)
        return self.discriminator.features(images).numpy().astype(np.float32)

    def pool_features(self, pixels: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(N, k) float32 features of uint8 ``pixels`` (N, C, H, W), a batch at a time."""
        parts = [self.features(Classifier.to_input(torch.from_numpy(np.array(pixels[start : start + batch_size]))))
                 for start in range(0, len(pixels), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)

    def payload(self) -> dict[str, Any]:
        """What ``save`` stores: shapes, weights and the PCA projection."""
        saved: dict[str, Any] = {"method": self.shape.method, "shape": vars(self.shape).copy(),
                                 "generator": self.generator.state_dict(),
                                 "discriminator": self.discriminator.state_dict(), "features": self.features_kind}
        if self.projection is not None:
            saved["projection"] = {"a": self.projection[0], "b": self.projection[1]}
        return saved


def pca_projection(pixels: np.ndarray, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """faiss's PCA of up to ``PCA_SAMPLE`` images drawn with ``seed``, as (A (dim, F), b (dim,))."""
    rows = np.random.default_rng(seed).permutation(len(pixels))[:PCA_SAMPLE]
    x = Classifier.to_input(torch.from_numpy(np.array(pixels[np.sort(rows)]))).flatten(1).numpy()
    if not 1 <= dim <= min(x.shape):
        raise ParamsError(f"'gan.pca_dim' is {dim}; it must be between 1 and {min(x.shape)} "
                          f"(the images and pixels available)")
    a, b = faiss_ops.pca_matrix(x, dim)
    return torch.from_numpy(a), torch.from_numpy(b)


def train_gan(pixels: np.ndarray, method: str, latent_dim: int, width: int, steps: int, batch_size: int,
              lr: float, features: str, pca_dim: int, seed: int, compute: Any = None, progress: int = 500
              ) -> TrainedGan:
    """A GAN trained for ``steps`` discriminator updates on uint8 ``pixels`` (N, C, H, W), read a batch
    at a time, and its feature map. O(batch) images in memory (PCA: up to ``PCA_SAMPLE``)."""
    if len(pixels) < 2:
        raise ParamsError(f"gan.method {method}: {len(pixels)} image(s) in the pool; it needs at least 2")
    _, channels, height, width_px = pixels.shape
    if height != width_px or height < 8:
        raise ParamsError(f"gan.method {method}: images must be square and at least 8 pixels, got {height}×{width_px}")
    shape = GanShape(method, latent_dim, width, channels, height)
    batch = min(batch_size, len(pixels))
    with rng.seeded(seed):
        model = GAN(shape, lr, seed)
    from alcycle.simclr import StoreRows  # a loader over the store that holds one batch

    data = StoreRows(pixels)
    generator = rng.loader_generator(seed, rng.POOL_LOADER)
    sampler = PerProcess(lambda world: RandomSampler(data, num_samples=world * steps * batch, generator=generator))
    loader = DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True)
    with rng.seeded(seed):
        lightning_fit(model, loader, callbacks=[StepProgress(progress, steps)], compute=compute)
    model.generator.eval(), model.discriminator.eval()
    projection = pca_projection(pixels, pca_dim, seed) if features == "pca" else None
    return TrainedGan(shape, model.generator, model.discriminator, features, projection)


def load_gan(path: Path | str) -> TrainedGan:
    """The GAN ``pretrain-gan`` wrote, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path} not found; the pretrain-gan stage writes it (dvc repro, or alcycle pretrain-gan)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("method") == "none" or "generator" not in payload:
        raise ParamsError(f"{path} holds no GAN (gan.method is none); set gan.method to dcgan or wgan_gp in "
                          f"params.yaml and run the pretrain-gan stage")
    shape = GanShape(**payload["shape"])
    generator, discriminator = Generator(shape), Discriminator(shape)
    generator.load_state_dict(payload["generator"])
    discriminator.load_state_dict(payload["discriminator"])
    projection = payload.get("projection")
    return TrainedGan(shape, generator.eval(), discriminator.eval(), payload["features"],
                      None if projection is None else (projection["a"], projection["b"]))
