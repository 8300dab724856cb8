"""The fashion_mnist source on a tiny IDX fixture in the real format, and on Debian's files."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import conftest
import numpy as np
import pandas as pd
import pytest

from alcycle.layout import Layout
from alcycle.params import Params, PrepareParams
from alcycle.sources import SourceError, list_items
from alcycle.sources.fashion_mnist import CLASSES, DEBIAN_FOLDER, FILES, read_idx
from alcycle.stages.prepare import draw_split, run

TRAIN_IMAGES, TRAIN_LABELS, _ = FILES["train"]
TEST_IMAGES, TEST_LABELS, _ = FILES["test"]


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format: magic 00 00 08 <ndim>, big-endian counts, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fixture(folder: Path, train_per_class: int = 3, test_per_class: int = 1) -> dict[str, np.ndarray]:
    """Seeded random images, a few per class, as the four gzip'd files; returns the arrays."""
    rng = np.random.default_rng(0)
    arrays = {}
    for (images_name, labels_name, _), per_class in zip(FILES.values(), (train_per_class, test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.uint8), per_class))
        arrays[images_name] = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        arrays[labels_name] = labels
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def make_prepare(**values: object) -> PrepareParams:
    base = dict(source="fashion_mnist", path="", image_size=28, channels=1, test_fraction=0.2,
                subsample=0, split_seed=0)
    return PrepareParams(**(base | values))  # type: ignore[arg-type]


def fmnist_params(tmp_path: Path, path: str, **prepare: object) -> Params:
    return conftest.make_params(tmp_path, CLASSES, source="fashion_mnist", path=path, image_size=28, **prepare)


def test_items_ids_labels_splits_and_pixels(tmp_path: Path) -> None:
    arrays = write_fixture(tmp_path / "fm")
    params = fmnist_params(tmp_path, str(tmp_path / "fm"))
    items = {item.id: item for item in list_items(params.prepare, params.classes)}
    assert len(items) == 40
    assert sorted(items)[:2] == ["fmnist-test-00000", "fmnist-test-00001"]
    train = [items[f"fmnist-train-{row:05d}"] for row in range(30)]
    assert [item.label for item in train] == [CLASSES[label] for label in arrays[TRAIN_LABELS]]
    assert {item.split for item in train} == {"pool"}
    assert {items[f"fmnist-test-{row:05d}"].split for row in range(10)} == {"test"}
    assert items["fmnist-test-00007"].source == f"{TEST_IMAGES}[7]"
    np.testing.assert_array_equal(items["fmnist-train-00005"].load().numpy()[0], arrays[TRAIN_IMAGES][5])
    np.testing.assert_array_equal(items["fmnist-test-00009"].load().numpy()[0], arrays[TEST_IMAGES][9])


def test_the_datasets_own_split_is_kept_and_test_fraction_ignored(tmp_path: Path) -> None:
    write_fixture(tmp_path / "fm")
    layout = Layout(tmp_path)
    manifest = run(layout, fmnist_params(tmp_path, str(tmp_path / "fm"), test_fraction=0.5))
    is_test = manifest["id"].str.startswith("fmnist-test-")
    assert (manifest["split"] == np.where(is_test, "test", "pool")).all() and is_test.sum() == 10
    assert pd.read_csv(layout.truth)["label"].value_counts().to_dict() == {name: 4 for name in CLASSES}


def test_subsample_draws_from_each_split_in_proportion_and_is_seeded() -> None:
    fixed = np.array(["pool"] * 60 + ["test"] * 10 + [None] * 30, dtype=object)
    prepare = make_prepare(subsample=20, test_fraction=0.5, split_seed=4)
    keep, split = draw_split(100, prepare, fixed)
    # 60/10/30 of 20 -> 12 pool, 2 test, 6 undecided of which half become test
    assert (keep < 60).sum() == 12 and ((keep >= 60) & (keep < 70)).sum() == 2 and (keep >= 70).sum() == 6
    assert (split[keep < 70] == fixed[keep[keep < 70]]).all()
    assert (split[keep >= 70] == "test").sum() == 3
    again = draw_split(100, prepare, fixed)
    np.testing.assert_array_equal(again[0], keep)
    other = draw_split(100, dataclasses.replace(prepare, split_seed=5), fixed)
    assert not np.array_equal(other[0], keep)


