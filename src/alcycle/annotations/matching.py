"""Which manifest item an annotation means: by alcycle's id, else by image file name.

Labeling tools rewrite image references (Label Studio serves ``/data/local-files/?d=…``
and renames uploads to ``<8 hex>-<name>``; CVAT keeps the name it was given), so a
reference is matched on its trailing path components against the manifest's paths.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from alcycle import synthesised
from alcycle.annotations.records import Annotation, annotation_error

# Label Studio stores an uploaded file as "<8 hex digits>-<original name>".
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def reference_parts(path: Path, where: str, reference: str) -> tuple[str, ...]:
    """The path components an image reference names, outermost first.

    Accepts bare names, relative or absolute paths, ``file://``/``s3://``/``http(s)://``
    URLs and Label Studio's ``/data/local-files/?d=<path>``. A ``..`` component is refused:
    a reference must not point outside the folder it names.
    """
    text = reference.strip().replace("\\", "/")
    parsed = urlsplit(text)
    local = parse_qs(parsed.query).get("d")
    raw = local[0] if local else (parsed.path if parsed.scheme or parsed.query else text)
    parts = tuple(part for part in unquote(raw).split("/") if part not in ("", "."))
    if ".." in parts:
        what = f"image reference {reference!r} climbs out of its folder ('..'); expected a path inside the project"
        raise annotation_error(path, where, what)
    if not parts:
        raise annotation_error(path, where, f"image reference {reference!r} names no file")
    return parts


class ItemMatcher:
    """Maps annotations to manifest ids; remembers how each batch was matched."""

    def __init__(self, manifest: pd.DataFrame):
        self.ids = set(manifest["id"])
        self._by_path: dict[tuple[str, ...], str] = {}
        self._by_name: dict[str, list[str]] = defaultdict(list)
        for item, rel in zip(manifest["id"], manifest["path"]):
            parts = tuple(PurePosixPath(rel).parts)
            self._by_path[parts] = item
            self._by_name[parts[-1]].append(item)

    def item_of(self, path: Path, record: Annotation) -> str:
        """The manifest id ``record`` means; an annotation error if none or several."""
        if record.by == "id":
            if record.item not in self.ids and synthesised.ID.match(record.item):
                what = (f"id {record.item!r} is a synthesised image that is neither kept in "
                        f"data/annotations/{synthesised.FOLDER}/ nor in the current query batch; import a batch "
                        f"while its query batch is current (`alcycle import` keeps the images it labels)")
                raise annotation_error(path, record.where, what)
            if record.item not in self.ids:
                what = f"id {record.item!r} is not in the pool manifest; ids must come from the manifest"
                raise annotation_error(path, record.where, what)
            return record.item
        parts = reference_parts(path, record.where, record.item)
        # The longest trailing run of components that is a manifest path wins: "…/images/a.png".
        for start in range(len(parts)):
            item = self._by_path.get(parts[start:])
            if item is not None:
                return item
        name = parts[-1]
        candidates = self._by_name.get(name) or self._by_name.get(UPLOAD_PREFIX.sub("", name), [])
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            what = (
                f"image {record.item!r} matches {len(candidates)} items ({', '.join(sorted(candidates)[:3])}); "
                "expected a path that names one item, or alcycle_id in the task data"
            )
            raise annotation_error(path, record.where, what)
        what = f"image {record.item!r} matches no image in the pool manifest; expected one of its file names"
        raise annotation_error(path, record.where, what)
