"""Augmentation of the classifier's training images, drawn from an explicit generator.

``random_shift`` is ``train.augment``'s; ``weak_view`` and ``strong_view`` are FixMatch's two
views of an unlabeled image (torchvision's v2 transforms on uint8 tensors, so gray digits
and RGB photos alike). torchvision draws from torch's global generator, so each call seeds
it from the caller's generator inside ``rng.seeded``: the views are reproducible and no
other draw of the run (dropout) moves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from alcycle import rng
from alcycle.training import single_threaded

# The paper's weak translation: up to 12.5 % of the side (4 px of 32), as a padded random crop.
WEAK_SHIFT = 0.125
# Cutout after RandAugment: a square of side up to half the image (a quarter of its area), as
# FixMatch's Cutout draws it; filled with mid-gray, the model's input 0 (``Classifier.to_input``).
CUTOUT = v2.RandomErasing(p=1.0, scale=(0.02, 0.25), ratio=(1.0, 1.0), value=127)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image (B, C, H, W) by up to ``max_shift`` pixels, zero-filling the border."""
    _, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


def weak_transform(size: tuple[int, int], flip: bool) -> v2.Transform:
    """A random shift of up to ``WEAK_SHIFT`` of the side (zero-filled) of an image of ``size``
    (H, W), then a horizontal flip if ``flip``.

    A padded crop, not ``RandomAffine``: the same whole-pixel shifts at a tenth of the cost.
    """
    crop = v2.RandomCrop(size, padding=max(1, round(WEAK_SHIFT * max(size))))
    return v2.Compose([crop, v2.RandomHorizontalFlip()]) if flip else crop


def strong_transform() -> v2.Transform:
    """RandAugment (2 ops, torchvision's magnitude 9 of 31), then ``CUTOUT``."""
    return v2.Compose([v2.RandAugment(num_ops=2), CUTOUT])


def each_image(transform: v2.Transform, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``transform`` drawn afresh for each uint8 image of ``images`` (B, C, H, W) -> (B, C, H, W) uint8.

    One seed from ``generator`` per call seeds torch's global generator for the batch.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    # One thread: a second one costs more than the work on one small image (RandAugment's
    # affine grids ran over four times slower with two threads on a busy machine).
    with rng.seeded(seed), single_threaded():
        # A v2 transform given a batch would draw one set of parameters for all of it.
        return torch.stack([transform(image) for image in images])


def weak_view(images: torch.Tensor, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
    """FixMatch's weak view of uint8 ``images`` (B, C, H, W): same shape and dtype."""
    return each_image(weak_transform((images.shape[-2], images.shape[-1]), flip), images, generator)


def strong_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """FixMatch's strong view of uint8 ``images`` (B, C, H, W): same shape and dtype."""
    return each_image(strong_transform(), images, generator)
