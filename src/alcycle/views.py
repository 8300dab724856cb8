"""Random views of images for contrastive pretraining (SimCLR), drawn from an explicit generator.

SimCLR's augmentations (Chen et al. 2020, appendix A) sized for small images: a random
resized crop, then colour distortion (brightness and contrast; saturation, hue and a
random grayscale only where there is colour), an optional Gaussian blur and an optional
horizontal flip. The operations are ``torchvision.transforms.v2.functional`` on uint8
tensors; their random parameters are drawn here from the caller's ``torch.Generator``,
because v2's transform classes draw from torch's global generator, which ``rng.py``'s
policy keeps out of training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

RATIO = (3 / 4, 4 / 3)  # aspect ratios of the crop box, as the paper's (Inception-style) crop
JITTER_P = 0.8  # the paper applies colour distortion to 80% of views
GRAYSCALE_P = 0.2  # and turns 20% of colour views gray
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)


@dataclass(frozen=True)
class ViewSettings:
    """How strongly views differ; ``pretrain.simclr`` gives the values."""

    min_scale: float  # smallest crop, as a share of the image's area
    jitter: float  # colour distortion strength s (0 = none): brightness and contrast by up to ±0.8·s
    blur: bool  # Gaussian blur on half of the views, kernel ~10% of the image side
    flip: bool  # horizontal flips (off for digits and text, where mirroring changes the class)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _chance(generator: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=generator)) < p


def crop_box(height: int, width: int, min_scale: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a box covering ``min_scale``..1 of the area at an aspect ratio in ``RATIO``.

    A box that would overflow is clipped to the image rather than redrawn (the paper's
    crop retries ten times first): one fixed number of draws per view keeps runs simple to replay.
    """
    area = height * width * _uniform(generator, min_scale, 1.0)
    ratio = math.exp(_uniform(generator, math.log(RATIO[0]), math.log(RATIO[1])))
    h = min(height, max(1, round(math.sqrt(area / ratio))))
    w = min(width, max(1, round(math.sqrt(area * ratio))))
    top = int(torch.randint(0, height - h + 1, (), generator=generator))
    left = int(torch.randint(0, width - w + 1, (), generator=generator))
    return top, left, h, w


def distort_colour(image: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness and contrast (and on RGB saturation and hue) scaled by random factors, in a
    random order, as torchvision's ``ColorJitter``; ``image`` is uint8 (C, H, W)."""
    spread = 0.8 * strength
    operations = [(TF.adjust_brightness, max(0.0, 1 - spread), 1 + spread),
                  (TF.adjust_contrast, max(0.0, 1 - spread), 1 + spread)]
    if image.shape[0] == 3:  # one channel has no saturation or hue to change
        operations += [(TF.adjust_saturation, max(0.0, 1 - spread), 1 + spread),
                       (TF.adjust_hue, -0.2 * strength, 0.2 * strength)]
    for index in torch.randperm(len(operations), generator=generator).tolist():
        adjust, low, high = operations[index]
        image = adjust(image, _uniform(generator, low, high))
    return image


def one_view(image: torch.Tensor, settings: ViewSettings, generator: torch.Generator) -> torch.Tensor:
    """A random view of one uint8 image (C, H, W), the same shape and dtype."""
    _, height, width = image.shape
    top, left, h, w = crop_box(height, width, settings.min_scale, generator)
    view = TF.resized_crop(image, top, left, h, w, [height, width], antialias=True)
    if settings.flip and _chance(generator, 0.5):
        view = TF.horizontal_flip(view)
    if settings.jitter > 0 and _chance(generator, JITTER_P):
        view = distort_colour(view, settings.jitter, generator)
    if view.shape[0] == 3 and _chance(generator, GRAYSCALE_P):
        view = TF.rgb_to_grayscale(view, num_output_channels=3)
    if settings.blur and _chance(generator, BLUR_P):
        kernel = max(3, round(0.1 * height) // 2 * 2 + 1)  # odd, about 10% of the side as in the paper
        sigma = _uniform(generator, *BLUR_SIGMA)
        view = TF.gaussian_blur(view, [kernel, kernel], [sigma, sigma])
    return view


def random_views(images: torch.Tensor, settings: ViewSettings, generator: torch.Generator) -> torch.Tensor:
    """One random view of each uint8 image (B, C, H, W) -> uint8 (B, C, H, W); O(B) in memory."""
    return torch.stack([one_view(image, settings, generator) for image in images])
