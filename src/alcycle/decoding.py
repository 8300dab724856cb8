"""Decode a pool's items into a pixel store, in parallel on the available cores, in item order.

Workers are forked: they inherit the item list, so only (start, stop) ranges travel to
them and only decoded chunks travel back. At most ``2 × workers`` chunks are in flight,
so memory is O(workers · chunk) images, whatever the number of items.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch

from alcycle.pixel_store import StoreWriter, rows_per_chunk
from alcycle.sources import Item, UnreadableImageError

CHUNK_BYTES = 4 << 20  # decoded pixels per task: big enough to amortise a task, small enough to bound memory
MAX_CHUNK = 256  # items per task, so small images still spread over every worker

Failures = list[tuple[int, str]]  # (item index, the decoder's reason)
Decoded = tuple[np.ndarray, Failures]  # uint8 (k, C, H, W) of a range's readable items, and the others

_ITEMS: Sequence[Item] = ()  # what a forked worker decodes: inherited from the parent, never pickled


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers narrow)."""
    return len(os.sched_getaffinity(0))


def decode_into(items: Sequence[Item], store: StoreWriter | np.ndarray, workers: int | None = None,
                chunk: int | None = None) -> tuple[int, Failures]:
    """Decode every item into consecutive rows of ``store`` (N, C, H, W), readable items only,
    in item order; return how many rows were written and each unreadable item's index and reason.

    ``workers``: processes (default: the available cores; 1 decodes here). ``chunk``: items
    per task (default: ``CHUNK_BYTES`` of pixels, at most ``MAX_CHUNK``).
    """
    row_shape = tuple(store.shape[1:])
    chunk = chunk or min(MAX_CHUNK, rows_per_chunk(row_shape, CHUNK_BYTES))
    written, failures = 0, []
    for images, failed in _decoded_chunks(items, row_shape, workers or available_cores(), chunk):
        store[written : written + len(images)] = images
        written += len(images)
        failures += failed
    return written, failures


def _decoded_chunks(items: Sequence[Item], row_shape: tuple[int, ...], workers: int,
                    chunk: int) -> Iterator[Decoded]:
    """Each range of ``chunk`` items decoded, in order; in this process when one worker suffices."""
    ranges = [(start, min(start + chunk, len(items))) for start in range(0, len(items), chunk)]
    if workers <= 1 or len(ranges) <= 1:
        for start, stop in ranges:
            yield decode_range(items, start, stop, row_shape)
        return
    # fork: the workers share the parent's item list (and its decoders' lazily loaded state).
    # gc.freeze first, so a worker's garbage collector never writes to the headers of the
    # parent's million items and copies every page that holds one (copy-on-write).
    context = multiprocessing.get_context("fork")
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(items,)) as pool:
            pending: deque[Future[Decoded]] = deque()
            for start, stop in ranges:
                pending.append(pool.submit(_decode_inherited, start, stop, row_shape))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        gc.unfreeze()


def decode_range(items: Sequence[Item], start: int, stop: int, row_shape: tuple[int, ...]) -> Decoded:
    """Decode ``items[start:stop]``: the readable ones stacked, the others with the decoder's reason."""
    images, failed = [], []
    for index in range(start, stop):
        try:
            images.append(items[index].load().numpy())
        except UnreadableImageError as error:
            # Read on: one run names every broken file, so they are fixed in one go.
            failed.append((index, error.reason))
    stacked = np.stack(images) if images else np.empty((0, *row_shape), dtype=np.uint8)
    return stacked, failed


def _start_worker(items: Sequence[Item]) -> None:
    global _ITEMS
    _ITEMS = items
    # One decode per core already: torch's own threads would only oversubscribe them.
    torch.set_num_threads(1)


def _decode_inherited(start: int, stop: int, row_shape: tuple[int, ...]) -> Decoded:
    return decode_range(_ITEMS, start, stop, row_shape)
