"""The ``folder`` source: images in one folder, or one level down in class folders."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from alcycle.params import PrepareParams
from alcycle.sources import IMAGE_EXTENSIONS, Item, SourceError, path_id
from alcycle.sources.images import load_image

if TYPE_CHECKING:
    import torch


def folder_items(params: PrepareParams) -> list[Item]:
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
    load = partial(_load_relative, str(root), params.channels, params.image_size)
    labels: dict[str, str] = {}  # one string per class folder, shared by its items
    return [
        Item(
            id=path_id(rel),
            source=rel,
            label=labels.setdefault(name := rel.split("/")[0], name) if nested else None,
            load=partial(load, rel),  # the path is built when the image is decoded, not held per item
        )
        for rel in flat + nested
    ]


def _load_relative(root: str, channels: int, size: int, rel: str) -> torch.Tensor:
    return load_image(Path(root) / rel, channels, size)


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


