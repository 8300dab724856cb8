"""What ``alcycle init`` suggests for a user's images: classes, image size, channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alcycle.params import PrepareParams
from alcycle.sources import SOURCES, Item
from alcycle.sources.images import decode_rgb


def probe(source: str, path: Path, sample: int = 50) -> tuple[tuple[str, ...], int, int]:
    """Settings ``alcycle init`` suggests for a folder or CSV: (classes, image_size, channels).

    Classes are the sorted ground-truth labels found; channels is 3 if any of the first
    ``sample`` images has colour; image_size is their median shorter side, capped at 64
    so the default CNN stays fast on a CPU.
    """
    params = PrepareParams(source=source, path=str(path), image_size=8, channels=3,
                           test_fraction=0.0, subsample=0, split_seed=0)
    items = SOURCES.load(source)(params)
    classes = tuple(sorted({item.label for item in items if item.label is not None}))
    sides, colour = [], False
    for item in items[:sample]:
        image = decode_rgb(Path(path) / item.source if source == "folder" else _csv_file(path, item))
        sides.append(min(image.shape[1:]))
        colour = colour or not (torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
    return classes, int(min(64, np.median(sides))), 3 if colour else 1


def _csv_file(csv_path: Path, item: Item) -> Path:
    return Path(csv_path).parent / item.source
