"""GEAL's vision transformer: torchvision's ``VisionTransformer`` with a uint8 front end.

The patch projection always takes 3 channels, as torchvision builds it, so an ImageNet
or DINO checkpoint in torchvision's layout loads unchanged; grayscale images are
repeated to 3 channels instead (the same as summing the projection's weights over
channels, at a cost of two extra channels in one convolution). Inputs are scaled with
ImageNet's mean and standard deviation, which is what such checkpoints were trained on
and harmless for one trained here. The saved file holds the configuration, so
``load_vit`` rebuilds the model without ``params.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer

from alcycle.checkpoints import atomic_torch_save, weights_file
from alcycle.errors import MissingInputError
from alcycle.params import Params, ParamsError, PretrainVitParams

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ViT checkpoints saved before torchvision's MLPBlock version 2 use these names; torchvision
# renames them when it loads one, and so does ``load_weights``.
_LEGACY_MLP_NAMES = {"mlp.linear_1.": "mlp.0.", "mlp.linear_2.": "mlp.3."}


@dataclass(frozen=True)
class VitConfig:
    image_size: int  # the transformer's input size; images are resized to it
    patch_size: int
    hidden_dim: int
    layers: int
    heads: int
    mlp_dim: int
    in_channels: int  # channels of the images it is given: 1 (repeated to 3) or 3


class Vit(VisionTransformer):
    """A torchvision ViT without classification head: ``forward`` gives the final CLS token (B, D).

    Its state dict uses torchvision's names, so torchvision checkpoints load as they are.
    """

    def __init__(self, config: VitConfig) -> None:
        super().__init__(image_size=config.image_size, patch_size=config.patch_size, num_layers=config.layers,
                         num_heads=config.heads, hidden_dim=config.hidden_dim, mlp_dim=config.mlp_dim, num_classes=1)
        self.config = config
        self.heads = nn.Identity()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (B, C, H, W) -> normalised float (B, 3, S, S) at the transformer's size S."""
        if pixels.ndim != 4 or pixels.shape[1] != self.config.in_channels:
            raise ValueError(f"the vision transformer takes images of shape (B, {self.config.in_channels}, H, W), "
                             f"got {tuple(pixels.shape)}")
        x = pixels.float().div_(255.0)
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) -> CLS and patch tokens with positions (B, 1 + P, D),
        as torchvision's ``forward`` builds them before the first block."""
        patches = self.conv_proj(x).flatten(2).transpose(1, 2)
        cls = self.class_token.expand(len(x), -1, -1)
        return self.encoder.dropout(torch.cat([cls, patches], dim=1) + self.encoder.pos_embedding)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Final CLS token (B, D) of uint8 pixels."""
        return self(self.to_input(pixels))


def vit_config(vit_params: PretrainVitParams, image_size: int, in_channels: int) -> VitConfig:
    """The configuration ``pretrain_vit`` describes for images of ``image_size`` px and ``in_channels``;
    ``pretrain_vit.image_size`` 0 keeps the images' own size."""
    if in_channels not in (1, 3):
        raise ValueError(f"the vision transformer takes 1 or 3 channels, got {in_channels}")
    size = vit_params.image_size or image_size
    if size % vit_params.patch_size:
        raise ParamsError(f"pretrain_vit.patch_size {vit_params.patch_size} must divide the image size {size}")
    return VitConfig(image_size=size, patch_size=vit_params.patch_size, hidden_dim=vit_params.hidden_dim,
                     layers=vit_params.layers, heads=vit_params.heads, mlp_dim=vit_params.mlp_dim,
                     in_channels=in_channels)


def build_vit(vit_params: PretrainVitParams, image_size: int, in_channels: int) -> Vit:
    """A freshly initialised ``Vit`` (torch's global RNG draws the weights, as in torchvision)."""
    return Vit(vit_config(vit_params, image_size, in_channels)).eval()


