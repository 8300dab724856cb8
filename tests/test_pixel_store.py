"""The pixel store returns exactly the pixels written, and reads selected rows without copying the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alcycle import pixel_store


def seeded(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def test_chunks_written_to_a_store_read_back_exactly(tmp_path: Path) -> None:
    images = seeded((11, 3, 5, 5))
    with pixel_store.create(tmp_path / "pixels.npy", images.shape) as store:
        for start in (8, 0, 4):  # uneven chunks in any order, the last one short
            store[start : start + 4] = images[start : start + 4]
    np.testing.assert_array_equal(np.load(tmp_path / "pixels.npy"), images)  # a plain .npy
    opened = pixel_store.open_pixels(tmp_path / "pixels.npy")
    assert isinstance(opened, np.memmap) and not opened.flags.writeable


def test_a_writer_refuses_rows_of_the_wrong_shape_or_type(tmp_path: Path) -> None:
    with pixel_store.create(tmp_path / "pixels.npy", (4, 1, 2, 2)) as store:
        with pytest.raises(ValueError, match=r"pixels.npy: rows 2:4 need uint8 \(2, 1, 2, 2\), got uint8 \(2, 1, 3, 2\)"):
            store[2:4] = np.zeros((2, 1, 3, 2), dtype=np.uint8)
        with pytest.raises(ValueError, match="got float32"):
            store[0:1] = np.zeros((1, 1, 2, 2), dtype=np.float32)


@pytest.mark.parametrize("budget, expected", [(75, 1), (150, 2), (10, 1), (1 << 20, 13981)])
def test_rows_per_chunk_fits_the_budget(budget: int, expected: int) -> None:
    assert pixel_store.rows_per_chunk((3, 5, 5), budget) == expected


def test_keep_first_shortens_the_store_chunk_by_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = seeded((9, 1, 4, 4))
    path = tmp_path / "pixels.npy"
    np.save(path, images)
    monkeypatch.setattr(pixel_store, "CHUNK_BYTES", 2 * 16)  # two rows a chunk: 7 rows need 4 chunks
    pixel_store.keep_first(path, 7)
    np.testing.assert_array_equal(np.load(path), images[:7])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixels.npy"]


def test_rows_index_like_the_selected_array(tmp_path: Path) -> None:
    images = seeded((10, 2, 3, 3))
    np.save(tmp_path / "pixels.npy", images)
    rows = np.array([8, 1, 4, 5])
    view = pixel_store.Rows(pixel_store.open_pixels(tmp_path / "pixels.npy"), rows)
    assert len(view) == 4 and view.shape == (4, 2, 3, 3)
    np.testing.assert_array_equal(view[1:3], images[[1, 4]])
    np.testing.assert_array_equal(view[0], images[8])
    assert type(view[0]) is np.ndarray and view[0].flags.writeable  # a copy, not the map
    np.testing.assert_array_equal(np.concatenate([view[0:3], view[3:]]), images[rows])
