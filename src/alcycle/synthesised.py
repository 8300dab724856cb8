"""Synthesised query items (GAAL): images a generator made, queried and labeled like pool images.

A synthesised item's id is ``synth-<cycle>-<first 12 hex of the SHA-256 of its pixels>`` and its
path ``synthesised/<id>.png``. select writes a batch's under ``data/queries/synthesised/``; a
stored annotation batch that labels one keeps its image in the annotation store,
``data/annotations/synthesised/<id>.png`` (``alcycle import``, ``alcycle labelstudio pull`` and
the oracle copy it in just before they store the batch). So the image enters the project with the
label, lives in the append-only folder that label-import and train already read, and any tag
replays it. A stored image is never rewritten: its id is its content's hash.

Annotators may answer ``unrecognisable`` for a synthesised item (seed 002: generated images are
sometimes no class at all). The answer stays in the labeled pool, like any label, so the
annotator's work is recorded and the item is never asked again; train leaves it out.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from alcycle.errors import BadFileError, MissingInputError
from alcycle.layout import Layout

PREFIX = "synth-"
SPLIT = "synthesised"  # the split a synthesised item has where import matches annotations to items
UNRECOGNISABLE = "unrecognisable"  # the one answer besides the classes an annotator may give one
FOLDER = "synthesised"
ID = re.compile(r"^synth-(?P<cycle>\d{4,})-[0-9a-f]{12}$")


def item_id(cycle: int, pixels: np.ndarray) -> str:
    """The id of a synthesised image made at ``cycle``: uint8 ``pixels`` (C, H, W) hashed with their shape."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    return f"{PREFIX}{cycle:04d}-{digest[:12]}"


def relative_path(item: str) -> str:
    """Where the image of ``item`` lies, under the query folder and under the annotation store."""
    return f"{FOLDER}/{item}.png"


def store(layout: Layout) -> Path:
    """The folder of kept synthesised images, inside the annotation store."""
    return layout.annotations / FOLDER


def queried(layout: Layout) -> Path:
    """The folder of the current query batch's synthesised images."""
    return layout.query_images / FOLDER


def items(folder: Path) -> pd.DataFrame:
    """The synthesised items whose images ``folder`` holds, as manifest rows (id, path, split)."""
    names = sorted(p.stem for p in Path(folder).glob("*.png") if ID.match(p.stem)) if Path(folder).is_dir() else []
    return pd.DataFrame({"id": names, "path": [relative_path(n) for n in names], "split": SPLIT}, dtype=str)


def labeling_manifest(layout: Layout, manifest: pd.DataFrame, with_queries: bool) -> pd.DataFrame:
    """The items an annotation may name: the manifest's, the kept synthesised ones and, ``with_queries``
    (an import, which keeps what it labels), the current query batch's synthesised ones."""
    extra = [items(store(layout))] + ([items(queried(layout))] if with_queries else [])
    synthesised = pd.concat(extra, ignore_index=True).drop_duplicates("id")
    if synthesised.empty:
        return manifest
    clash = synthesised["id"][synthesised["id"].isin(manifest["id"])]
    if len(clash):
        raise BadFileError(f"{layout.manifest}: id {clash.iloc[0]!r} is also a synthesised item's id; pool ids must "
                           f"not start with {PREFIX!r}")
    return pd.concat([manifest[["id", "path", "split"]], synthesised], ignore_index=True)


def keep(layout: Layout, labeled_ids: pd.Series | list[str]) -> list[str]:
    """Copy the images of the synthesised items among ``labeled_ids`` that the store lacks from the
    query folder into the store; returns the ids copied. Each is checked against its id first."""
    kept = set(items(store(layout))["id"])
    wanted = sorted({i for i in labeled_ids if ID.match(str(i))} - kept)
    for item in wanted:
        source = queried(layout) / f"{item}.png"
        if not source.exists():
            raise MissingInputError(f"{source}: the image of synthesised item {item} is missing; it is kept "
                                    f"from the query batch it was asked in (restore data/queries from git)")
        _check(source, item)
    target = store(layout)
    for item in wanted:
        target.mkdir(parents=True, exist_ok=True)
        temporary = target / f".{item}.png.tmp"
        shutil.copyfile(queried(layout) / f"{item}.png", temporary)
        temporary.replace(target / f"{item}.png")
    return wanted


def read_pixels(layout: Layout, ids: list[str], shape: tuple[int, ...]) -> np.ndarray:
    """uint8 (n, C, H, W) pixels of kept synthesised items, in the order of ``ids``;
    each image must have the pool's ``shape`` (C, H, W) and the content its id names."""
    out = np.empty((len(ids), *shape), dtype=np.uint8)
    for i, item in enumerate(ids):
        out[i] = read_pixels_at(store(layout), item, shape)
    return out


def read_pixels_at(folder: Path, item: str, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 (C, H, W) pixels of synthesised item ``item`` from ``folder`` (the store or the query folder)."""
    path = folder / f"{item}.png"
    if not path.exists():
        raise MissingInputError(f"{path}: synthesised item {item} has no image there; restore {folder} from git "
                                f"(a stored batch keeps its images in data/annotations/{FOLDER}/)")
    return _check(path, item, shape)


def write_images(folder: Path, ids: list[str], images: np.ndarray) -> None:
    """Each uint8 image (C, H, W) of ``images`` as PNG ``folder/<id>.png``."""
    import torch
    from torchvision.io import write_png

    folder.mkdir(parents=True, exist_ok=True)
    for item, image in zip(ids, images):
        write_png(torch.from_numpy(np.ascontiguousarray(image)), str(folder / f"{item}.png"))


def _check(path: Path, item: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The pixels of ``path``, refused unless they hash to ``item`` (and have ``shape``)."""
    from torchvision.io import ImageReadMode, decode_png

    import torch

    pixels = decode_png(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8),
                        ImageReadMode.UNCHANGED).numpy()
    if shape is not None and pixels.shape != tuple(shape):
        raise BadFileError(f"{path}: image of shape {pixels.shape}; expected the pool's {tuple(shape)}")
    match = ID.match(item)
    if match is None or item_id(int(match["cycle"]), pixels) != item:
        raise BadFileError(f"{path}: its pixels do not hash to its id {item}; a synthesised image is never "
                           f"edited (restore it from git)")
    return pixels
