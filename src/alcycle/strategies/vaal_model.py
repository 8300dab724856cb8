"""The networks behind VAAL and SRAAL and the Lightning loop that trains them.

A β-VAE encodes every pool image; a discriminator reads the latent mean and predicts
the item's state, 1 = labeled. The two play VAAL's game with two optimisers (manual
optimisation): each step the VAE minimises reconstruction + β·KL + λ·"the discriminator
calls me labeled", then the discriminator fits the states on the updated latent means.

The VAE adapts to the image size: stride-2 convolutions halve the sides until the
longer one is at most 4 (8×8: one layer; MNIST's 28×28: 28→14→7→4, three; 64×64:
four), the decoder mirrors them and crops to (H, W). Channels stay small (16, 32, 64,
then 64) because the latent only has to tell images apart, not draw them well; the
published VAAL's 128- to 1024-channel networks are sized for a GPU and many epochs.

The VAE terms are sums per image (squared error over the C·H·W values, KL over the
latent), averaged over the batch, so ``kl_weight`` is the usual β and the adversarial
term counts against a whole image's reconstruction. VAAL's code averages the squared
error per pixel instead; at that scale the adversary (weight 1) wins within the few
hundred steps a CPU selection affords: the encoder collapses its means to fool the
discriminator and the picks are no better than random (docs/benchmarks.md, "VAAL and
SRAAL selection time", compares the two scales).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from alcycle.training import lightning_fit, single_threaded

MIN_SIDE = 4  # stop halving once the longer side is this small
BASE_CHANNELS = 16
MAX_CHANNELS = 64
DISCRIMINATOR_WIDTH = 128
INFERENCE_CHUNK = 1024  # images per forward pass when encoding the pool


def halvings(height: int, width: int) -> int:
    """Number of stride-2 layers (each ceil-halves the sides) until max(side) <= MIN_SIDE."""
    count = 0
    while max(height, width) > MIN_SIDE:
        height, width, count = -(-height // 2), -(-width // 2), count + 1
    return count


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float in [0, 1], the range the decoder's sigmoid can reach."""
    return pixels.float().div_(255.0)


