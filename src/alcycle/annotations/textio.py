"""Streaming access to annotation files: UTF-8 checked as it is read, CSV records, annotators.

Export files can be hundreds of megabytes, so nothing here reads a whole file: bytes
pass through :class:`Utf8Reader` in chunks, which both JSON/XML parsers (they want
bytes) and ``csv`` (through ``io.TextIOWrapper``) can consume.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from alcycle.annotations.records import FORMULA_STARTS, AnnotationError, annotation_error

EXPECTED = (
    "expected one of: Label Studio JSON / JSON-MIN / CSV / TSV export, CVAT for images 1.1 XML, "
    "CVAT ImageNet 1.0 zip, or a CSV with header id,label"
)
# What a file with each delimiter is called in messages.
DELIMITED = {",": "CSV", "\t": "TSV"}

# Byte-order marks of encodings other than UTF-8; UTF-32 LE must be tested before UTF-16 LE.
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class Utf8Reader(io.RawIOBase):
    """The bytes of ``raw`` after an optional UTF-8 BOM, validated as UTF-8 while they are read.

    Invalid bytes raise :class:`AnnotationError` naming the line and byte offset, before
    any parser sees them. ``member`` names a file inside an archive in error messages.
    """

    def __init__(self, raw: BinaryIO, path: Path, member: str = "") -> None:
        super().__init__()
        self._raw, self._path, self._member = raw, path, member
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0  # bytes of the file consumed so far
        self._line = 1
        head = raw.read(4)
        for bom, name in _OTHER_BOMS:
            if head.startswith(bom):
                raise self._error(1, f"starts with a {name} byte-order mark; expected a UTF-8 text file")
        skip = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        self._pending = head[skip:]  # bytes read ahead to look for a BOM, not yet handed out
        self._offset = skip

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._pending or self._raw.read(len(buffer))
        chunk, self._pending = chunk[: len(buffer)], chunk[len(buffer) :]
        self._check(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _check(self, chunk: bytes) -> None:
        carried = len(self._decoder.getstate()[0])  # an incomplete sequence from the last chunk
        try:
            self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            start = max(exc.start - carried, 0)
            line = self._line + chunk[:start].count(b"\n")
            offset = self._offset - carried + exc.start
            bad = (exc.object[exc.start : exc.start + 1] or b"\0")[0]
            what = f"byte 0x{bad:02x} at byte offset {offset} is not valid UTF-8; expected a UTF-8 text file"
            if not chunk:
                what = f"ends inside a UTF-8 character at byte offset {offset}; expected a UTF-8 text file"
            raise self._error(line, what) from exc
        self._line += chunk.count(b"\n")
        self._offset += len(chunk)

    def _error(self, line: int, what: str) -> AnnotationError:
        where = f"{self._member} line {line}" if self._member else f"line {line}"
        return annotation_error(self._path, where, what)


@contextmanager
def open_utf8(path: Path) -> Iterator[io.BufferedReader]:
    """``path`` as a buffered binary stream that fails on anything but UTF-8 (see :class:`Utf8Reader`)."""
    with open(path, "rb") as raw, io.BufferedReader(Utf8Reader(raw, path)) as stream:
        yield stream


def text(stream: BinaryIO) -> io.TextIOWrapper:
    """A checked byte stream as text for ``csv`` (newline="" lets csv see quoted line breaks)."""
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def csv_records(
    path: Path, lines: io.TextIOWrapper, expected: str, delimiter: str = ","
) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV (or TSV, by ``delimiter``) records as (first line number, trimmed cells), read lazily.

    ``expected`` ends the message of a malformed-CSV error (what the file should hold).
    """
    # strict=True turns stray quotes into an error instead of a silently merged field.
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True, strict=True)
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            what = f"malformed {DELIMITED[delimiter]} ({exc}); {expected}"
            raise annotation_error(path, f"line {reader.line_num}", what) from exc
        start, last_line = last_line + 1, reader.line_num
        cells = [cell.strip() for cell in row]
        if any(cells):
            yield start, cells


def check_annotator(path: Path, where: str, annotator: str) -> str:
    """``annotator`` unchanged, unless a spreadsheet would run it as a formula.

    Annotators end up in a git-tracked CSV that people open in spreadsheets (CSV injection).
    """
    if annotator.startswith(FORMULA_STARTS):
        what = (
            f"annotator {annotator!r} starts with {annotator[0]!r}, which a spreadsheet runs as a formula; "
            "expected a name or email that starts with a letter or digit"
        )
        raise annotation_error(path, where, what)
    return annotator
