"""The pool's pixels on disk: one uint8 ``.npy`` array (N, C, H, W), memory-mapped and read in chunks.

``prepare`` fills it chunk by chunk (``create``, a ``StoreWriter``); every reader opens it with ``open_pixels``
(``np.load(mmap_mode="r")``) and copies out only the rows it needs (``Rows``), so no stage
holds the whole pool: O(N·C·H·W) on disk, O(chunk) in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CHUNK_BYTES = 8 << 20  # rows copied at once: a fixed buffer, whatever the pool's size


class StoreWriter:
    """A new store of uint8 (N, C, H, W) at ``path``, filled by row ranges: ``writer[a:b] = rows``.

    The ``.npy`` header and the file's full size are laid down first (``open_memmap``); rows
    then go in with ``os.pwrite``, so written pages sit in the page cache, not in this
    process's memory as a writable map's would: O(chunk) in memory for any N.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        laid = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        self.path, self.shape, self._offset = Path(path), tuple(shape), int(laid.offset)
        del laid
        self._row_bytes = int(np.prod(shape[1:]))
        self._fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, index: slice, rows: np.ndarray) -> None:
        start, stop, _ = index.indices(self.shape[0])
        if rows.shape != (stop - start, *self.shape[1:]) or rows.dtype != np.uint8:
            raise ValueError(f"{self.path}: rows {start}:{stop} need uint8 {(stop - start, *self.shape[1:])}, "
                             f"got {rows.dtype} {rows.shape}")
        if start == stop:
            return
        data = np.ascontiguousarray(rows).data.cast("B")
        position = self._offset + start * self._row_bytes
        while data:  # pwrite may write less than asked
            done = os.pwrite(self._fd, data, position)
            data, position = data[done:], position + done

    def close(self) -> None:
        """Make the rows durable and close the file."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(path: Path, shape: tuple[int, ...]) -> StoreWriter:
    """A writer for a new store of uint8 ``shape`` (N, C, H, W) at ``path``; ``np.load`` reads the file."""
    return StoreWriter(path, shape)


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
    step = rows_per_chunk(source.shape[1:], CHUNK_BYTES)
    with create(partial, (count, *source.shape[1:])) as target:
        for start in range(0, count, step):
            stop = min(start + step, count)
            target[start:stop] = np.asarray(source[start:stop])
    del source  # unmaps it before the rename
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
