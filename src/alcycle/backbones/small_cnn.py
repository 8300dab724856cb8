"""The small CNN made for a CPU: three conv blocks, a 3×3 pooled map and one linear layer."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Images (B, C, H, W) -> embeddings (B, ``out_dim``); ~8M MACs per 28×28 image.

    Pooling to 3×3 rather than 1×1 keeps where strokes are, which matters for digits and
    for clustering the features (DeepCluster, label propagation).
    ``taps``: the conv blocks whose outputs a loss prediction module reads, with their channels.
    """

    def __init__(self, in_channels: int, width: int = 32, out_dim: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(4 * width * 9, out_dim),
            nn.ReLU(),
        )
        self.out_dim = out_dim
        self.taps = {"features.0": width, "features.2": 2 * width, "features.4": 4 * width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
