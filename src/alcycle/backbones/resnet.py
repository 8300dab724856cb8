"""torchvision's ResNet-18, adapted to small images."""

from __future__ import annotations

import torchvision
from torch import nn


def resnet18_small(in_channels: int) -> nn.Module:
    """ResNet-18 with a 3×3 stride-1 stem and no max-pool: images (B, C, H, W) -> (B, 512).

    A 7×7 stride-2 stem and a max-pool would shrink a 28×28 digit to 7×7 before the first block.
    """
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.out_dim = 512
    net.taps = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
    return net