def test_no_fixed_split_draws_exactly_as_before() -> None:
    prepare = make_prepare(subsample=20, test_fraction=0.2, split_seed=3)
    old_keep, old_split = draw_split(50, prepare)
    keep, split = draw_split(50, prepare, np.full(50, None, dtype=object))
    np.testing.assert_array_equal(keep, old_keep)
    np.testing.assert_array_equal(split, old_split)
    # today's algorithm, spelled out: one draw of the subset, then a permutation for test
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(keep, np.sort(rng.choice(50, size=20, replace=False)))
    assert set(np.flatnonzero(split == "test")) == set(rng.permutation(20)[:4])


def test_a_missing_file_names_folder_file_package_and_command(tmp_path: Path) -> None:
    write_fixture(tmp_path / "fm")
    (tmp_path / "fm" / TEST_LABELS).unlink()
    params = fmnist_params(tmp_path, str(tmp_path / "fm"))
    with pytest.raises(SourceError, match=rf"{tmp_path}/fm: Fashion-MNIST file {TEST_LABELS} is missing; "
                                          r"install Debian's package dataset-fashion-mnist "
                                          r"\(apt-get install dataset-fashion-mnist\)"):
        list_items(params.prepare, params.classes)


@pytest.mark.parametrize("damage, message", [
    ("magic", r"expected the magic number 00 00 08 03 and 3 counts, found 00 00 08 01"),
    ("truncated", r"the header promises 30 × 28 × 28 = 23520 bytes of data but the file holds 23000"),
    ("trailing", r"the header promises 30 × 28 × 28 = 23520 bytes of data but the file holds 23520 and more"),
    ("gzip", r"not a readable gzip'd IDX file"),
    ("cut gzip", r"not a readable gzip'd IDX file"),
])
def test_a_corrupt_idx_file_is_named_with_what_was_expected(tmp_path: Path, damage: str, message: str) -> None:
    arrays = write_fixture(tmp_path / "fm")
    path = tmp_path / "fm" / TRAIN_IMAGES
    raw = idx_bytes(arrays[TRAIN_IMAGES])
    damaged = {
        "magic": gzip.compress(idx_bytes(arrays[TRAIN_LABELS])),
        "truncated": gzip.compress(raw[:16 + 23000]),
        "trailing": gzip.compress(raw + b"\0"),
        "gzip": b"not gzip at all",
        "cut gzip": gzip.compress(raw)[:500],
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(SourceError, match=rf"{path}: .*{message}"):
        read_idx(path, ndim=3)


def test_labels_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    arrays = write_fixture(tmp_path / "fm")
    labels = arrays[TRAIN_LABELS].copy()
    labels[4] = 10
    (tmp_path / "fm" / TRAIN_LABELS).write_bytes(gzip.compress(idx_bytes(labels)))
    params = fmnist_params(tmp_path, str(tmp_path / "fm"))
    with pytest.raises(SourceError, match=rf"{TRAIN_LABELS}: row 4 has label 10; expected 0 to 9"):
        list_items(params.prepare, params.classes)
    (tmp_path / "fm" / TRAIN_LABELS).write_bytes(gzip.compress(idx_bytes(labels[:-1])))
    with pytest.raises(SourceError, match=rf"{TRAIN_LABELS}: 29 labels, but .*{TRAIN_IMAGES} holds 30 images"):
        list_items(params.prepare, params.classes)


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FOLDER.is_dir(), reason="needs Debian's dataset-fashion-mnist package "
                                                       "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_subsample(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    manifest = run(layout, fmnist_params(tmp_path, "", subsample=700))
    counts = manifest["split"].value_counts().to_dict()
    assert counts == {"pool": 600, "test": 100}
    assert manifest.loc[manifest["split"] == "test", "id"].str.startswith("fmnist-test-").all()
    truth = pd.read_csv(layout.truth)
    assert set(truth["label"]) == set(CLASSES)
    pixels = np.load(layout.pixels)
    for part, (images_name, labels_name, _) in FILES.items():
        images = read_idx(DEBIAN_FOLDER / images_name, ndim=3)
        labels = read_idx(DEBIAN_FOLDER / labels_name, ndim=1)
        rows = np.flatnonzero(manifest["id"].str.startswith(f"fmnist-{part}-"))[:3]
        for row in rows:
            index = int(manifest["id"][row].rsplit("-", 1)[1])
            np.testing.assert_array_equal(pixels[row, 0], images[index])
            assert truth["label"][row] == CLASSES[labels[index]]
