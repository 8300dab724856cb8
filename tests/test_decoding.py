"""Parallel decoding into the pixel store: item order kept, unreadable items reported, memory bounded."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from alcycle import decoding
from alcycle.sources import Item, UnreadableImageError

BROKEN = {3, 4, 11}


def load(index: int) -> torch.Tensor:
    """Image ``index``: every pixel equals the index; the ``BROKEN`` ones cannot be decoded."""
    if index in BROKEN:
        raise UnreadableImageError(f"{index}.png", f"broken {index}")
    return torch.full((1, 2, 2), index, dtype=torch.uint8)


def crash(index: int) -> torch.Tensor:
    raise RuntimeError("a bug, not a bad image")


ITEMS = [Item(id=f"i{k:02d}", source=f"{k}.png", label=None, load=partial(load, k)) for k in range(13)]
READABLE = [k for k in range(13) if k not in BROKEN]


@pytest.mark.parametrize("workers, chunk", [(1, None), (1, 2), (2, 2), (3, 1), (2, 100)])
def test_readable_items_fill_the_first_rows_in_item_order(workers: int, chunk: int | None) -> None:
    store = np.zeros((13, 1, 2, 2), dtype=np.uint8)
    written, failures = decoding.decode_into(ITEMS, store, workers=workers, chunk=chunk)
    assert written == len(READABLE)
    assert store[:written, 0, 0, 0].tolist() == READABLE
    assert (store[written:] == 0).all()
    assert failures == [(k, f"broken {k}") for k in sorted(BROKEN)]


def test_at_most_two_chunks_per_worker_are_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks are handed over in order while later ones decode; the window bounds memory."""
    submitted = []

    class Counting(decoding.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            submitted.append(args[1:3])
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(decoding, "ProcessPoolExecutor", Counting)
    ahead = []
    for received, (images, failed) in enumerate(decoding._decoded_chunks(ITEMS, (1, 2, 2), 2, 1), start=1):
        ahead.append(len(submitted) - received)
        assert [*images[:, 0, 0, 0].tolist(), *(index for index, _ in failed)] == [received - 1]
    assert ahead == [3] * 10 + [2, 1, 0]  # 2 × workers in flight, never more
    assert submitted == [(k, k + 1) for k in range(13)]


def test_an_unexpected_error_in_a_worker_reaches_the_caller() -> None:
    items = [*ITEMS[:5], Item(id="x", source="x.png", label=None, load=partial(crash, 0)), *ITEMS[5:]]
    store = np.zeros((14, 1, 2, 2), dtype=np.uint8)
    with pytest.raises(RuntimeError, match="a bug, not a bad image"):
        decoding.decode_into(items, store, workers=2, chunk=2)
