"""select writes the query batch's own images, exactly the pixels the model saw, where the
labeling-tool files point; the pool has no other per-image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_select import PIXELS, tiny_project
from torchvision.io import decode_png, read_file

from alcycle.annotations.matching import ItemMatcher
from alcycle.annotations.records import Annotation
from alcycle.pool import read_manifest
from alcycle.stages import select as select_stage


def stored_images(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): decode_png(read_file(str(p))).numpy()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_queried_item_gets_its_pixels_as_png_at_the_path_the_tools_read(tmp_path: Path) -> None:
    layout, params = tiny_project(tmp_path, labeled=True)
    queries = select_stage.run(layout, params)
    assert queries["path"].tolist() == ["data/queries/images/d.png", "data/queries/images/c.png"]
    images = stored_images(layout.query_images)
    assert list(images) == ["images/c.png", "images/d.png"]  # this batch only
    np.testing.assert_array_equal(images["images/d.png"], PIXELS[3])
    np.testing.assert_array_equal(images["images/c.png"], PIXELS[2])
    for line in layout.queries_cvat.read_text().splitlines():  # CVAT's list names files that exist
        assert (layout.root / line).is_file()


def test_the_next_batch_replaces_the_previous_images(tmp_path: Path) -> None:
    layout, params = tiny_project(tmp_path, labeled=False)
    stale = layout.query_images / "images" / "b.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"last cycle's image")
    queries = select_stage.run(layout, params)
    written = sorted(p.relative_to(layout.root).as_posix() for p in layout.query_images.rglob("*.png"))
    assert written == sorted(queries["path"])
    assert sorted(p.name for p in layout.query_images.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("reference", [
    "/data/local-files/?d=data/queries/images/d.png",  # a task select writes now
    "/data/local-files/?d=data/prepared/images/d.png",  # a task from before: stored batches keep matching
    "data/queries/images/d.png",  # CVAT, from queries.cvat.txt
    "/data/upload/1/0badc0de-d.png",  # a Label Studio upload
])
def test_exported_image_references_match_the_queried_item(tmp_path: Path, reference: str) -> None:
    layout, params = tiny_project(tmp_path, labeled=True)
    select_stage.run(layout, params)
    matcher = ItemMatcher(read_manifest(layout.manifest))
    assert matcher.item_of(tmp_path / "export.json", Annotation(reference, "file", "cat", "task 1")) == "d"
