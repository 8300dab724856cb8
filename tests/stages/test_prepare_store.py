"""Streaming prepare: the same manifest and pixels as the in-memory prepare it replaced, decoded in
parallel into a memory-mapped store; a failure leaves the previous outputs whole."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import conftest
import numpy as np
import pandas as pd
import pytest
from test_prepare import BROKEN, break_images, class_folders, make_params, stored_bytes

from alcycle import decoding
from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.stages.prepare import run

# Digests (sha256, first 16 hex digits) of the previous prepare's outputs (one np.save of an
# in-memory array, a PNG per image), computed with that code before it was replaced.
BEFORE = {
    400: {"pixels": "c322bc18b2c6c1f9", "manifest": "c0a42d6e09f76b08", "truth": "ec171b863350d37d"},
    0: {"pixels": "2913c6b6527114b7", "manifest": "57beb5fadc1678eb", "truth": "aae1911f5c602945"},
}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def prepare_mnist(root: Path, subsample: int) -> dict[str, str]:
    params = load_params(conftest.write_params(root))
    params = dataclasses.replace(params, prepare=dataclasses.replace(params.prepare, subsample=subsample))
    layout = Layout(root)
    run(layout, params)
    pixels = np.load(layout.pixels, mmap_mode="r")
    assert pixels.shape == (subsample or 5000, 1, 28, 28)
    return {"pixels": digest(np.ascontiguousarray(pixels).tobytes()),
            "manifest": digest(layout.manifest.read_bytes()), "truth": digest(layout.truth.read_bytes())}


@pytest.mark.slow
def test_mnist_subsample_gives_the_previous_prepares_manifest_and_pixels(tmp_path: Path) -> None:
    # 400 items: two chunks, so the parallel path runs wherever two cores are available.
    assert prepare_mnist(tmp_path, 400) == BEFORE[400]


@pytest.mark.slow
def test_mnist_5k_gives_the_previous_prepares_manifest_and_pixels(tmp_path: Path) -> None:
    assert prepare_mnist(tmp_path, 0) == BEFORE[0]


def test_parallel_chunks_give_the_same_store_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class_folders(tmp_path / "images", per_class=6)
    run(Layout(tmp_path / "one"), make_params(tmp_path, channels=3))
    monkeypatch.setattr(decoding, "MAX_CHUNK", 2)
    monkeypatch.setattr(decoding, "available_cores", lambda: 3)
    run(Layout(tmp_path / "many"), make_params(tmp_path, channels=3))
    one, many = (stored_bytes(tmp_path / name / "data") for name in ("one", "many"))
    assert one == many and set(one) == {"prepared/manifest.csv", "prepared/pixels.npy", "truth/labels.csv",
                                        "truth/sources.csv"}


def test_skip_stores_exactly_the_readable_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class_folders(tmp_path / "images")
    clean = Layout(tmp_path / "clean")
    run(clean, make_params(tmp_path))
    break_images(tmp_path / "images")
    monkeypatch.setattr(decoding, "MAX_CHUNK", 3)  # the broken ones fall in different chunks
    monkeypatch.setattr(decoding, "available_cores", lambda: 2)
    skipped = Layout(tmp_path / "skipped")
    run(skipped, make_params(tmp_path, on_unreadable="skip"))
    assert skipped.pixels.read_bytes() == clean.pixels.read_bytes()  # compacted, header shortened
    assert sorted(p.name for p in skipped.prepared.iterdir()) == ["manifest.csv", "pixels.npy", "skipped.csv"]
    assert pd.read_csv(skipped.skipped)["path"].tolist() == list(BROKEN)


def test_a_crash_while_decoding_leaves_the_previous_outputs_whole(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    run(layout, make_params(tmp_path))
    before = stored_bytes(tmp_path / "data")
    real = decoding.decode_range

    def crash_on_the_second_chunk(items, start, stop, row_shape):  # type: ignore[no-untyped-def]
        if start > 0:
            raise MemoryError("decoder ran out of memory")
        return real(items, start, stop, row_shape)

    monkeypatch.setattr(decoding, "MAX_CHUNK", 4)
    monkeypatch.setattr(decoding, "decode_range", crash_on_the_second_chunk)
    with pytest.raises(MemoryError):
        run(layout, make_params(tmp_path, test_fraction=0.5))
    assert stored_bytes(tmp_path / "data") == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared", "truth"]
