"""CVAT exports of a classification task: "CVAT for images 1.1" XML and "ImageNet 1.0" zips.

CVAT labels a whole image with a ``tag``. Its XML export (``annotations.xml``, alone or
in the downloaded zip) lists ``<image name=...>`` elements holding ``<tag label=...>``.
Its ImageNet export is Datumaro's: without images (the usual "annotations only"
download) the ``imagenet_txt`` layout, ``<subset>.txt`` lines ``<image file> <label
index>...`` plus ``synsets.txt`` with one label per line; with images the ``imagenet``
layout, one folder per label holding ``<label>_<image file>`` (CVAT's Datumaro) or
``<image file>`` (upstream Datumaro 1.x), and ``no_label/`` for untagged images.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, iterparse

from alcycle.annotations.records import Annotation, annotation_error
from alcycle.annotations.textio import Utf8Reader, open_utf8

XML_MEMBER = "annotations.xml"  # the XML inside CVAT's zip download
XML_ROOT = "annotations"
SYNSETS = "synsets.txt"
NO_LABEL = "no_label"
XML_EXPECTED = "expected CVAT for images 1.1 XML"
IMAGENET_EXPECTED = "expected a CVAT ImageNet 1.0 zip (<subset>.txt + synsets.txt, or one folder per label)"


def zip_names(path: Path) -> list[str]:
    """Member names of a zip, refusing any that would land outside a folder it was extracted to."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:  # the last: a zip version newer than zipfile's
        raise annotation_error(path, "zip", f"is not a readable zip archive ({exc}); {IMAGENET_EXPECTED}") from exc
    for name in names:
        # Members are only ever read by name here, but a name like this is a hostile archive.
        if name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
            what = "is an absolute path or climbs out with '..'; expected relative member names"
            raise annotation_error(path, f"member {name!r}", what)
    return names


# --- CVAT for images 1.1 XML --------------------------------------------------------------


def read_xml(path: Path) -> Iterator[Annotation]:
    """One record per tagged ``<image>``; an image without a tag yields nothing."""
    if zipfile.is_zipfile(path):
        if XML_MEMBER not in zip_names(path):
            raise annotation_error(path, "zip", f"has no {XML_MEMBER}; {XML_EXPECTED}")
        with zipfile.ZipFile(path) as archive, archive.open(XML_MEMBER) as raw:
            with io.BufferedReader(Utf8Reader(raw, path, XML_MEMBER)) as stream:
                yield from _xml(path, stream, f"{XML_MEMBER} ")
    else:
        with open_utf8(path) as stream:
            yield from _xml(path, stream, "")


def root_tag(path: Path) -> str:
    """The tag of an XML file's root element, read without parsing further."""
    with open_utf8(path) as stream, _xml_errors(path, ""):
        for _, element in iterparse(stream, events=("start",), forbid_dtd=True):
            return element.tag
    raise annotation_error(path, "line 1", f"has no root element; {XML_EXPECTED}")  # expat raises first


@contextmanager
def _xml_errors(path: Path, prefix: str) -> Iterator[None]:
    """Parser errors as AnnotationError naming the file and line."""
    try:
        yield
    except ParseError as exc:
        where = f"{prefix}line {exc.position[0]}"
        raise annotation_error(path, where, f"malformed or truncated XML ({exc}); {XML_EXPECTED}") from exc
    except DefusedXmlException as exc:
        what = f"declares a DTD or entities ({exc!r}), which are refused; {XML_EXPECTED} without a DOCTYPE"
        raise annotation_error(path, f"{prefix}<!DOCTYPE>", what) from exc


def _xml(path: Path, stream: BinaryIO, prefix: str) -> Iterator[Annotation]:
    """Parse incrementally, dropping each top-level element once read, so memory stays flat."""
    root, depth = None, 0
    with _xml_errors(path, prefix):
        for event, element in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            depth += 1 if event == "start" else -1
            if root is None:
                root = _root(path, element, prefix)
            if event == "start" or depth != 1:
                continue
            if element.tag == "version" and (element.text or "").strip() != "1.1":
                what = f"is CVAT XML version {(element.text or '').strip()!r}; {XML_EXPECTED}"
                raise annotation_error(path, f"{prefix}<version>", what)
            if element.tag == "track":
                what = f"holds tracks (CVAT for video); {XML_EXPECTED} (export the task as 'CVAT for images 1.1')"
                raise annotation_error(path, f"{prefix}<track>", what)
            if element.tag == "image":
                yield from _image(path, element)
            root.clear()


