"""The pool's features under a frozen backbone: computed once per backbone, read every cycle.

``embed`` writes ``embeddings.npy`` (N, D) float32, row i = manifest row i, and
``source.json``, which names the backbone and the digest of the weights they came
from; ``train`` and ``extract`` then run only the head over them (``alcycle.head``).
Without a frozen backbone the folder holds ``source.json`` alone, saying so.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from alcycle.backbones import Backbone, BackboneSpec, build_backbone
from alcycle.checkpoints import load_backbone_weights
from alcycle.classifier import Classifier
from alcycle.errors import BadFileError, MissingInputError, ParamsError
from alcycle.fileio import atomic_write_text, file_digest

EMBEDDINGS = "embeddings.npy"
SOURCE = "source.json"
# Images per forward pass in ``write_embeddings``: small batches keep a CPU's caches warm.
FORWARD_BATCH = 32


def pretrained_backbone(path: Path, name: str, in_channels: int, into: nn.Module | None = None) -> nn.Module:
    """Backbone ``name`` holding the weights of the pretrain stage's file ``path`` (into ``into`` when given)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["method"] == "none" or saved["backbone"] != name:
        raise ParamsError(f"{path} holds no {name} weights "
                          f"(pretrain.method {saved['method']!r}); run the pretrain stage for this backbone")
    backbone = into if into is not None else build_backbone(name, in_channels)
    load_backbone_weights(backbone, saved["state_dict"])
    return backbone


@contextmanager
def atomic_memmap(path: Path, shape: tuple[int, ...], dtype: Any = np.float32) -> Iterator[np.ndarray]:
    """A writable ``.npy`` memory map that becomes ``path`` only when the block ends without error.

    It is filled in place (O(chunk) in memory, O(prod(shape)) on disk) in a temporary
    file of the same folder, then renamed, so a reader never sees half an array.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@torch.inference_mode()
def write_embeddings(backbone: nn.Module, pixels: np.ndarray, path: Path, batch_size: int,
                     cluster: str = "", pretrained: Path | None = None) -> tuple[int, int]:
    """The backbone's features (N, D) float32 of uint8 ``pixels`` (N, C, H, W), written to ``path``.

    One ``batch_size`` chunk of pixels read at a time (O(chunk) in memory, O(N·D) on disk),
    run through the network ``FORWARD_BATCH`` images at a time. With ``cluster`` (a Ray
    address), the chunks run on the cluster's nodes (``ray_ops.map_batches``), each worker
    loading the backbone from the pretrain stage's file ``pretrained`` and the pixels from
    ``pixels``' file: the same chunks through the same code, so the same array.
    Returns (N, D).
    """
    dim = cast(Backbone, backbone).out_dim
    with atomic_memmap(path, (len(pixels), dim)) as out:
        if cluster:
            from alcycle.ray_ops import map_batches

            assert pretrained is not None and isinstance(pixels, np.memmap), "workers read both from their files"
            spec = cast(BackboneSpec, backbone.spec)  # build_backbone gives every backbone its spec
            work = BackboneChunks(Path(pretrained).resolve(), spec.name, spec.in_channels,
                                  Path(str(pixels.filename)).resolve(), batch_size)
            for done in map_batches(cluster, len(pixels), batch_size, work):
                out[done["row"]] = done["features"]
        else:
            fast = fast_copy(backbone)
            for start in range(0, len(pixels), batch_size):
                out[start : start + batch_size] = chunk_features(fast, pixels[start : start + batch_size], batch_size)
    return len(pixels), dim


def fast_copy(backbone: nn.Module) -> nn.Module:
    """A channels-last copy in eval mode (batch-norm statistics as stored, as in the classifier's
    frozen backbone); the caller's module is left as it was. Fed ``FORWARD_BATCH`` images at a
    time, on a CPU it runs the small CNN 2-2.5x faster than contiguous batches of 500
    (benchmarks/embed_speed.py)."""
    return copy.deepcopy(backbone).eval().to(memory_format=torch.channels_last)


@torch.inference_mode()
def chunk_features(fast: nn.Module, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """(B, D) float32 features of one chunk of uint8 ``pixels`` (B, C, H, W) through ``fast_copy``'s module."""
    chunk = np.array(pixels)  # a copy, even of a memmap
    step = min(batch_size, FORWARD_BATCH)
    parts = [fast(Classifier.to_input(torch.from_numpy(chunk[at : at + step])).contiguous(
        memory_format=torch.channels_last)).numpy() for at in range(0, len(chunk), step)]
    return np.concatenate(parts).astype(np.float32)


class BackboneChunks:
    """``chunk_features`` of the pretrained backbone over the pixel store, chunk by chunk, for
    ``ray_ops.map_batches``: paths travel to the workers, each loads the backbone once."""

    def __init__(self, pretrained: Path, name: str, in_channels: int, pixels: Path, batch_size: int) -> None:
        self.pretrained, self.name, self.in_channels = pretrained, name, in_channels
        self.pixels_path, self.batch_size = pixels, batch_size
        self.fast: nn.Module | None = None

    def __call__(self, start: int) -> dict[str, np.ndarray]:
        if self.fast is None:
            self.fast = fast_copy(pretrained_backbone(self.pretrained, self.name, self.in_channels))
            self.pixels = np.load(self.pixels_path, mmap_mode="r")
        return {"features": chunk_features(self.fast, self.pixels[start : start + self.batch_size], self.batch_size)}


def describe(pretrained: Path, backbone: str) -> dict[str, Any]:
    """What identifies a set of features: the backbone's name and the digest of its weights file."""
    return {"frozen": True, "backbone": backbone, "pretrained_sha256": file_digest(pretrained)}


def write_source(folder: Path, source: dict[str, Any]) -> None:
    atomic_write_text(folder / SOURCE, json.dumps(source, indent=1, sort_keys=True) + "\n")


def open_embeddings(folder: Path, expected: dict[str, Any], rows: int) -> np.ndarray:
    """The cached features (rows, D) as a read-only memory map, after checking they come from
    the backbone ``expected`` describes (``describe``) and cover ``rows`` manifest rows."""
    source_path = folder / SOURCE
    if not source_path.exists() or not (folder / EMBEDDINGS).exists():
        raise MissingInputError(f"{folder / EMBEDDINGS} is missing; with train.freeze_backbone the embed stage "
                                f"writes it (run `dvc repro`, or `alcycle embed`)")
    source = json.loads(source_path.read_text(encoding="utf-8"))
    stale = {key: (source.get(key), value) for key, value in expected.items() if source.get(key) != value}
    if stale:
        found = "; ".join(f"{key}: {have!r}, expected {want!r}" for key, (have, want) in stale.items())
        raise BadFileError(f"{source_path}: the features come from another backbone ({found}); "
                           f"run the embed stage again (`dvc repro`)")
    embeddings = np.load(folder / EMBEDDINGS, mmap_mode="r")
    if embeddings.ndim != 2 or len(embeddings) != rows or embeddings.dtype != np.float32:
        raise BadFileError(f"{folder / EMBEDDINGS}: expected float32 ({rows}, D), one row per manifest row; "
                           f"got {embeddings.dtype} {embeddings.shape}")
    return embeddings