class VAE(nn.Module):
    """Convolutional VAE for (B, C, H, W) images in [0, 1] with a ``latent_dim`` Gaussian latent."""

    def __init__(self, channels: int, height: int, width: int, latent_dim: int) -> None:
        super().__init__()
        self.size = (height, width)
        depth = halvings(height, width)
        widths = [min(BASE_CHANNELS * 2**i, MAX_CHANNELS) for i in range(depth)]
        grid = (height, width)
        encoder: list[nn.Module] = []
        for c_in, c_out in zip([channels, *widths], widths):
            encoder += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            grid = (-(-grid[0] // 2), -(-grid[1] // 2))
        self.grid = (widths[-1] if widths else channels, *grid)
        flat = int(np.prod(self.grid))
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        self.to_stats = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat), nn.ReLU())
        decoder: list[nn.Module] = []
        for c_in, c_out in zip(widths[::-1], [*widths[::-1][1:], channels]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*decoder[:-1])  # the last layer gives logits, not ReLU

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and log-variance, each (B, latent_dim)."""
        return self.to_stats(self.encoder(x)).chunk(2, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits (B, C, H, W) of latents (B, latent_dim)."""
        out = self.decoder(self.from_latent(z).view(-1, *self.grid))
        # The ceil-halved grid doubled back can overshoot odd sides (28 -> 4 -> 32): crop.
        return out[:, :, : self.size[0], : self.size[1]]

    def forward(self, x: torch.Tensor, noise: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(reconstruction logits, mean, log-variance) with a reparameterised sample from ``noise``."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=noise, dtype=mu.dtype)
        return self.decode(mu + eps * torch.exp(0.5 * logvar)), mu, logvar


class Discriminator(nn.Module):
    """MLP from latent means (B, latent_dim) to "labeled" logits (B,)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, DISCRIMINATOR_WIDTH), nn.ReLU(),
            nn.Linear(DISCRIMINATOR_WIDTH, DISCRIMINATOR_WIDTH), nn.ReLU(),
            nn.Linear(DISCRIMINATOR_WIDTH, 1),
        )

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        return self.net(mu).squeeze(1)


class AdversarialVAE(pl.LightningModule):
    """VAAL's VAE + discriminator; with ``adversarial=False`` only the VAE trains (SRAAL's cold start).

    A batch is (uint8 pixels (B, C, H, W), state targets (B,) float32 in [0, 1]).
    """

    def __init__(self, channels: int, height: int, width: int, latent_dim: int, lr: float,
                 kl_weight: float, adversary_weight: float, adversarial: bool, seed: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimisers, one step each per batch
        self.vae = VAE(channels, height, width, latent_dim)
        self.discriminator = Discriminator(latent_dim)
        self._noise = torch.Generator().manual_seed(seed)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        pixels, states = batch
        x = to_unit(pixels)
        vae_opt, disc_opt = self.optimizers()
        logits, mu, logvar = self.vae(x, self._noise)
        # Per-image sums, averaged over the batch: the usual β-VAE scale (see the module docstring).
        recon = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(dim=1).mean()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
        loss = recon + self.hparams.kl_weight * kl
        if self.hparams.adversarial:
            # VAAL's generator term: every latent (labeled or not) should pass as labeled.
            fooled = self.discriminator(mu)
            loss = loss + self.hparams.adversary_weight * F.binary_cross_entropy_with_logits(
                fooled, torch.ones_like(fooled))
        vae_opt.zero_grad()
        self.manual_backward(loss)
        vae_opt.step()
        if self.hparams.adversarial:
            with torch.no_grad():  # the discriminator sees the VAE as it is after its step
                mu, _ = self.vae.encode(x)
            disc_loss = F.binary_cross_entropy_with_logits(self.discriminator(mu), states)
            disc_opt.zero_grad()  # also clears what the VAE's adversarial term left here
            self.manual_backward(disc_loss)
            disc_opt.step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr = self.hparams.lr
        return [torch.optim.Adam(self.vae.parameters(), lr=lr),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr)]


class _Draws(Dataset):
    """Item i is training batch i: ``batch_size`` labeled rows and ``batch_size`` unlabeled rows,
    drawn with replacement up front, as (uint8 pixels (B, C, H, W), states (B,) float32)."""

    def __init__(self, pixels: np.ndarray, states: np.ndarray, groups: list[np.ndarray], steps: int,
                 batch_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.pixels, self.states = pixels, states
        self.rows = np.concatenate([rng.choice(g, size=(steps, batch_size)) for g in groups if len(g)], axis=1)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows[step]
        # Gathering one batch at a time keeps a memmapped pool on disk.
        return torch.from_numpy(np.ascontiguousarray(self.pixels[rows])), torch.from_numpy(self.states[rows])


def train_adversarial_vae(
    pixels: np.ndarray,
    states: np.ndarray,
    labeled_rows: np.ndarray,
    unlabeled_rows: np.ndarray,
    settings: Any,
    seed: int,
    adversarial: bool = True,
    compute: Any = None,
) -> AdversarialVAE:
    """Train from scratch for ``settings.steps`` steps; returns the model in eval mode.

    pixels: (N, C, H, W) uint8 (a memmap is fine); states: (N,) float32 discriminator
    targets; labeled_rows / unlabeled_rows: int rows each step draws ``settings.batch_size``
    from (an empty group is skipped). ``settings`` is a ``VaalParams``. Everything random
    (weights, draws, noise) follows ``seed``; the global torch RNG is left as it was.
    ``compute`` (``ComputeParams``; None: one CPU process): under DDP every process trains on
    the same pre-drawn batches, so the model is the one a single process trains.
    """
    _, channels, height, width = pixels.shape
    draws = _Draws(pixels, np.asarray(states, dtype=np.float32), [labeled_rows, unlabeled_rows],
                   settings.steps, settings.batch_size, seed)
    lightning_log = logging.getLogger("pytorch_lightning")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # no "GPU available" banner at every selection
    try:
        with single_threaded(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AdversarialVAE(channels, height, width, settings.latent_dim, settings.lr, settings.kl_weight,
                                   settings.adversary_weight, adversarial, seed)
            # One pass over ``steps`` pre-drawn batches; max_steps would count both optimisers.
            lightning_fit(model, DataLoader(draws, batch_size=None, num_workers=0), compute=compute)
    finally:
        lightning_log.setLevel(level)
    return model.eval()


@torch.inference_mode()
def encode_pool(model: AdversarialVAE, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent means (N, latent_dim) float32 and discriminator "labeled" logits (N,) float32."""
    means, logits = [], []
    with single_threaded():
        for start in range(0, len(pixels), INFERENCE_CHUNK):
            x = to_unit(torch.from_numpy(np.array(pixels[start : start + INFERENCE_CHUNK])))  # a writable copy
            mu, _ = model.vae.encode(x)
            means.append(mu)
            logits.append(model.discriminator(mu))
    return torch.cat(means).numpy(), torch.cat(logits).numpy()
