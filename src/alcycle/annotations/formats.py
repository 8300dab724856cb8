"""Recognise an annotation export by its content and read it as a stream of :class:`Annotation`.

The file name and extension are never consulted: people rename downloads, and a Label
Studio JSON saved as ``batch.csv`` is still Label Studio JSON. Detection reads only the
first bytes, the first JSON item, the XML root element or the CSV (or TSV) header.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alcycle.annotations import plain_csv
from alcycle.annotations.cvat import export as cvat
from alcycle.annotations.labelstudio import export as labelstudio
from alcycle.annotations.records import Annotation, AnnotationError, annotation_error
from alcycle.annotations.textio import EXPECTED, csv_records, open_utf8, text

Reader = Callable[[Path, str | None], Iterator[Annotation]]
Sniff = Callable[[Any], bool]


@dataclass(frozen=True)
class Format:
    """One annotation format: how detection recognises it, how it is read, what a stored batch is called.

    ``sniffs`` maps each container the format comes in to a test of what detection saw there:
    ``zip`` the member names, ``xml`` the root element's tag, ``json`` the list's first item
    (a tuple of one item, empty for an empty list), ``csv`` / ``tsv`` the header's column names
    read with commas / tabs. Within a container the first format (in :data:`REGISTRY` order)
    whose test passes is the file's format.
    """

    name: str
    suffix: str  # a stored batch's extension, whatever the imported file was called
    sniffs: Mapping[str, Sniff]
    read: Reader


def _not_labelstudio(fits: Sniff) -> Sniff:
    """A header test for alcycle's own CSV that lets Label Studio's flat export win.

    A Label Studio CSV of alcycle's own labeling config has ``id`` and ``label`` columns
    too; its annotation columns say which export it is.
    """
    return lambda names: fits(names) and not labelstudio.is_csv_header(names)


REGISTRY: tuple[Format, ...] = (
    Format("alcycle-csv", ".csv", {"csv": _not_labelstudio(plain_csv.is_labels_header)},
           lambda path, _: plain_csv.read_labels(path)),
    Format("alcycle-removal", ".csv", {"csv": _not_labelstudio(plain_csv.is_removals_header)},
           lambda path, _: plain_csv.read_removals(path)),
    # An empty list holds no task, nothing to read in either JSON format; call it the tasks.
    Format("labelstudio-json", ".json", {"json": lambda first: not first or labelstudio.is_task(first[0])},
           labelstudio.read_json),
    Format("labelstudio-json-min", ".json", {"json": lambda first: bool(first) and labelstudio.is_min_record(first[0])},
           labelstudio.read_json_min),
    Format("labelstudio-csv", ".csv", {"csv": labelstudio.is_csv_header}, labelstudio.read_csv),
    Format("labelstudio-tsv", ".tsv", {"tsv": labelstudio.is_csv_header},
           lambda path, choice_name: labelstudio.read_csv(path, choice_name, "\t")),
    Format("cvat-images-xml", ".xml", {"zip": lambda names: cvat.XML_MEMBER in names,
                                       "xml": lambda tag: tag == cvat.XML_ROOT},
           lambda path, _: cvat.read_xml(path)),
    Format("cvat-imagenet", ".zip", {"zip": lambda names: cvat.XML_MEMBER not in names},
           lambda path, _: cvat.read_imagenet(path)),
)
FORMATS: tuple[str, ...] = tuple(f.name for f in REGISTRY)
_BY_NAME = {f.name: f for f in REGISTRY}
PLAIN_TSV = (
    "expected commas: a CSV with header id,label (id,removed_because for removals); "
    "alcycle reads a tab-separated file only as Label Studio's TSV export"
)


def suffix_of(name: str) -> str:
    """The extension a stored batch of format ``name`` (one of :data:`FORMATS`) gets."""
    return _BY_NAME[name].suffix


def _match(container: str, seen: Any) -> str | None:
    """The first format whose test for ``container`` accepts ``seen``, or None."""
    return next((f.name for f in REGISTRY if container in f.sniffs and f.sniffs[container](seen)), None)


def detect(path: Path) -> str:
    """The format of ``path``, one of :data:`FORMATS`; :class:`AnnotationError` if it is none of them."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        if fmt := _match("zip", cvat.zip_names(path)):
            return fmt
        raise annotation_error(path, "zip", f"is a zip archive that no format recognises; {EXPECTED}")
    first = _first_byte(path)
    if first == b"":
        raise annotation_error(path, "line 1", f"is empty; {EXPECTED}")
    if first == b"{":
        raise annotation_error(path, "line 1", f"is a JSON object, not a list; {EXPECTED}")
    if first == b"[":
        return _json_format(path)
    if first == b"<":
        tag = cvat.root_tag(path)
        if fmt := _match("xml", tag):
            return fmt
        raise annotation_error(path, "line 1", f"is XML with root element <{tag}>; {EXPECTED}")
    return _csv_format(path)


def read_annotations(path: Path, choice_name: str | None = None) -> tuple[str, Iterator[Annotation]]:
    """(format, records): the format is detected now, the records are read lazily as they are consumed.

    ``choice_name`` is the ``from_name`` of the Label Studio Choices tag that holds the
    class; it is needed only when an export has several. Other formats ignore it.
    """
    path = Path(path)
    fmt = detect(path)
    records = _BY_NAME[fmt].read(path, choice_name)
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
    if fmt := _match("json", () if first is None else (first[1],)):
        return fmt
    what = "is neither a Label Studio task (data, annotations) nor a JSON-MIN record (annotator, annotation_id)"
    raise annotation_error(path, "item 1", f"{what}; {EXPECTED}")


def _csv_format(path: Path) -> str:
    """Told by the header, read with commas, then with tabs: Label Studio's has its five annotation columns.

    Commas come first so that every CSV keeps its meaning; tabs are tried only when the
    comma reading recognises nothing (Label Studio's quoted TSV header is even malformed CSV).
    """
    line, header, refusal = _header(path, ",")
    if fmt := _match("csv", header):
        return fmt
    tab_line, tab_header, _ = _header(path, "\t")
    shown = "\t".join(tab_header)
    if fmt := _match("tsv", tab_header):
        return fmt
    if _match("csv", tab_header):  # alcycle's own batches are comma-separated, as it writes them
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