@torch.inference_mode()
def attention_and_features(vit: Vit, pixels: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """GEAL's two views of uint8 ``pixels`` (B, C, H, W), resized to the transformer's size.

    Returns the last block's CLS→patch attention averaged over heads (B, P) float32 (a
    row sums to 1 minus the CLS token's attention to itself) and the patch tokens that
    the second-to-last block outputs, i.e. the last block's input (B, P, D) float32.
    With a single block the features are the patch embeddings.
    """
    was_training = vit.training
    vit.eval()
    # np.array copies, so a read-only memmap becomes a tensor torch may write to
    batch = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.array(pixels))
    x = vit.tokens(vit.to_input(batch))
    *first, last = vit.encoder.layers
    for block in first:
        x = block(x)
    # torchvision's EncoderBlock asks its attention for no weights; the last block's
    # attention is computed again here, by the same module, with them.
    y = last.ln_1(x)
    _, weights = last.self_attention(y, y, y, need_weights=True, average_attn_weights=True)
    vit.train(was_training)
    return weights[:, 0, 1:].float().numpy(), x[:, 1:].float().numpy()


def save_vit(path: Path, vit: Vit, method: str) -> dict[str, Any]:
    """Write the configuration, the weights and how they were obtained; returns what was written."""
    payload = {"method": method, "config": dataclasses.asdict(vit.config), "state_dict": vit.state_dict()}
    atomic_torch_save(Path(path), payload)
    return payload


def load_vit(path: Path | str) -> Vit:
    """The transformer ``pretrain-vit`` wrote, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path} not found; the pretrain-vit stage writes it "
                                f"(dvc repro, or alcycle pretrain-vit)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("method") == "none" or "state_dict" not in payload:
        raise ParamsError(f"{path} holds no vision transformer (pretrain_vit.method is none); set "
                         f"pretrain_vit.method to deepcluster or weights in params.yaml and run the pretrain-vit stage")
    vit = Vit(VitConfig(**payload["config"]))
    vit.load_state_dict(payload["state_dict"])
    return vit.eval()


def load_weights(vit: Vit, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy a torchvision ``VisionTransformer`` state dict into ``vit``; every tensor must fit.

    Keys may carry a ``module.`` or ``backbone.`` prefix; the classification head
    (``heads.*``) is ignored. A missing, extra or differently shaped tensor fails with
    its name: a positional embedding of another length is never silently skipped.
    """
    own = vit.state_dict()
    given = {}
    for name, tensor in state.items():
        key = name.removeprefix("module.").removeprefix("backbone.")
        for old, new in _LEGACY_MLP_NAMES.items():
            key = key.replace(old, new)
        if not key.startswith("heads."):
            given[key] = tensor
    missing = [key for key in own if key not in given]
    extra = [key for key in given if key not in own]
    wrong = [f"{key} {tuple(given[key].shape)} (expected {tuple(own[key].shape)})"
             for key in own if key in given and given[key].shape != own[key].shape]
    if missing or extra or wrong:
        problems = [f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                    for what, keys in (("shape mismatch", wrong), ("missing", missing), ("unexpected", extra)) if keys]
        raise ParamsError(f"{source} does not fit the vision transformer that pretrain_vit describes "
                         f"({_describe(vit.config)}): {'; '.join(problems)}. Set pretrain_vit's image_size, "
                         f"patch_size, hidden_dim, layers, mlp_dim (and heads) to the checkpoint's")
    vit.load_state_dict(given)


def _describe(config: VitConfig) -> str:
    return (f"image_size {config.image_size}, patch_size {config.patch_size}, hidden_dim {config.hidden_dim}, "
            f"layers {config.layers}, mlp_dim {config.mlp_dim}")


def vit_from_weights(root: Path, pixels: np.ndarray, params: Params) -> Vit:
    """``pretrain_vit.method: weights`` (``methods.PRETRAIN_VIT``): a ``Vit`` of ``pretrain_vit``'s
    sizes holding every tensor of the torchvision state dict ``pretrain_vit.weights``."""
    path = weights_file(root, params.pretrain_vit.weights, "pretrain_vit.weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    vit = build_vit(params.pretrain_vit, image_size=pixels.shape[-1], in_channels=pixels.shape[1])
    load_weights(vit, state, str(path))
    return vit
