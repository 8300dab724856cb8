"""prepare: materialise the pool as PNG files, a manifest and one pixel array.

The ground truth and the original paths (which may name a class folder) go to
``data/truth``, apart from everything that training reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from torchvision.io import write_png

from alcycle.fileio import atomic_save_npy, atomic_write_csv
from alcycle.layout import Layout
from alcycle.params import Params, PrepareParams
from alcycle.pool import MANIFEST_COLUMNS
from alcycle.sources import Item, SourceError, list_items

IMAGES = "images"  # folder of PNG files inside layout.prepared
SOURCES_CSV = "sources.csv"  # beside layout.truth: id -> original path


def run(layout: Layout, params: Params) -> pd.DataFrame:
    """Write images, manifest and pixels under ``layout.prepared`` and the truth; return the manifest.

    Both folders are rebuilt from scratch in staging folders and swapped in at the end,
    so a failed run leaves the previous outputs whole and stale files never survive.
    """
    items = list_items(params.prepare, params.classes)
    keep, split = draw_split(len(items), params.prepare)
    items = [items[row] for row in keep]
    manifest = pd.DataFrame(
        {"id": [i.id for i in items], "path": [f"{IMAGES}/{i.id}.png" for i in items], "split": split},
        columns=MANIFEST_COLUMNS,
    )
    truth = pd.DataFrame(
        [(i.id, i.label) for i in items if i.label is not None], columns=["id", "label"], dtype=str
    )
    sources = pd.DataFrame({"id": [i.id for i in items], "source": [i.source for i in items]})
    with _replacing(layout.prepared) as prepared, _replacing(layout.truth.parent) as truth_dir:
        pixels = write_images(items, prepared / IMAGES, params.prepare)
        atomic_write_csv(prepared / layout.manifest.relative_to(layout.prepared), manifest)
        atomic_save_npy(prepared / layout.pixels.relative_to(layout.prepared), pixels)
        atomic_write_csv(truth_dir / layout.truth.name, truth)
        atomic_write_csv(truth_dir / SOURCES_CSV, sources)
    return manifest


def draw_split(n: int, params: PrepareParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept by ``subsample`` (int64, ascending) and the split of each kept row ("pool"/"test").

    One generator seeded with ``split_seed`` draws the subsample, then the test rows.
    """
    if params.subsample < 0:
        raise SourceError(f"'prepare.subsample' is {params.subsample}; use 0 (all items) or a positive count")
    if params.subsample > n:
        raise SourceError(f"'prepare.subsample' is {params.subsample} but the source has only {n} items")
    rng = np.random.default_rng(params.split_seed)
    keep = np.arange(n, dtype=np.int64)
    if params.subsample > 0:
        keep = np.sort(rng.choice(n, size=params.subsample, replace=False)).astype(np.int64)
    n_test = round(params.test_fraction * len(keep))
    if n_test >= len(keep):
        raise SourceError(
            f"'prepare.test_fraction' {params.test_fraction} of {len(keep)} items leaves no pool items"
        )
    split = np.full(len(keep), "pool", dtype=object)
    split[rng.permutation(len(keep))[:n_test]] = "test"
    return keep, split


def write_images(items: list[Item], folder: Path, params: PrepareParams) -> np.ndarray:
    """Decode every item, write ``folder/<id>.png``; return uint8 (N, C, S, S) in item order."""
    folder.mkdir(parents=True, exist_ok=True)
    size = params.image_size
    pixels = np.empty((len(items), params.channels, size, size), dtype=np.uint8)
    for row, item in enumerate(items):
        image = item.load()
        # Plain writes: the whole staging folder is swapped in at once, which is cheaper
        # than an fsync per image and just as safe for readers.
        write_png(image, str(folder / f"{item.id}.png"))
        pixels[row] = image.numpy()
    return pixels


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target`` that replaces it whole on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp makes the folder private (0700); the outputs are as readable as their parent.
    staging.chmod(target.parent.stat().st_mode & 0o777)
    try:
        yield staging
        if target.exists():
            retired = staging.with_suffix(".old")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
