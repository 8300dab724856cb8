"""The backbone registry: name -> where its builder lives, imported only when one is built.

A backbone is a plain ``nn.Module`` mapping images (B, C, H, W) to embeddings (B, D); it
says its ``out_dim`` D and the ``taps`` a loss prediction module may read. This module
imports no torch, so reading ``params.yaml`` can check a name against ``BACKBONES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from alcycle.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

_IN = "alcycle.backbones."

# name -> "module:callable"; the callable takes ``in_channels`` and returns a ``Backbone``.
BACKBONES = Registry("backbone", {
    "resnet18": _IN + "resnet:resnet18_small",
    "small_cnn": _IN + "small_cnn:SmallCNN",
})


class Backbone(Protocol):
    """What the classifier and the loss prediction module need of a backbone."""

    out_dim: int  # D, the size of the embedding
    taps: dict[str, int]  # submodule name -> channels of its output map, read by Learning Loss

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> embeddings (B, D)."""
        ...


@dataclass(frozen=True)
class BackboneSpec:
    """How a backbone was built: what a checkpoint stores to build it again."""

    name: str
    in_channels: int


def build_backbone(name: str, in_channels: int) -> nn.Module:
    """A freshly initialised backbone ``name`` (weights drawn from torch's global generator).

    The module carries its ``spec`` so that a checkpoint of a model around it can rebuild it.
    """
    builder = BACKBONES.load(name)
    net = builder(in_channels)
    net.spec = BackboneSpec(name, in_channels)
    return net
