"""Recognise an annotation export by its content and read it as a stream of :class:`Annotation`.

The file name and extension are never consulted: people rename downloads, and a Label
Studio JSON saved as ``batch.csv`` is still Label Studio JSON. Detection reads only the
first bytes, the first JSON item, the XML root element or the CSV (or TSV) header.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from alcycle.annotations import cvat, labelstudio, plain_csv
from alcycle.annotations.records import Annotation, AnnotationError, annotation_error
from alcycle.annotations.textio import EXPECTED, csv_records, open_utf8, text

Reader = Callable[[Path, str | None], Iterator[Annotation]]

_READERS: dict[str, Reader] = {
    "alcycle-csv": lambda path, _: plain_csv.read_labels(path),
    "alcycle-removal": lambda path, _: plain_csv.read_removals(path),
    "labelstudio-json": labelstudio.read_json,
    "labelstudio-json-min": labelstudio.read_json_min,
    "labelstudio-csv": labelstudio.read_csv,
    "labelstudio-tsv": lambda path, choice_name: labelstudio.read_csv(path, choice_name, "\t"),
    "cvat-images-xml": lambda path, _: cvat.read_xml(path),
    "cvat-imagenet": lambda path, _: cvat.read_imagenet(path),
}
FORMATS: tuple[str, ...] = tuple(_READERS)
PLAIN_TSV = (
    "expected commas: a CSV with header id,label (id,removed_because for removals); "
    "alcycle reads a tab-separated file only as Label Studio's TSV export"
)


def detect(path: Path) -> str:
    """The format of ``path``, one of :data:`FORMATS`; :class:`AnnotationError` if it is none of them."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return "cvat-images-xml" if cvat.XML_MEMBER in cvat.zip_names(path) else "cvat-imagenet"
    first = _first_byte(path)
    if first == b"":
        raise annotation_error(path, "line 1", f"is empty; {EXPECTED}")
    if first == b"{":
        raise annotation_error(path, "line 1", f"is a JSON object, not a list; {EXPECTED}")
    if first == b"[":
        return _json_format(path)
    if first == b"<":
        tag = cvat.root_tag(path)
        if tag != "annotations":
            raise annotation_error(path, "line 1", f"is XML with root element <{tag}>; {EXPECTED}")
        return "cvat-images-xml"
    return _csv_format(path)


def read_annotations(path: Path, choice_name: str | None = None) -> tuple[str, Iterator[Annotation]]:
    """(format, records): the format is detected now, the records are read lazily as they are consumed.

    ``choice_name`` is the ``from_name`` of the Label Studio Choices tag that holds the
    class; it is needed only when an export has several. Other formats ignore it.
    """
    path = Path(path)
    fmt = detect(path)
    records = _READERS[fmt](path, choice_name)
    return fmt, _zip_errors(path, records) if zipfile.is_zipfile(path) else records


# What a damaged or hostile archive can raise while its members are read.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def _zip_errors(path: Path, records: Iterator[Annotation]) -> Iterator[Annotation]:
    """``records``, with a damaged, encrypted or oddly compressed archive reported as such."""
    try:
        yield from records
    except _ZIP_ERRORS as exc:
        what = f"is a damaged or unsupported zip archive ({type(exc).__name__}: {exc}); expected a zip as CVAT writes"
        raise annotation_error(path, "zip", what) from exc


def _first_byte(path: Path) -> bytes:
    """The first byte that is not whitespace (after a UTF-8 BOM), or b"" for a blank file."""
    with open_utf8(path) as stream:
        while chunk := stream.read(4096):
            if b"\0" in chunk:
                line = chunk[: chunk.index(b"\0")].count(b"\n") + 1
                what = "contains NUL bytes (UTF-16 or UTF-32 without a byte-order mark?); expected a UTF-8 text file"
                raise annotation_error(path, f"line {line}", what)
            if stripped := chunk.lstrip():
                return stripped[:1]
    return b""


def _json_format(path: Path) -> str:
    """Label Studio JSON (tasks with annotations) or JSON-MIN (flat records), told by the first item."""
    with open_utf8(path) as stream:
        first = next(labelstudio.json_items(path, stream, "item"), None)
    if first is None:
        return "labelstudio-json"  # an empty list: no task, nothing to read in either format
    item = first[1]
    if isinstance(item, dict) and "data" in item and ("annotations" in item or "completions" in item):
        return "labelstudio-json"
    if isinstance(item, dict) and "annotator" in item and "annotation_id" in item:
        return "labelstudio-json-min"
    what = "is neither a Label Studio task (data, annotations) nor a JSON-MIN record (annotator, annotation_id)"
    raise annotation_error(path, "item 1", f"{what}; {EXPECTED}")


def _csv_format(path: Path) -> str:
    """Told by the header, read with commas, then with tabs: Label Studio's has its five annotation columns.

    Commas come first so that every CSV keeps its meaning; tabs are tried only when the
    comma reading recognises nothing (Label Studio's quoted TSV header is even malformed CSV).
    """
    line, header, refusal = _header(path, ",")
    if kind := _header_kind(header):
        return kind
    tab_line, tab_header, _ = _header(path, "\t")
    tab_kind, shown = _header_kind(tab_header), "\t".join(tab_header)
    if tab_kind == "labelstudio-csv":
        return "labelstudio-tsv"
    if tab_kind is not None:  # alcycle's own batches are comma-separated, as it writes them
        raise annotation_error(path, f"line {tab_line}", f"is tab-separated (header {shown!r}); {PLAIN_TSV}")
    if len(tab_header) > max(len(header), 1):
        raise annotation_error(path, f"line {tab_line}", f"header is {shown!r} (tab-separated); {EXPECTED}")
    if refusal is not None:
        raise refusal
    what = f"header is {','.join(header)!r}; {EXPECTED} (or id,removed_because for removals)"
    raise annotation_error(path, f"line {line}", what)


def _header(path: Path, delimiter: str) -> tuple[int, list[str], AnnotationError | None]:
    """(line, names, None) of the first record; (1, [], the error) when it does not parse with ``delimiter``."""
    try:
        with open_utf8(path) as stream:
            line, names = next(csv_records(path, text(stream), EXPECTED, delimiter), (1, []))
    except AnnotationError as exc:
        return 1, [], exc
    return line, names, None


def _header_kind(names: list[str]) -> str | None:
    """The format a CSV header with these column ``names`` belongs to, or None."""
    have = set(names)
    if set(labelstudio.CSV_ALWAYS) <= have:
        return "labelstudio-csv"
    if {"id", "removed_because"} <= have and "label" not in have:
        return "alcycle-removal"
    if {"id", "label"} <= have and "removed_because" not in have:
        return "alcycle-csv"
    return None
