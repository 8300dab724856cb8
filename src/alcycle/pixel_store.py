"""The pool's pixels on disk: one uint8 ``.npy`` array (N, C, H, W), memory-mapped and read in chunks.

``prepare`` fills it chunk by chunk (``create``); every reader opens it with ``open_pixels``
(``np.load(mmap_mode="r")``) and copies out only the rows it needs (``Rows``), so no stage
holds the whole pool: O(N·C·H·W) on disk, O(chunk) in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CHUNK_BYTES = 8 << 20  # rows copied at once: a fixed buffer, whatever the pool's size


def create(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A new writable store of uint8 ``shape`` (N, C, H, W) at ``path``, its rows not yet written.

    The file is a plain ``.npy`` (``np.load`` reads it); its pages go to disk as they are
    written, so filling it costs O(chunk) memory.
    """
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def open_pixels(path: Path) -> np.ndarray:
    """The store at ``path``, read-only and memory-mapped: uint8 (N, C, H, W)."""
    return np.load(path, mmap_mode="r")


def rows_per_chunk(row_shape: tuple[int, ...], budget: int = CHUNK_BYTES) -> int:
    """How many rows of ``row_shape`` (uint8) fit in ``budget`` bytes; at least one."""
    return max(1, budget // max(1, int(np.prod(row_shape))))


def keep_first(path: Path, count: int) -> None:
    """Shorten the store at ``path`` to its first ``count`` rows, copied chunk by chunk into a
    new file that then replaces it. O(chunk) in memory."""
    source = open_pixels(path)
    partial = path.with_name(f".{path.name}.part")
    target = create(partial, (count, *source.shape[1:]))
    step = rows_per_chunk(source.shape[1:], CHUNK_BYTES)
    for start in range(0, count, step):
        stop = min(start + step, count)
        target[start:stop] = source[start:stop]
    target.flush()
    del source, target  # closes both maps before the rename
    os.replace(partial, path)


class Rows:
    """Some rows of a store, in a fixed order, read only when asked for.

    ``rows[i]`` is one image (C, H, W) and ``rows[a:b]`` a copied chunk (b − a, C, H, W):
    ``inference.predict`` and the training loaders index it like an array without ever
    copying the whole selection (``pixels[rows]`` on a memory map would).
    """

    def __init__(self, pixels: np.ndarray, rows: np.ndarray) -> None:
        self.pixels, self.rows = pixels, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.pixels.shape[1:])

    def __getitem__(self, index: int | slice) -> np.ndarray:
        """A copy of the selected row(s); O(chunk) in memory."""
        if isinstance(index, slice):
            return np.asarray(self.pixels[self.rows[index]])
        return np.array(self.pixels[self.rows[index]])