def _root(path: Path, element, prefix: str):
    if element.tag != XML_ROOT:
        raise annotation_error(path, f"{prefix}line 1", f"root element is <{element.tag}>; {XML_EXPECTED}")
    return element


def _image(path: Path, element) -> Iterator[Annotation]:
    name = element.get("name")
    if not name:
        raise annotation_error(path, f"image id {element.get('id')}", f"has no name; {XML_EXPECTED}")
    where = f"image {name!r}"
    labels = sorted({tag.get("label") or "" for tag in element if tag.tag == "tag"})
    if len(labels) > 1:
        what = f"has tags {', '.join(map(repr, labels))}; expected at most one tag (single-label classification)"
        raise annotation_error(path, where, what)
    if labels == [""]:
        raise annotation_error(path, where, "has a tag without a label; expected <tag label=...>")
    if labels:
        yield Annotation(name, "file", labels[0], where)


# --- ImageNet 1.0 -------------------------------------------------------------------------


def read_imagenet(path: Path) -> Iterator[Annotation]:
    """One record per labeled image of either ImageNet layout; unlabeled images yield nothing."""
    names = zip_names(path)
    lists = sorted(n for n in names if "/" not in n and n.endswith(".txt") and n != SYNSETS)
    if lists or SYNSETS in names:
        yield from _imagenet_txt(path, names, lists)
    else:
        yield from _imagenet_folders(path, names)


def _imagenet_txt(path: Path, names: list[str], lists: list[str]) -> Iterator[Annotation]:
    if SYNSETS not in names:
        raise annotation_error(path, SYNSETS, f"is missing; {IMAGENET_EXPECTED}")
    with zipfile.ZipFile(path) as archive:
        labels = [line.strip() for _, line in _lines(path, archive, SYNSETS)]
        for member in lists:
            for number, line in _lines(path, archive, member):
                if line.strip():
                    yield from _txt_entry(path, f"{member} line {number}", line, labels)


def _lines(path: Path, archive: zipfile.ZipFile, member: str) -> Iterator[tuple[int, str]]:
    """A text member's lines, numbered from 1, decoded as checked UTF-8 while streaming."""
    with archive.open(member) as raw, io.BufferedReader(Utf8Reader(raw, path, member)) as stream:
        yield from enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1)


def _txt_entry(path: Path, where: str, line: str, labels: list[str]) -> Iterator[Annotation]:
    """``<file> <index>...``; a file name with spaces is written ``"<name>"<ext>`` (Datumaro's rule)."""
    parts = line.split('"')
    if len(parts) == 3:
        rest = parts[2].split()
        has_ext = bool(rest) and not parts[2][0].isspace()
        image, indexes = (parts[1] + rest[0], rest[1:]) if has_ext else (parts[1], rest)
    elif len(parts) == 1:
        image, *indexes = line.split()
    else:
        what = f"{line.strip()!r} has unbalanced quotes; expected `<image file> <label index>`"
        raise annotation_error(path, where, what)
    if not all(index.isdigit() and int(index) < len(labels) for index in indexes):
        what = f"label indexes {' '.join(indexes)!r} are not all lines of {SYNSETS} (0 to {len(labels) - 1})"
        raise annotation_error(path, where, what)
    classes = sorted({labels[int(index)] for index in indexes})
    if len(classes) > 1:
        shown = ", ".join(map(repr, classes))
        what = f"gives {image!r} labels {shown}; expected one label (single-label classification)"
        raise annotation_error(path, where, what)
    if classes:
        yield Annotation(image, "file", classes[0], where)


def _imagenet_folders(path: Path, names: list[str]) -> Iterator[Annotation]:
    seen: dict[str, tuple[str, str]] = {}  # image -> (label, member)
    for name in names:
        parts = name.split("/")
        if name.endswith("/") or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue  # folder entries and archiver litter, not images
        label, _, image = name.partition("/")
        if not image:
            raise annotation_error(path, f"member {name!r}", f"is not in a label folder; {IMAGENET_EXPECTED}")
        if label == NO_LABEL:
            continue
        image = image.removeprefix(f"{label}_")  # CVAT's Datumaro prefixes the label
        if image in seen and seen[image][0] != label:
            old_label, old_name = seen[image]
            what = f"puts {image!r} in class {label!r} but {old_name!r} puts it in {old_label!r}; expected one class"
            raise annotation_error(path, f"member {name!r}", what)
        if image not in seen:
            seen[image] = (label, name)
            yield Annotation(image, "file", label, f"member {name!r}")
