"""Decoding image files into uint8 tensors of one size and channel count."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from alcycle.sources import UnreadableImageError

# torchvision's decoder reads JPEG, PNG, GIF and WebP; Pillow (which torchvision itself
# depends on) reads the rest.
_PILLOW_EXTENSIONS = (".bmp", ".tif", ".tiff")
# torchvision prefixes its messages with the C++ function and source line that raised them.
_DECODER_LOCATION = re.compile(r"^[\w()]+, \S+\.cpp:\d+, ")


def load_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """Decode an image file into uint8 (channels, size, size); see ``fit`` for the conversion."""
    path = Path(path)
    try:
        image = decode_rgb(path)
    except (RuntimeError, OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
        reason = _DECODER_LOCATION.sub("", " ".join(str(exc).split()))
        raise UnreadableImageError(path, reason) from exc
    return fit(image, channels, size)


def fit(image: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """uint8 (1 or 3, H, W) -> uint8 (channels, size, size).

    Converts the channels, resizes the shorter side to ``size`` (antialiased), then
    crops the centre square.
    """
    if channels == 1 and image.shape[0] == 3:
        image = _gray(image)
    elif channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if tuple(image.shape[1:]) != (size, size):
        image = TF.resize(image, [size], antialias=True)
        image = TF.center_crop(image, [size, size])
    return image.contiguous()


def decode_rgb(path: Path) -> torch.Tensor:
    """uint8 (3, H, W), EXIF orientation applied, alpha dropped, first frame of an animation."""
    if path.suffix.lower() in _PILLOW_EXTENSIONS:
        with Image.open(path) as opened:
            array = np.array(opened.convert("RGB"))
        return torch.from_numpy(array).permute(2, 0, 1)
    # Always RGB: GIF and WebP ignore ImageReadMode.GRAY, and PNG and JPEG weigh the channels
    # differently, so one gray formula (``_gray``) keeps the formats consistent.
    image = decode_image(str(path), mode=ImageReadMode.RGB, apply_exif_orientation=True)
    if image.ndim == 4:
        image = image[0]
    if image.dtype != torch.uint8:  # 16-bit PNG
        image = TF.to_dtype(image, torch.uint8, scale=True)
    return image


def _gray(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> (1, H, W) with ITU-R 601-2 luma in Pillow's integer weights.

    The weights sum to 2**16, so a gray pixel stays exactly itself (torchvision's
    ``rgb_to_grayscale`` truncates, turning 1 into 0), and the result equals
    ``Image.convert("L")``.
    """
    r, g, b = image.to(torch.int32)
    luma = (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16
    return luma.to(torch.uint8).unsqueeze(0)


